-- Limbo distribution: all leads and those of the last `recent_days` days (Lima dates) per stage.
-- The runbook's query with the window as a bound parameter.
select
    limbo_stage,
    count(*)::integer as lead_count,
    (count(*) filter (
        where lead_date > ops.lead_date(now()) - %(recent_days)s::integer
    ))::integer as recent_count
from ops.v_cabinet_leads_limbo
group by limbo_stage
