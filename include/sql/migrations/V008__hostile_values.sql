-- Hostile timestamps (issue 9): a source timestamp that Python cannot hold (infinity, -infinity,
-- BC dates, years after 9999) must not stop a run, a view, the audit, the report or explain.
-- The rule lives here, in SQL, so reading a raw row is never the part that fails:
--   ops.representable_ts(ts) is ts when it lies in [0001-01-02, 9999-12-01) UTC (a month's margin
--   for the 14-day windows computed from it), else NULL.
-- The job marks a lead or driver account holding such a value INVALID_DATA (reason naming the
-- column). The limbo view clamps: such a lead keeps its row (NO_IDENTITY: it is not linked, unless
-- it was before the edit) with lead_created_at, lead_date and week_start NULL, so it falls outside
-- every window; the weekly
-- audit has no week for it and leaves it out. Trips on such dates never fall in a window; claims
-- count whatever their claimed_at (the views never read it); explain shows NULL for such values.

create function ops.representable_ts(ts timestamptz) returns timestamptz
language sql immutable parallel safe
return case
    when ts >= '0001-01-02 00:00:00+00'::timestamptz and ts < '9999-12-01 00:00:00+00'::timestamptz then ts
end;

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

create or replace view ops.v_cabinet_14d_funnel_audit_weekly as
with

limbo as (
    select
        week_start,
        limbo_stage
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
    (count(*) filter (where limbo_stage = 'OK'))::integer as limbo_ok
from limbo
group by week_start;

-- Hot keys (issue 9): how many records carry a DOC or LICENSE value is counted per batch.
create index record_keys_doc_idx on canon.record_keys (doc)
where doc is not null;

create index record_keys_license_idx on canon.record_keys (license)
where license is not null;
