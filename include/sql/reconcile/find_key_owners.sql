-- Existing owners of the batch's strong keys, with what the matcher needs of each person.
with

wanted as (
    select distinct
        w.key_type,
        w.key_value
    from unnest(%(key_types)s::text[], %(key_values)s::text[]) as w (key_type, key_value)
)

select
    pk.key_type,
    pk.key_value,
    pk.person_key,
    r.name_folded,
    r.given_name,
    doc.key_value as person_doc
from wanted
inner join canon.person_keys as pk
    on wanted.key_type = pk.key_type and wanted.key_value = pk.key_value
inner join canon.identity_registry as r on pk.person_key = r.person_key
left join canon.person_keys as doc
    on pk.person_key = doc.person_key and doc.key_type = 'DOC'
