-- A run whose process died (SIGKILL, OOM, lost connection) is marked 'abandoned' by the next run of
-- the same trigger, so no run record stays 'running' and on-call can tell it from a run that failed.
alter table ops.reconcile_runs drop constraint reconcile_runs_status_check;

alter table ops.reconcile_runs add constraint reconcile_runs_status_check
check (status in ('running', 'success', 'failed', 'abandoned'));

update ops.reconcile_runs set status = 'abandoned'
where status = 'failed' and error like 'abandoned:%';
