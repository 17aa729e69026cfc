-- Leads linked to the person who owns a normalised phone: the primary key of canon.person_keys,
-- then identity_links_person_idx. (Unlinked leads with that phone are not found: canon.record_keys
-- has no index on phone.)
select l.source_pk::bigint as lead_id
from canon.person_keys as pk
inner join canon.identity_links as l
    on pk.person_key = l.person_key and l.source_table = 'module_ct_cabinet_leads'
where pk.key_type = 'PHONE' and pk.key_value = %(phone)s
order by lead_id
limit %(max_rows)s
