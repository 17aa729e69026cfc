-- The live definition of the funnel (SPEC section 5), queried unchanged by the runbook; the job's
-- kept state (ops.lead_state, the claim worklist) must equal it after every run (`cabinet-leads
-- verify` checks). Applied by `cabinet-leads migrate` after the versioned migrations whenever this
-- file changes (include/sql/views/: one place for each view; columns may only be added at the end).
-- The rules (lead date, 14-day window, which accounts and claims count, the stage) are the
-- functions of 00_funnel_rules.sql. The driver shown is the account with most trips in the window
-- (ties: earliest hired_at, then lowest driver_id); trips and claims count across all accounts of
-- the lead's person.
-- Set-based: joins and aggregations, every level grouped by lead_id, so a filter on lead_id or
-- lead_date is pushed down to the leads table (index lookups for a few leads, hash joins for many).

create or replace view ops.v_cabinet_leads_limbo as
with

leads as (
    select
        l.id as lead_id,
        l.external_id,
        ops.representable_ts(l.lead_created_at) as lead_created_at,
        ops.lead_date(l.lead_created_at) as lead_date,
        link.person_key
    from public.module_ct_cabinet_leads as l
    left join canon.identity_links as link
        on
            link.source_table = 'module_ct_cabinet_leads'
            and link.source_pk = l.id::text
),

-- each driver account of the lead's person, with its trips in the lead's window
accounts as (
    select
        leads.lead_id,
        leads.external_id,
        leads.lead_created_at,
        leads.lead_date,
        leads.person_key,
        a.driver_id,
        a.hired_at,
        coalesce(sum(t.completed_trips), 0)::bigint as trips
    from leads
    left join ops.v_person_driver_accounts as a on leads.person_key = a.person_key
    left join public.driver_daily_trips as t
        on a.driver_id = t.driver_id and ops.in_trip_window(t.trip_date, leads.lead_date)
    group by
        leads.lead_id, leads.external_id, leads.lead_created_at, leads.lead_date, leads.person_key,
        a.driver_id, a.hired_at
),

per_lead_accounts as (
    select
        lead_id,
        external_id,
        lead_created_at,
        lead_date,
        person_key,
        array_agg(driver_id order by trips desc, hired_at asc nulls last, driver_id asc)
        filter (where driver_id is not null) as ranked_accounts,
        coalesce(sum(trips), 0)::bigint as trips_14d,
        count(driver_id) as driver_accounts
    from accounts
    group by lead_id, external_id, lead_created_at, lead_date, person_key
),

-- the driver shown: the first ranked account
per_lead as (
    select
        lead_id,
        external_id,
        lead_created_at,
        lead_date,
        person_key,
        ranked_accounts[1] as driver_id,
        trips_14d,
        driver_accounts
    from per_lead_accounts
),

-- each active milestone the trips reach, with the person's lowest counting claim for it
reached as (
    select
        per_lead.lead_id,
        per_lead.external_id,
        per_lead.lead_created_at,
        per_lead.lead_date,
        per_lead.person_key,
        per_lead.driver_id,
        per_lead.trips_14d,
        per_lead.driver_accounts,
        m.milestone,
        min(c.claim_id) as claim_id
    from per_lead
    left join ops.milestone_config as m
        on m.active and per_lead.driver_id is not null and per_lead.trips_14d >= m.milestone
    left join ops.v_person_driver_accounts as a on m.milestone is not null and per_lead.person_key = a.person_key
    left join public.milestone_claims as c
        on a.driver_id = c.driver_id and m.milestone = c.milestone and ops.claim_counts(c.status)
    group by
        per_lead.lead_id, per_lead.external_id, per_lead.lead_created_at, per_lead.lead_date,
        per_lead.person_key, per_lead.driver_id, per_lead.trips_14d, per_lead.driver_accounts, m.milestone
),

funnel as (
    select
        lead_id,
        external_id,
        lead_created_at,
        lead_date,
        person_key,
        driver_id,
        trips_14d,
        driver_accounts,
        coalesce(array_agg(milestone order by milestone) filter (where milestone is not null), '{}')
            as milestones_reached,
        coalesce(
            array_agg(milestone order by milestone) filter (where milestone is not null and claim_id is null), '{}'
        )
            as milestones_unclaimed
    from reached
    group by lead_id, external_id, lead_created_at, lead_date, person_key, driver_id, trips_14d, driver_accounts
)

select
    funnel.lead_id,
    funnel.external_id,
    funnel.lead_created_at,
    funnel.lead_date,
    date_trunc('week', funnel.lead_date)::date as week_start,
    ops.funnel_stage(
        funnel.person_key, funnel.driver_id, funnel.trips_14d, cardinality(funnel.milestones_unclaimed)
    ) as limbo_stage,
    funnel.person_key,
    funnel.driver_id,
    funnel.trips_14d::integer as trips_14d,
    funnel.driver_accounts::integer as driver_accounts,
    funnel.milestones_reached,
    funnel.milestones_unclaimed,
    -- a reviewer dismissed the lead (spam, test sign-up, duplicate): out of limbo as a flag, its
    -- stage stays what the data says (cabinet_leads.review; ops.manual_lead_state)
    coalesce(d.decision = 'dismiss', false) as dismissed
from funnel
left join ops.manual_lead_state as d on funnel.lead_id = d.lead_id;

comment on view ops.v_cabinet_leads_limbo is
'One row per cabinet lead with its funnel stage (NO_IDENTITY, NO_DRIVER, NO_TRIPS_14D, TRIPS_NO_CLAIM, OK).';
