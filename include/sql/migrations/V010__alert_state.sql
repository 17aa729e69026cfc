-- Memory of the limbo alerts (Alertmanager style): one row per alert (metric and kind of threshold).
-- An alert notifies when it starts to fire, again at most once per repeat interval while it keeps
-- firing, and once more when it is resolved. check_limbo_alerts reads and writes these rows in the
-- transaction that sends the email, so a failed email leaves the state as it was.

create table ops.alert_state (
    alert text primary key,
    firing boolean not null,
    since timestamptz,
    last_notified_at timestamptz,
    metric_value integer,
    previous_value integer,
    reason text,
    run_id bigint,
    updated_at timestamptz not null default clock_timestamp()
);
