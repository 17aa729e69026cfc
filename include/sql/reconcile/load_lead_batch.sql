-- One batch of leads: raw fields, last normalised keys (fresh when stored for the
-- current updated_at) and current link. Timestamps Python cannot hold are decided here: updated_at
-- travels as text, and `unrepresentable` names the columns holding such values (INVALID_DATA).
-- The repeated `= any(keys)` keeps each join an index lookup of the batch, whatever the statistics say.
-- With `stale_only` (the record-keys phase) only the records whose stored keys are stale come back;
-- `identity_pending`: keys stored, identity not yet decided.
select
    l.id::text as source_pk,
    l.updated_at::text as updated_at,
    ops.representable_ts(l.lead_created_at) as lead_created_at,
    nullif(concat_ws(
        ', ',
        case when ops.representable_ts(l.updated_at) is null then 'updated_at = ' || l.updated_at end,
        case
            when ops.representable_ts(l.lead_created_at) is null then 'lead_created_at = ' || l.lead_created_at
        end
    ), '') as unrepresentable,
    -- over-long fields stop here: the job sees their lengths and at most max_len characters
    array[
        length(l.first_name), length(l.last_name), length(l.phone),
        length(l.document_number), length(l.license_number), length(l.plate)
    ] as field_lengths,
    left(l.first_name, %(max_len)s) as first_name,
    left(l.last_name, %(max_len)s) as last_name,
    left(l.phone, %(max_len)s) as phone,
    left(l.document_number, %(max_len)s) as document_number,
    left(l.license_number, %(max_len)s) as license_number,
    left(l.plate, %(max_len)s) as plate,
    f.fingerprint,
    f.keys_fresh,
    coalesce(rk.identity_pending, false) as identity_pending,
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
cross join
    lateral (
        select
            fp.fingerprint,
            coalesce(rk.source_updated_at = l.updated_at and rk.source_fingerprint = fp.fingerprint, false)
                as keys_fresh
        from (select ops.lead_fingerprint(l) as fingerprint) as fp
    ) as f
where
    l.id = any(%(ids)s::bigint[])
    and not (%(stale_only)s::boolean and f.keys_fresh)
order by l.id
