-- TRIPS_NO_CLAIM worklist for a batch of leads: open a row per reached milestone without a claim,
-- resolve open rows whose claim has arrived, reopen a resolved row whose claim disappeared.
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
            resolved_at = null,
            resolved_by_claim_id = null,
            run_id = excluded.run_id
        where w.resolved_at is not null
    returning 1
),

resolved as (
    update ops.milestone_claim_worklist as w
    set
        resolved_at = now(),
        resolved_by_claim_id = milestones.claim_id
    from milestones
    where
        w.lead_id = milestones.lead_id
        and w.milestone = milestones.milestone
        and milestones.claim_id is not null
        and w.resolved_at is null
    returning 1
)

select
    (select count(*) from opened)::integer as worklist_opened,
    (select count(*) from resolved)::integer as worklist_resolved
