-- Store freshly normalised keys (only for records whose source changed). The source's updated_at
-- comes back as the text the load statement sent, so any timestamp round-trips exactly. The record
-- then awaits its identity decision (identity_pending, cleared by clear_identity_pending.sql in the
-- transaction that decides).
insert into canon.record_keys (
    source_table, source_pk, source_updated_at, source_fingerprint, phone, doc, license, plate,
    name_folded, given_name, problems, invalid_reason, identity_pending
)
select
    %(source_table)s,
    r.source_pk,
    r.source_updated_at::timestamptz,
    r.source_fingerprint,
    r.phone,
    r.doc,
    r.license,
    r.plate,
    r.name_folded,
    r.given_name,
    r.problems,
    r.invalid_reason,
    true as identity_pending
from
    unnest(
        %(source_pk)s::text[],
        %(source_updated_at)s::text[],
        %(source_fingerprint)s::bigint[],
        %(phone)s::text[],
        %(doc)s::text[],
        %(license)s::text[],
        %(plate)s::text[],
        %(name_folded)s::text[],
        %(given_name)s::text[],
        %(problems)s::jsonb[],
        %(invalid_reason)s::text[]
    )
        as r (
            source_pk, source_updated_at, source_fingerprint, phone, doc, license, plate,
            name_folded, given_name, problems, invalid_reason
        )
on conflict (source_table, source_pk) do update set
    source_updated_at = excluded.source_updated_at,
    source_fingerprint = excluded.source_fingerprint,
    phone = excluded.phone,
    doc = excluded.doc,
    license = excluded.license,
    plate = excluded.plate,
    name_folded = excluded.name_folded,
    given_name = excluded.given_name,
    problems = excluded.problems,
    invalid_reason = excluded.invalid_reason,
    identity_pending = true,
    normalised_at = now()
