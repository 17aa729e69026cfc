-- Leads per Monday-starting week (Lima dates) by funnel stage, queried unchanged by the runbook.
-- A lead without a representable creation time has no week and is left out.
-- `dismissed` (added at the end, issue 11): how many of the week's leads a reviewer dismissed (spam,
-- test sign-ups, duplicates); they have no identity, so they are also counted in limbo_no_identity.

create or replace view ops.v_cabinet_14d_funnel_audit_weekly as
with

limbo as (
    select
        week_start,
        limbo_stage,
        dismissed
    from ops.v_cabinet_leads_limbo
    -- a lead without a representable creation time has no week
    where week_start is not null
)

select
    week_start,
    count(*)::integer as leads_total,
    (count(*) filter (where limbo_stage = 'NO_IDENTITY'))::integer as limbo_no_identity,
    (count(*) filter (where limbo_stage = 'NO_DRIVER'))::integer as limbo_no_driver,
    (count(*) filter (where limbo_stage = 'NO_TRIPS_14D'))::integer as limbo_no_trips_14d,
    (count(*) filter (where limbo_stage = 'TRIPS_NO_CLAIM'))::integer as limbo_trips_no_claim,
    (count(*) filter (where limbo_stage = 'OK'))::integer as limbo_ok,
    (count(*) filter (where dismissed))::integer as dismissed
from limbo
group by week_start;

comment on view ops.v_cabinet_14d_funnel_audit_weekly is
'Leads per Monday-starting week (Lima dates) by funnel stage.';
