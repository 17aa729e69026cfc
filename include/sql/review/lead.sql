-- What a decision needs of one lead besides its keys (those come from the job's loader,
-- engine.record_keys.load): that it exists, its link and its standing manual decision.
select
    l.id as lead_id,
    link.person_key as linked_person,
    link.match_rule,
    m.decision as standing,
    m.person_key as standing_person,
    m.decision_id as standing_decision
from public.module_ct_cabinet_leads as l
left join canon.identity_links as link
    on link.source_table = 'module_ct_cabinet_leads' and link.source_pk = l.id::text
left join ops.manual_lead_state as m on l.id = m.lead_id
where l.id = %(lead_id)s
