-- Remember one alert's state after a run's decision.
insert into ops.alert_state (
    alert, firing, since, last_notified_at, metric_value, previous_value, reason, run_id, updated_at
)
values (
    %(alert)s, %(firing)s, %(since)s, %(last_notified_at)s, %(metric_value)s, %(previous_value)s, %(reason)s,
    %(run_id)s, clock_timestamp()
)
on conflict (alert) do update set
    firing = excluded.firing,
    since = excluded.since,
    last_notified_at = excluded.last_notified_at,
    metric_value = excluded.metric_value,
    previous_value = excluded.previous_value,
    reason = excluded.reason,
    run_id = excluded.run_id,
    updated_at = excluded.updated_at
