-- Test oracle: the funnel views as they were written before the set-based rewrite (per-lead lateral
-- subqueries, rules spelled out inline), created as temporary views. tests/integration/test_funnel_state.py
-- checks the set-based views equal them on randomised data sets and change sequences.
create temporary view limbo_reference as
with

leads as (
    select
        l.id as lead_id,
        l.external_id,
        ops.representable_ts(l.lead_created_at) as lead_created_at,
        (ops.representable_ts(l.lead_created_at) at time zone 'America/Lima')::date as lead_date
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
            -- an account deleted upstream is no account (its link stays for audit)
            inner join public.drivers as d on dl.source_pk = d.driver_id
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
                    inner join public.drivers as cd on c.driver_id = cd.driver_id
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
    milestones_unclaimed,
    -- issue 11: a reviewer dismissed the lead (the flag only; the stage is the data's)
    exists (
        select 1 from ops.manual_lead_state as d
        where d.lead_id = funnel.lead_id and d.decision = 'dismiss'
    ) as dismissed
from funnel;

create temporary view milestones_reference as
with

limbo as (
    select
        lead_id,
        lead_date,
        person_key,
        driver_id,
        milestones_reached
    from limbo_reference
    where cardinality(milestones_reached) > 0
)

select
    limbo.lead_id,
    limbo.person_key,
    limbo.driver_id,
    reached.milestone,
    reached_day.reached_on,
    claim.claim_id
from limbo
cross join lateral unnest(limbo.milestones_reached) as reached (milestone)
-- per (lead, milestone) work stays in lateral subqueries on purpose (index lookups per lead)
cross join
    lateral (  -- noqa: ST05
        select min(daily.trip_date) as reached_on
        from (
            select
                t.trip_date,
                sum(sum(t.completed_trips)) over (order by t.trip_date) as cumulative_trips
            from canon.identity_links as dl
            inner join public.drivers as d on dl.source_pk = d.driver_id
            inner join public.driver_daily_trips as t
                on
                    dl.source_pk = t.driver_id
                    and t.trip_date between limbo.lead_date and limbo.lead_date + 13
            where dl.source_table = 'drivers' and dl.person_key = limbo.person_key
            group by t.trip_date
        ) as daily
        where daily.cumulative_trips >= reached.milestone
    ) as reached_day
cross join lateral (
    select min(c.claim_id) as claim_id
    from public.milestone_claims as c
    inner join canon.identity_links as cl
        on cl.source_table = 'drivers' and c.driver_id = cl.source_pk
    inner join public.drivers as cd on c.driver_id = cd.driver_id
    where
        cl.person_key = limbo.person_key
        and c.milestone = reached.milestone
        and coalesce(lower(c.status), '') not in ('rejected', 'cancelled')
) as claim;
