-- The live definition of the funnel (SPEC section 5), queried unchanged by the runbook; the job's
-- kept state (ops.lead_state, the claim worklist) must equal it after every run (`cabinet-leads
-- verify` checks). Applied by `cabinet-leads migrate` after the versioned migrations whenever this
-- file changes (include/sql/views/: one place for each view; columns may only be added at the end).
-- Lead date = creation date in America/Lima (NULL when the creation time is not representable, see
-- ops.representable_ts); window = lead_date .. lead_date + 13 (14 days); trips and claims count
-- across all driver accounts of the lead's person that still exist upstream; the driver shown is the
-- account with most trips in the window (ties: earliest hired_at, then lowest driver_id).
-- Per-lead work sits in lateral subqueries so a filter on lead_id or lead_date uses indexes.

create or replace view ops.v_cabinet_leads_limbo as
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
    milestones_unclaimed
from funnel;

comment on view ops.v_cabinet_leads_limbo is
'One row per cabinet lead with its funnel stage (NO_IDENTITY, NO_DRIVER, NO_TRIPS_14D, TRIPS_NO_CLAIM, OK).';
