-- Each reached milestone of a linked lead, with the day it was reached and its claim if any: the
-- source of the TRIPS_NO_CLAIM worklist. All its work is per lead (lateral) and it reads the limbo
-- view once, so a filter on lead_id reaches the base table whatever the planner's statistics say.
-- Only driver accounts that still exist upstream count (as in the limbo view).

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
