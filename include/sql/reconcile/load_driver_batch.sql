-- One batch of driver accounts: raw fields, last normalised keys and current link. The repeated
-- `= any(keys)` keeps each join an index lookup of the batch, whatever the statistics say.
select
    d.driver_id as source_pk,
    d.updated_at,
    null::timestamptz as lead_created_at,
    d.first_name,
    d.last_name,
    d.phone,
    d.document_number,
    d.license_number,
    d.plate,
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
from public.drivers as d
left join canon.record_keys as rk
    on
        rk.source_table = 'drivers'
        and d.driver_id = rk.source_pk
        and rk.source_pk = any(%(keys)s::text[])
left join canon.identity_links as link
    on
        link.source_table = 'drivers'
        and d.driver_id = link.source_pk
        and link.source_pk = any(%(keys)s::text[])
where d.driver_id = any(%(ids)s::text[])
order by d.hired_at asc nulls last, d.driver_id asc
