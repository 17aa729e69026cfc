-- C0.2/C0.5: attach keys; the primary key (key_type, key_value) refuses a key owned by another
-- person, which aborts and retries the batch instead of ever sharing a key.
insert into canon.person_keys (key_type, key_value, person_key, source_table, source_pk, run_id)
select
    k.key_type,
    k.key_value,
    k.person_key,
    k.source_table,
    k.source_pk,
    %(run_id)s
from unnest(
    %(key_type)s::text[], %(key_value)s::text[], %(person_key)s::bigint[],
    %(source_table)s::text[], %(source_pk)s::text[]
) as k (key_type, key_value, person_key, source_table, source_pk)
