update ops.reconcile_runs
set
    finished_at = clock_timestamp(),
    status = %(status)s,
    stats = %(stats)s::jsonb,
    error = %(error)s
where run_id = %(run_id)s
