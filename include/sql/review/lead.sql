-- What a decision needs of one lead: its raw fields (to normalise it when the job's stored keys are
-- missing or older than the row), its stored keys, its link and its standing manual decision.
select
    l.id as lead_id,
    l.first_name,
    l.last_name,
    l.phone as raw_phone,
    l.document_number,
    l.license_number,
    l.plate,
    coalesce(rk.source_updated_at = l.updated_at, false) as keys_fresh,
    rk.phone,
    rk.doc,
    rk.license,
    rk.name_folded,
    rk.given_name,
    rk.invalid_reason,
    link.person_key as linked_person,
    link.match_rule,
    m.decision as standing,
    m.person_key as standing_person,
    m.decision_id as standing_decision
from public.module_ct_cabinet_leads as l
left join canon.record_keys as rk
    on rk.source_table = 'module_ct_cabinet_leads' and rk.source_pk = l.id::text
left join canon.identity_links as link
    on link.source_table = 'module_ct_cabinet_leads' and link.source_pk = l.id::text
left join ops.manual_lead_state as m on l.id = m.lead_id
where l.id = %(lead_id)s
