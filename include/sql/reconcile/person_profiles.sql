-- What the matcher needs of each candidate or linked person beyond its keys (C0.3): its DOC and
-- licences (a record whose DOC or LICENSE differs from them conflicts) and the names of the records
-- linked to it, at most 20 distinct (a link through the phone alone needs the names to agree with
-- one of them).
with

wanted as (
    select distinct p.person_key
    from unnest(%(person_keys)s::bigint[]) as p (person_key)
)

select
    wanted.person_key,
    (
        select pk.key_value from canon.person_keys as pk
        where pk.person_key = wanted.person_key and pk.key_type = 'DOC'
    ) as doc,
    coalesce(lic.licenses, '{}') as licenses,
    coalesce(nm.given_names, '{}') as given_names,
    coalesce(nm.full_names, '{}') as full_names
from wanted
cross join
    lateral (
        select array_agg(pk.key_value order by pk.key_value) as licenses
        from canon.person_keys as pk
        where pk.person_key = wanted.person_key and pk.key_type = 'LICENSE'
    ) as lic
cross join
    lateral (  -- noqa: ST05
        select
            array_agg(n.given_name order by n.given_name, n.name_folded) as given_names,
            array_agg(n.name_folded order by n.given_name, n.name_folded) as full_names
        from (  -- noqa: ST05
            select distinct
                rk.given_name,
                rk.name_folded
            from canon.identity_links as l
            inner join canon.record_keys as rk
                on l.source_table = rk.source_table and l.source_pk = rk.source_pk
            where l.person_key = wanted.person_key
            order by rk.given_name, rk.name_folded
            limit 20
        ) as n
    ) as nm
