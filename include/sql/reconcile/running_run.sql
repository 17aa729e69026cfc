-- The run record of the run that holds the run lock (the newest one still running).
select
    r.run_id,
    r.triggered_by,
    r.started_at
from ops.reconcile_runs as r
where r.status = 'running'
order by r.run_id desc
limit 1
