-- Alert metrics recorded by the newest earlier successful run (for "grew since the previous run").
select r.stats -> 'alert_metrics' as alert_metrics
from ops.reconcile_runs as r
where
    r.status = 'success'
    and not r.dry_run
    and r.run_id <> %(run_id)s
    and r.stats ? 'alert_metrics'
order by r.finished_at desc
limit 1
