select
    link.person_key,
    link.match_rule,
    link.evidence,
    link.linked_at,
    link.run_id
from canon.identity_links as link
where link.source_table = 'module_ct_cabinet_leads' and link.source_pk = %(lead_id)s::text
