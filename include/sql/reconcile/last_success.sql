-- The newest successful, real (not dry) run, for `cabinet-leads health` and the watchdog DAG;
-- `triggered_by` narrows it to runs from Airflow or from the command line (null: any).
select
    r.run_id,
    r.started_at,
    r.finished_at,
    extract(epoch from now() - r.finished_at)::integer as age_seconds
from ops.reconcile_runs as r
where
    r.status = 'success'
    and not r.dry_run
    and (%(triggered_by)s::text is null or r.triggered_by = %(triggered_by)s::text)
order by r.finished_at desc
limit 1
