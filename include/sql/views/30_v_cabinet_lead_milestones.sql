-- Each reached milestone of a linked lead, with the day it was reached and its claim if any: the
-- source of the TRIPS_NO_CLAIM worklist. The milestones come from the limbo view, the day and the
-- claim from ops.lead_milestones (00_funnel_rules.sql, the same function the kept worklist uses), so
-- a filter on lead_id reaches the base tables.

create or replace view ops.v_cabinet_lead_milestones as
with

limbo as (
    select
        lead_id,
        lead_date,
        person_key,
        driver_id,
        milestones_reached
    from ops.v_cabinet_leads_limbo
    where cardinality(milestones_reached) > 0
)

select
    limbo.lead_id,
    limbo.person_key,
    limbo.driver_id,
    m.milestone,
    m.reached_on,
    m.claim_id
from limbo
cross join lateral ops.lead_milestones(limbo.person_key, limbo.lead_date, limbo.milestones_reached) as m;
