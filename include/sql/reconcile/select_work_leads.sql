-- Leads of one run's scope that need work, in arrival order (SPEC section 6).
-- Scope: the recent window [anchor - recent_days, anchor) and/or every lead whose last known
-- stage is one of limbo_stages (a lead never processed counts as NO_IDENTITY), optionally
-- restricted to a lead id range (one mapped Airflow task).
-- Needs work: never processed; changed upstream since last processed; NO_DRIVER while its
-- person now has a driver account; an open claim gap whose claim has arrived; or a funnel
-- window that is still open (trips can still arrive: lead_date + 13, plus 2 days for late loads).
-- Unlinked, unchanged leads are not re-matched: candidate sets only grow, so an AMBIGUOUS or
-- NO_CANDIDATES outcome can only change when the lead's own data changes.
with

params as (
    select
        %(anchor)s::timestamptz as anchor,
        (%(anchor)s::timestamptz at time zone 'America/Lima')::date as anchor_date,
        %(recent_days)s::integer as recent_days,
        %(process_recent)s::boolean as process_recent,
        %(process_limbo)s::boolean as process_limbo,
        %(limbo_stages)s::text[] as limbo_stages,
        coalesce(%(lo)s::bigint, -9223372036854775808) as lo,
        coalesce(%(hi)s::bigint, 9223372036854775807) as hi
),

scoped as (
    select
        l.id as lead_id,
        l.updated_at,
        s.lead_id is not null as has_state,
        s.limbo_stage,
        s.person_key,
        s.source_updated_at,
        (l.lead_created_at at time zone 'America/Lima')::date + 15 >= p.anchor_date as window_open
    from public.module_ct_cabinet_leads as l
    cross join params as p
    left join ops.lead_state as s on l.id = s.lead_id
    where
        l.id between p.lo and p.hi
        and (
            (
                p.process_recent
                and l.lead_created_at >= p.anchor - make_interval(days => p.recent_days)
                and l.lead_created_at < p.anchor
            )
            or (p.process_limbo and coalesce(s.limbo_stage, 'NO_IDENTITY') = any(p.limbo_stages))
        )
)

select scoped.lead_id
from scoped
where
    not scoped.has_state
    or scoped.source_updated_at is distinct from scoped.updated_at
    or (scoped.window_open and scoped.limbo_stage in ('NO_TRIPS_14D', 'TRIPS_NO_CLAIM', 'OK'))
    or (
        scoped.limbo_stage = 'NO_DRIVER'
        and exists (
            select 1
            from canon.identity_links as d
            where d.source_table = 'drivers' and d.person_key = scoped.person_key
        )
    )
    or (
        scoped.limbo_stage = 'TRIPS_NO_CLAIM'
        and exists (
            select 1
            from ops.milestone_claim_worklist as w
            inner join canon.identity_links as d
                on d.source_table = 'drivers' and w.person_key = d.person_key
            inner join public.milestone_claims as c
                on d.source_pk = c.driver_id and w.milestone = c.milestone
            where
                w.lead_id = scoped.lead_id
                and w.resolved_at is null
                and coalesce(lower(c.status), '') not in ('rejected', 'cancelled')
        )
    )
order by scoped.lead_id
