-- Funnel views of SPEC sections 2 and 5, queried unchanged by the runbook.
-- Lead date = creation date in America/Lima; window = lead_date .. lead_date + 13 (14 days);
-- trips and claims count across all driver accounts of the lead's person; the driver shown is
-- the account with most trips in the window (ties: earliest hired_at, then lowest driver_id).
-- Per-lead work sits in lateral subqueries so a filter on lead_id or lead_date uses indexes.

create view ops.v_cabinet_leads_limbo as
with

leads as (
    select
        l.id as lead_id,
        l.external_id,
        l.lead_created_at,
        (l.lead_created_at at time zone 'America/Lima')::date as lead_date
    from public.module_ct_cabinet_leads as l
),

funnel as (
    select
        leads.lead_id,
        leads.external_id,
        leads.lead_created_at,
        leads.lead_date,
        link.person_key,
        drv.driver_id,
        coalesce(drv.trips_14d, 0) as trips_14d,
        coalesce(drv.driver_accounts, 0) as driver_accounts,
        coalesce(ms.milestones_reached, '{}') as milestones_reached,
        coalesce(ms.milestones_unclaimed, '{}') as milestones_unclaimed
    from leads
    left join canon.identity_links as link
        on
            link.source_table = 'module_ct_cabinet_leads'
            and link.source_pk = leads.lead_id::text
    -- per-lead work stays in lateral subqueries on purpose (index lookups per lead)
    left join lateral (  -- noqa: ST05
        select
            acct.driver_id,
            sum(acct.trips) over () as trips_14d,
            count(*) over () as driver_accounts
        from (
            select
                dl.source_pk as driver_id,
                d.hired_at,
                coalesce(sum(t.completed_trips), 0) as trips
            from canon.identity_links as dl
            left join public.drivers as d on dl.source_pk = d.driver_id
            left join public.driver_daily_trips as t
                on
                    dl.source_pk = t.driver_id
                    and t.trip_date between leads.lead_date and leads.lead_date + 13
            where dl.source_table = 'drivers' and dl.person_key = link.person_key
            group by dl.source_pk, d.hired_at
        ) as acct
        order by acct.trips desc, acct.hired_at asc nulls last, acct.driver_id asc
        limit 1
    ) as drv on true
    left join lateral (
        select
            array_agg(m.milestone order by m.milestone) as milestones_reached,
            array_agg(m.milestone order by m.milestone) filter (
                where not exists (
                    select 1
                    from public.milestone_claims as c
                    inner join canon.identity_links as cl
                        on cl.source_table = 'drivers' and c.driver_id = cl.source_pk
                    where
                        cl.person_key = link.person_key
                        and c.milestone = m.milestone
                        and coalesce(lower(c.status), '') not in ('rejected', 'cancelled')
                )
            ) as milestones_unclaimed
        from ops.milestone_config as m
        where m.active and m.milestone <= drv.trips_14d
    ) as ms on true
)

select
    lead_id,
    external_id,
    lead_created_at,
    lead_date,
    date_trunc('week', lead_date)::date as week_start,
    case
        when person_key is null then 'NO_IDENTITY'
        when driver_id is null then 'NO_DRIVER'
        when trips_14d = 0 then 'NO_TRIPS_14D'
        when cardinality(milestones_unclaimed) > 0 then 'TRIPS_NO_CLAIM'
        else 'OK'
    end as limbo_stage,
    person_key,
    driver_id,
    trips_14d::integer as trips_14d,
    driver_accounts::integer as driver_accounts,
    milestones_reached,
    milestones_unclaimed
from funnel;

comment on view ops.v_cabinet_leads_limbo is
'One row per cabinet lead with its funnel stage (NO_IDENTITY, NO_DRIVER, NO_TRIPS_14D, TRIPS_NO_CLAIM, OK).';

create view ops.v_cabinet_14d_funnel_audit_weekly as
with

limbo as (
    select
        week_start,
        limbo_stage
    from ops.v_cabinet_leads_limbo
)

select
    week_start,
    count(*)::integer as leads_total,
    (count(*) filter (where limbo_stage = 'NO_IDENTITY'))::integer as limbo_no_identity,
    (count(*) filter (where limbo_stage = 'NO_DRIVER'))::integer as limbo_no_driver,
    (count(*) filter (where limbo_stage = 'NO_TRIPS_14D'))::integer as limbo_no_trips_14d,
    (count(*) filter (where limbo_stage = 'TRIPS_NO_CLAIM'))::integer as limbo_trips_no_claim,
    (count(*) filter (where limbo_stage = 'OK'))::integer as limbo_ok
from limbo
group by week_start;

comment on view ops.v_cabinet_14d_funnel_audit_weekly is
'Leads per Monday-starting week (Lima dates) by funnel stage.';

-- Each reached milestone of a linked lead, with the day it was reached and its claim if any:
-- the source of the TRIPS_NO_CLAIM worklist.
create view ops.v_cabinet_lead_milestones as
with

-- referenced twice: not materialized, so a filter on lead_id reaches the base table
limbo as not materialized (
    select
        lead_id,
        lead_date,
        person_key,
        driver_id,
        milestones_reached
    from ops.v_cabinet_leads_limbo
    where cardinality(milestones_reached) > 0
),

daily as (
    select
        limbo.lead_id,
        t.trip_date,
        sum(sum(t.completed_trips)) over (
            partition by limbo.lead_id order by t.trip_date
        ) as cumulative_trips
    from limbo
    inner join canon.identity_links as dl
        on dl.source_table = 'drivers' and limbo.person_key = dl.person_key
    inner join public.driver_daily_trips as t
        on
            dl.source_pk = t.driver_id
            and t.trip_date between limbo.lead_date and limbo.lead_date + 13
    group by limbo.lead_id, t.trip_date
)

select
    limbo.lead_id,
    limbo.person_key,
    limbo.driver_id,
    reached.milestone,
    (
        select min(daily.trip_date)
        from daily
        where daily.lead_id = limbo.lead_id and daily.cumulative_trips >= reached.milestone
    ) as reached_on,
    (
        select min(c.claim_id)
        from public.milestone_claims as c
        inner join canon.identity_links as cl
            on cl.source_table = 'drivers' and c.driver_id = cl.source_pk
        where
            cl.person_key = limbo.person_key
            and c.milestone = reached.milestone
            and coalesce(lower(c.status), '') not in ('rejected', 'cancelled')
    ) as claim_id
from limbo
cross join lateral unnest(limbo.milestones_reached) as reached (milestone);
