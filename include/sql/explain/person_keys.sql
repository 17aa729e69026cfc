-- The person's strong keys (at most max_rows, with the total).
select
    count(*) over () as total,
    pk.key_type,
    pk.key_value,
    pk.source_table,
    pk.source_pk,
    pk.attached_at
from canon.person_keys as pk
where pk.person_key = %(person_key)s
order by pk.key_type, pk.key_value
limit %(max_rows)s
