-- Leads per week and stage of the last 12 weeks, stored by each run's after-snapshot (the same
-- scan of the limbo view as ops.limbo_snapshots): the dashboard's weekly bars read this table
-- instead of scanning the view on a request.

create table ops.weekly_funnel_snapshots (
    run_id bigint not null,
    taken_at timestamptz not null default clock_timestamp(),
    week_start date not null,
    limbo_stage text not null,
    lead_count integer not null,
    primary key (run_id, week_start, limbo_stage)
);
