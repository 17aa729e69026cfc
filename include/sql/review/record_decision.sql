-- Record a decision (ops.manual_decisions, append only) and make it the lead's standing decision.
with

decided as (
    insert into ops.manual_decisions (
        decision_id, lead_id, decision, person_before, person_after, keys_attached, keys_detached,
        keys_not_attached, doc_is_wrong, decided_by, why
    )
    overriding system value
    values (
        %(decision_id)s, %(lead_id)s, %(decision)s, %(person_before)s, %(person_after)s,
        %(keys_attached)s::jsonb, %(keys_detached)s::jsonb, %(keys_not_attached)s::jsonb,
        %(doc_is_wrong)s, %(decided_by)s, %(why)s
    )
    returning decision_id, lead_id, decision, person_after, decided_at
)

insert into ops.manual_lead_state as s (lead_id, decision, person_key, decision_id, decided_at)
select
    decided.lead_id,
    decided.decision,
    decided.person_after,
    decided.decision_id,
    decided.decided_at
from decided
on conflict (lead_id) do update
    set
        decision = excluded.decision,
        person_key = excluded.person_key,
        decision_id = excluded.decision_id,
        decided_at = excluded.decided_at
returning s.decision_id, s.decided_at
