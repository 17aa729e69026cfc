-- Job configuration, run records, limbo snapshots, lead state and the claim worklist (SPEC section 6).

create schema if not exists ops;

-- Milestones are configuration, not code: change rows here, not the views.
create table ops.milestone_config (
    milestone integer primary key check (milestone > 0),
    active boolean not null default true,
    description text
);

insert into ops.milestone_config (milestone, description) values
(1, 'first completed trip within 14 days'),
(5, 'five completed trips within 14 days'),
(25, 'twenty-five completed trips within 14 days');

create table ops.reconcile_runs (
    run_id bigint generated always as identity primary key,
    started_at timestamptz not null default clock_timestamp(),
    finished_at timestamptz,
    status text not null default 'running' check (status in ('running', 'success', 'failed')),
    triggered_by text not null default 'cli',
    external_run_id text,
    dry_run boolean not null default false,
    parameters jsonb not null default '{}',
    stats jsonb not null default '{}',
    error text
);

create index reconcile_runs_status_idx on ops.reconcile_runs (status, finished_at desc);

create table ops.limbo_snapshots (
    run_id bigint not null,
    phase text not null check (phase in ('before', 'after')),
    taken_at timestamptz not null default clock_timestamp(),
    limbo_stage text not null,
    lead_count integer not null,
    recent_count integer not null,
    primary key (run_id, phase, limbo_stage)
);

create index limbo_snapshots_taken_idx on ops.limbo_snapshots (taken_at);

-- What the job last concluded for each lead: decides incremental work and "newly" statistics.
create table ops.lead_state (
    lead_id bigint primary key,
    person_key bigint,
    driver_id text,
    limbo_stage text not null,
    trips_14d integer not null default 0,
    source_updated_at timestamptz not null,
    checked_at timestamptz not null default now(),
    run_id bigint
);

create index lead_state_stage_idx on ops.lead_state (limbo_stage);

-- TRIPS_NO_CLAIM worklist: one row per (lead, milestone), opened when a reached milestone has no
-- claim, resolved when one arrives; never duplicated.
create table ops.milestone_claim_worklist (
    worklist_id bigint generated always as identity primary key,
    lead_id bigint not null,
    person_key bigint not null,
    driver_id text not null,
    milestone integer not null,
    reached_on date not null,
    detected_at timestamptz not null default now(),
    resolved_at timestamptz,
    resolved_by_claim_id text,
    run_id bigint,
    constraint milestone_claim_worklist_one unique (lead_id, milestone)
);

create index milestone_claim_worklist_open_idx on ops.milestone_claim_worklist (reached_on)
where resolved_at is null;
