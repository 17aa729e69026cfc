-- Every remembered alert.
select
    alert,
    firing,
    since,
    last_notified_at,
    metric_value,
    previous_value,
    reason,
    run_id
from ops.alert_state
order by alert
