-- The last `weeks` weeks of the weekly funnel audit, newest first.
select
    week_start,
    leads_total,
    limbo_no_identity,
    limbo_no_driver,
    limbo_no_trips_14d,
    limbo_trips_no_claim,
    limbo_ok
from ops.v_cabinet_14d_funnel_audit_weekly
order by week_start desc
limit %(weeks)s
