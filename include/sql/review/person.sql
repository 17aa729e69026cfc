-- A person a reviewer names: exists, its DOC.
select
    r.person_key,
    r.name_folded,
    (
        select pk.key_value from canon.person_keys as pk
        where pk.person_key = r.person_key and pk.key_type = 'DOC'
    ) as doc
from canon.identity_registry as r
where r.person_key = %(person_key)s
