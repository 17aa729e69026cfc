-- After an unlink: detach the strong keys the lead brought to its former person, except a key that
-- another record still linked to that person holds in its current keys (it stays, and says why).
with

brought as (
    select
        pk.key_type,
        pk.key_value,
        (
            select min(l.source_table || ' ' || l.source_pk)
            from canon.identity_links as l
            inner join canon.record_keys as rk
                on l.source_table = rk.source_table and l.source_pk = rk.source_pk
            where
                l.person_key = pk.person_key
                and pk.key_value = case pk.key_type
                    when 'PHONE' then rk.phone when 'DOC' then rk.doc else rk.license
                end
        ) as needed_by
    from canon.person_keys as pk
    where
        pk.person_key = %(person_key)s
        and pk.source_table = 'module_ct_cabinet_leads'
        and pk.source_pk = %(lead_id)s::text
),

detached as (
    delete from canon.person_keys as pk
    using brought as b
    where
        b.needed_by is null
        and pk.key_type = b.key_type
        and pk.key_value = b.key_value
    returning pk.key_type
)

select
    b.key_type,
    b.key_value,
    b.needed_by,
    (select count(*) from detached) as detached
from brought as b
order by b.key_type
