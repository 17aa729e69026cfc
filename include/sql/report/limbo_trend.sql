-- The 'after' limbo snapshots of the last %(days)s days (real runs, not dry runs), oldest first:
-- the dashboard's trend lines. Small table, read through limbo_snapshots_taken_idx.
select
    s.run_id,
    s.taken_at,
    s.limbo_stage,
    s.lead_count
from ops.limbo_snapshots as s
inner join ops.reconcile_runs as r on s.run_id = r.run_id
where
    s.phase = 'after'
    and s.taken_at >= now() - make_interval(days => %(days)s::integer)
    and s.limbo_stage = any(%(stages)s::text[])
    and not r.dry_run
order by s.taken_at, s.run_id, s.limbo_stage
