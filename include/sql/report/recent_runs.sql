-- The newest %(runs)s job runs with the runbook's statistics (read backwards on the primary key).
select
    run_id,
    started_at,
    finished_at,
    extract(epoch from coalesce(finished_at, clock_timestamp()) - started_at)::double precision as seconds,
    status,
    triggered_by,
    dry_run,
    error,
    coalesce((stats ->> 'processed')::bigint, 0) as processed,
    coalesce((stats ->> 'newly_linked')::bigint, 0) as newly_linked,
    coalesce((stats ->> 'newly_driver_mapped')::bigint, 0) as newly_driver_mapped,
    coalesce((stats ->> 'conflicts')::bigint, 0) as conflicts,
    coalesce((stats ->> 'errors')::bigint, 0) as errors
from ops.reconcile_runs
order by run_id desc
limit %(runs)s
