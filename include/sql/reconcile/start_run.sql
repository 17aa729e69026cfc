insert into ops.reconcile_runs (triggered_by, external_run_id, dry_run, parameters)
values (%(triggered_by)s, %(external_run_id)s, %(dry_run)s, %(parameters)s::jsonb)
returning run_id
