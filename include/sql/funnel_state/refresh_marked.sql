-- Recompute the kept funnel state of a set of marked leads in one set-based statement:
--   - fresh: the live definition (ops.v_cabinet_leads_limbo) of exactly those leads, computed once;
--   - ops.lead_state: written only where the outcome changed; the state of leads deleted upstream
--     is dropped;
--   - the TRIPS_NO_CLAIM worklist: a row opened (or reopened) per reached milestone without a
--     claim (ops.lead_milestones, the function ops.v_cabinet_lead_milestones uses), open rows kept
--     current, every other open row of those leads closed: 'claimed' when its claim arrived,
--     'not_reached' when the milestone is no longer reached, 'source_deleted' when the lead is gone.
-- The opened and closed rows are disjoint (reached and unclaimed, or not), so one statement does all.
with

fresh as materialized (
    select
        v.lead_id,
        v.person_key,
        v.driver_id,
        v.limbo_stage,
        v.trips_14d,
        v.lead_date,
        v.milestones_reached,
        l.updated_at
    from ops.v_cabinet_leads_limbo as v
    inner join public.module_ct_cabinet_leads as l on v.lead_id = l.id
    where v.lead_id = any(%(ids)s::bigint[])
),

previous as (
    select
        s.lead_id,
        s.driver_id
    from ops.lead_state as s
    where s.lead_id = any(%(ids)s::bigint[])
),

written as (
    insert into ops.lead_state as s (
        lead_id, person_key, driver_id, limbo_stage, trips_14d, source_updated_at, run_id
    )
    select
        fresh.lead_id,
        fresh.person_key,
        fresh.driver_id,
        fresh.limbo_stage,
        fresh.trips_14d,
        fresh.updated_at,
        %(run_id)s
    from fresh
    on conflict (lead_id) do update
        set
            person_key = excluded.person_key,
            driver_id = excluded.driver_id,
            limbo_stage = excluded.limbo_stage,
            trips_14d = excluded.trips_14d,
            source_updated_at = excluded.source_updated_at,
            run_id = excluded.run_id,
            checked_at = now()
        where
        (s.person_key, s.driver_id, s.limbo_stage, s.trips_14d, s.source_updated_at)
        is distinct from
        (excluded.person_key, excluded.driver_id, excluded.limbo_stage, excluded.trips_14d, excluded.source_updated_at)
    returning 1
),

gone as (
    delete from ops.lead_state as s
    where
        s.lead_id = any(%(ids)s::bigint[])
        and not exists (
            select 1 from fresh
            where fresh.lead_id = s.lead_id
        )
    returning 1
),

milestones as materialized (
    select
        fresh.lead_id,
        fresh.person_key,
        fresh.driver_id,
        m.milestone,
        m.reached_on,
        m.claim_id
    from fresh
    cross join lateral ops.lead_milestones(fresh.person_key, fresh.lead_date, fresh.milestones_reached) as m
    where cardinality(fresh.milestones_reached) > 0
),

opened as (
    insert into ops.milestone_claim_worklist as w (lead_id, person_key, driver_id, milestone, reached_on, run_id)
    select
        milestones.lead_id,
        milestones.person_key,
        milestones.driver_id,
        milestones.milestone,
        milestones.reached_on,
        %(run_id)s
    from milestones
    where milestones.claim_id is null
    on conflict (lead_id, milestone) do update
        set
            person_key = excluded.person_key,
            driver_id = excluded.driver_id,
            reached_on = excluded.reached_on,
            resolved_at = null,
            resolved_by_claim_id = null,
            resolution = null,
            run_id = excluded.run_id
        where
        w.resolved_at is not null
        or (w.person_key, w.driver_id, w.reached_on)
        is distinct from (excluded.person_key, excluded.driver_id, excluded.reached_on)
    returning (w.xmax = 0) as inserted
),

closed as (
    update ops.milestone_claim_worklist as w
    set
        resolved_at = now(),
        resolved_by_claim_id = m.claim_id,
        resolution = case
            when m.claim_id is not null then 'claimed'
            when m.lead_exists then 'not_reached'
            else 'source_deleted'
        end
    from (
        select
            o.lead_id,
            o.milestone,
            milestones.claim_id,
            exists(
                select 1 from fresh
                where fresh.lead_id = o.lead_id
            ) as lead_exists
        from ops.milestone_claim_worklist as o
        left join milestones on o.lead_id = milestones.lead_id and o.milestone = milestones.milestone
        where
            o.lead_id = any(%(ids)s::bigint[])
            and o.resolved_at is null
            and (milestones.lead_id is null or milestones.claim_id is not null)
    ) as m
    where w.lead_id = m.lead_id and w.milestone = m.milestone
    returning w.resolution
)

select
    (
        select count(*) from fresh
        left join previous on fresh.lead_id = previous.lead_id
        where fresh.driver_id is not null and previous.driver_id is null
    )::integer as newly_driver_mapped,
    (select count(*) from written)::integer as state_changed,
    (select count(*) from gone)::integer as state_deleted,
    (
        select count(*) from opened
        where inserted
    )::integer as worklist_opened,
    (
        select count(*) from closed
        where resolution = 'claimed'
    )::integer as worklist_resolved,
    (
        select count(*) from closed
        where resolution <> 'claimed'
    )::integer as worklist_closed
