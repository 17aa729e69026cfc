-- One batch of leads: raw fields, last normalised keys and current link. The repeated
-- `= any(keys)` keeps each join an index lookup of the batch, whatever the statistics say.
select
    l.id::text as source_pk,
    l.updated_at,
    l.lead_created_at,
    l.first_name,
    l.last_name,
    l.phone,
    l.document_number,
    l.license_number,
    l.plate,
    rk.source_updated_at as keys_updated_at,
    rk.phone as key_phone,
    rk.doc as key_doc,
    rk.license as key_license,
    rk.plate as key_plate,
    rk.name_folded,
    rk.given_name,
    rk.problems,
    rk.invalid_reason,
    link.person_key as linked_person_key
from public.module_ct_cabinet_leads as l
left join canon.record_keys as rk
    on
        rk.source_table = 'module_ct_cabinet_leads'
        and l.id::text = rk.source_pk
        and rk.source_pk = any(%(keys)s::text[])
left join canon.identity_links as link
    on
        link.source_table = 'module_ct_cabinet_leads'
        and l.id::text = link.source_pk
        and link.source_pk = any(%(keys)s::text[])
where l.id = any(%(ids)s::bigint[])
order by l.id
