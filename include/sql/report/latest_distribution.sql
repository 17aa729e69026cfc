-- The limbo distribution recorded by the newest 'after' snapshot of a real run (the numbers
-- `cabinet-leads limbo` shows, as of that run), without scanning the leads. recent_count counts the
-- leads of that run's own recent window: recent_days says how many days it had.
with

latest as (
    select s.run_id
    from ops.limbo_snapshots as s
    inner join ops.reconcile_runs as r on s.run_id = r.run_id
    where s.phase = 'after' and not r.dry_run
    order by s.taken_at desc, s.run_id desc
    limit 1
)

select
    s.run_id,
    s.taken_at,
    s.limbo_stage,
    s.lead_count,
    s.recent_count,
    (r.parameters ->> 'recent_days')::integer as recent_days
from ops.limbo_snapshots as s
inner join latest on s.run_id = latest.run_id
inner join ops.reconcile_runs as r on s.run_id = r.run_id
where s.phase = 'after'
order by s.limbo_stage
