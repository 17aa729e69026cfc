-- The two numbers the runbook's recommended alerts watch, as of the run's anchor (Lima dates):
-- leads of the last 7 days without identity, and all leads with a reached but unclaimed milestone,
-- from the kept funnel state (read after the run's recompute, when it equals the live view).
select
    (count(*) filter (
        where
        limbo_stage = 'NO_IDENTITY'
        and lead_date > ops.lead_date(%(anchor)s::timestamptz) - 7
    ))::integer as limbo_no_identity_last_week,
    (count(*) filter (where limbo_stage = 'TRIPS_NO_CLAIM'))::integer as limbo_trips_no_claim
from ops.v_cabinet_leads_limbo_kept
