-- TRIPS_NO_CLAIM worklist of a set of marked leads, from the live milestones view: open a row per
-- reached milestone without a claim (or reopen it), keep open rows' driver and day current, and
-- close every other open row of those leads: 'claimed' when its claim arrived, 'not_reached' when
-- the milestone is no longer reached (trips corrected, an account deleted), 'source_deleted' when
-- the lead is gone upstream.
with

milestones as (
    select
        m.lead_id,
        m.person_key,
        m.driver_id,
        m.milestone,
        m.reached_on,
        m.claim_id
    from ops.v_cabinet_lead_milestones as m
    where m.lead_id = any(%(ids)s::bigint[])
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
            when
                exists (
                    select 1 from public.module_ct_cabinet_leads as l
                    where l.id = w.lead_id
                )
                then 'not_reached'
            else 'source_deleted'
        end
    from (
        select
            o.lead_id,
            o.milestone,
            milestones.claim_id
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
