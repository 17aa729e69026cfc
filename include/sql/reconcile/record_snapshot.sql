-- One scan of the kept funnel state (ops.v_cabinet_leads_limbo_kept) gives: the distribution of all
-- leads per stage (with the leads of the last `recent_days` days and of the last 7 days: the
-- limbo_no_identity alert uses the latter), stored in ops.limbo_snapshots for trends; and, for the
-- after-snapshot, leads per week and stage of the last 12 weeks, stored in
-- ops.weekly_funnel_snapshots for the dashboard.
with

params as (
    select
        ops.lead_date(%(anchor)s::timestamptz) as anchor_date,
        %(recent_days)s::integer as recent_days
),

grouped as (
    select
        v.limbo_stage,
        v.week_start,
        grouping(v.week_start) = 0 as by_week,
        count(*)::integer as lead_count,
        (count(*) filter (where v.lead_date > p.anchor_date - p.recent_days))::integer as recent_count,
        (count(*) filter (where v.lead_date > p.anchor_date - 7))::integer as week_count
    from ops.v_cabinet_leads_limbo_kept as v
    cross join params as p
    group by grouping sets ((v.limbo_stage), (v.week_start, v.limbo_stage))
),

counts as (
    select
        limbo_stage,
        lead_count,
        recent_count,
        week_count
    from grouped
    where not by_week
),

stored as (
    insert into ops.limbo_snapshots (run_id, phase, limbo_stage, lead_count, recent_count)
    select
        %(run_id)s,
        %(phase)s,
        counts.limbo_stage,
        counts.lead_count,
        counts.recent_count
    from counts
    on conflict (run_id, phase, limbo_stage) do update
        set
            lead_count = excluded.lead_count,
            recent_count = excluded.recent_count,
            taken_at = clock_timestamp()
    returning 1
),

stored_weekly as (
    insert into ops.weekly_funnel_snapshots (run_id, week_start, limbo_stage, lead_count)
    select
        %(run_id)s,
        grouped.week_start,
        grouped.limbo_stage,
        grouped.lead_count
    from grouped
    cross join params as p
    where
        grouped.by_week
        and %(phase)s = 'after'
        and grouped.week_start >= date_trunc('week', p.anchor_date)::date - 77
    on conflict (run_id, week_start, limbo_stage) do update
        set
            lead_count = excluded.lead_count,
            taken_at = clock_timestamp()
    returning 1
)

select
    counts.limbo_stage,
    counts.lead_count,
    counts.recent_count,
    counts.week_count,
    (select count(*) from stored) + (select count(*) from stored_weekly) as snapshot_rows
from counts
