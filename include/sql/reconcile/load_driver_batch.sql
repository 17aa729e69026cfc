-- One batch of driver accounts: raw fields, last normalised keys (fresh when stored for the
-- current updated_at) and current link. Timestamps Python cannot hold are decided here: updated_at
-- travels as text, and `unrepresentable` names the columns holding such values (INVALID_DATA).
-- The repeated `= any(keys)` keeps each join an index lookup of the batch, whatever the statistics say.
-- With `stale_only` (the record-keys phase) only the records whose stored keys are stale come back;
-- `identity_pending`: keys stored, identity not yet decided.
select
    d.driver_id as source_pk,
    d.updated_at::text as updated_at,
    null::timestamptz as lead_created_at,
    nullif(concat_ws(
        ', ',
        case when ops.representable_ts(d.updated_at) is null then 'updated_at = ' || d.updated_at end,
        case
            when d.hired_at is not null and ops.representable_ts(d.hired_at) is null
                then 'hired_at = ' || d.hired_at
        end
    ), '') as unrepresentable,
    -- over-long fields stop here: the job sees their lengths and at most max_len characters
    array[
        length(d.first_name), length(d.last_name), length(d.phone),
        length(d.document_number), length(d.license_number), length(d.plate)
    ] as field_lengths,
    left(d.first_name, %(max_len)s) as first_name,
    left(d.last_name, %(max_len)s) as last_name,
    left(d.phone, %(max_len)s) as phone,
    left(d.document_number, %(max_len)s) as document_number,
    left(d.license_number, %(max_len)s) as license_number,
    left(d.plate, %(max_len)s) as plate,
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
cross join
    lateral (
        select
            fp.fingerprint,
            coalesce(rk.source_updated_at = d.updated_at and rk.source_fingerprint = fp.fingerprint, false)
                as keys_fresh
        from (select ops.driver_fingerprint(d) as fingerprint) as fp
    ) as f
where
    d.driver_id = any(%(ids)s::text[])
    and not (%(stale_only)s::boolean and f.keys_fresh)
order by d.hired_at asc nulls last, d.driver_id asc
