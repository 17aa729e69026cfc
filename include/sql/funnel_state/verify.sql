-- The kept funnel state against the live views, in full: every lead whose ops.lead_state row
-- differs from ops.v_cabinet_leads_limbo (or exists on one side only), and every (lead, milestone)
-- whose open worklist row differs from ops.v_cabinet_lead_milestones' unclaimed milestones; leads
-- still marked for a recompute (ops.lead_marks: a run is under way) are not counted.
-- Returns at most max_rows differences, each with the total count of differences.
with

live_state as (
    select
        v.lead_id,
        v.person_key,
        v.driver_id,
        v.limbo_stage,
        v.trips_14d
    from ops.v_cabinet_leads_limbo as v
),

kept_state as (
    select
        s.lead_id,
        s.person_key,
        s.driver_id,
        s.limbo_stage,
        s.trips_14d
    from ops.lead_state as s
),

state_diff as (
    select
        'lead_state' as what,
        coalesce(live_state.lead_id, kept_state.lead_id) as lead_id,
        null::integer as milestone,
        to_jsonb(live_state) as live,
        to_jsonb(kept_state) as kept
    from live_state
    full join kept_state on live_state.lead_id = kept_state.lead_id
    where
        (live_state.lead_id, live_state.person_key, live_state.driver_id, live_state.limbo_stage, live_state.trips_14d)
        is distinct from
        (kept_state.lead_id, kept_state.person_key, kept_state.driver_id, kept_state.limbo_stage, kept_state.trips_14d)
),

live_open as (
    select
        m.lead_id,
        m.milestone,
        m.person_key,
        m.driver_id,
        m.reached_on
    from ops.v_cabinet_lead_milestones as m
    where m.claim_id is null
),

kept_open as (
    select
        w.lead_id,
        w.milestone,
        w.person_key,
        w.driver_id,
        w.reached_on
    from ops.milestone_claim_worklist as w
    where w.resolved_at is null
),

worklist_diff as (
    select
        'worklist' as what,
        coalesce(live_open.lead_id, kept_open.lead_id) as lead_id,
        coalesce(live_open.milestone, kept_open.milestone) as milestone,
        to_jsonb(live_open) as live,
        to_jsonb(kept_open) as kept
    from live_open
    full join kept_open on live_open.lead_id = kept_open.lead_id and live_open.milestone = kept_open.milestone
    where
        (live_open.lead_id, live_open.person_key, live_open.driver_id, live_open.reached_on)
        is distinct from
        (kept_open.lead_id, kept_open.person_key, kept_open.driver_id, kept_open.reached_on)
),

diffs as (
    select * from state_diff
    union all
    select * from worklist_diff
),

-- a lead still marked is waiting for its recompute (a run is under way): not drift
pending as (
    select m.lead_id
    from ops.lead_marks as m
)

select
    diffs.what,
    diffs.lead_id,
    diffs.milestone,
    diffs.live,
    diffs.kept,
    count(*) over () as total
from diffs
where
    not exists (
        select 1 from pending
        where pending.lead_id = diffs.lead_id
    )
order by diffs.lead_id, diffs.what, diffs.milestone
limit %(max_rows)s
