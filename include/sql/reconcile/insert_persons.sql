insert into canon.identity_registry (person_key, created_by_run_id, name_folded, given_name)
select
    p.person_key,
    %(run_id)s,
    p.name_folded,
    p.given_name
from unnest(%(person_key)s::bigint[], %(name_folded)s::text[], %(given_name)s::text[])
    as p (person_key, name_folded, given_name)
