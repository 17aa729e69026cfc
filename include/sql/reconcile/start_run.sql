-- Record a new run. A run of the same trigger still marked 'running' cannot be alive here (a CLI
-- run holds the run lock; the DAG allows one active run), so its process died: mark it abandoned.
with

abandoned as (
    update ops.reconcile_runs
    set
        status = 'abandoned',
        finished_at = clock_timestamp(),
        error = 'abandoned: its process ended before the run finished'
    where status = 'running' and triggered_by = %(triggered_by)s
    returning run_id
)

-- (a data-modifying CTE runs whether or not the insert reads it)
insert into ops.reconcile_runs (triggered_by, external_run_id, dry_run, parameters)
values (%(triggered_by)s, %(external_run_id)s, %(dry_run)s, %(parameters)s::jsonb)
returning run_id
