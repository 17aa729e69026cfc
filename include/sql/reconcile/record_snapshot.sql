-- Limbo distribution of all leads, stored for trends (ops.limbo_snapshots) and returned, with
-- the leads of the last 7 days per stage (the alert on limbo_no_identity uses it: one scan of
-- the view gives both).
with

counts as (
    select
        limbo_stage,
        count(*)::integer as lead_count,
        (count(*) filter (
            where lead_date > (%(anchor)s::timestamptz at time zone 'America/Lima')::date - %(recent_days)s::integer
        ))::integer as recent_count,
        (count(*) filter (
            where lead_date > (%(anchor)s::timestamptz at time zone 'America/Lima')::date - 7
        ))::integer as week_count
    from ops.v_cabinet_leads_limbo
    group by limbo_stage
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
)

select
    counts.limbo_stage,
    counts.lead_count,
    counts.recent_count,
    counts.week_count,
    (select count(*) from stored) as snapshot_rows
from counts
