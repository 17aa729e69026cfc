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
    pkeys.doc,
    coalesce(pkeys.licenses, '{}') as licenses,
    coalesce(nm.given_names, '{}') as given_names,
    coalesce(nm.full_names, '{}') as full_names
from wanted
cross join
    lateral (
        -- one scan of the person's keys by person_key; the key type is a filter, not an index
        -- condition (unknown statistics once made the planner AND in the primary key's index)
        select
            max(pk.key_value) filter (where pk.key_type = 'DOC') as doc,
            array_agg(pk.key_value order by pk.key_value) filter (where pk.key_type = 'LICENSE') as licenses
        from canon.person_keys as pk
        where pk.person_key = wanted.person_key
    ) as pkeys
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
            -- a lateral with a LIMIT is never flattened into a join: one primary-key probe per
            -- link, whatever the statistics say (a cold run grows these tables from nothing)
            cross join
                lateral (
                    select
                        k.given_name,
                        k.name_folded
                    from canon.record_keys as k
                    where k.source_table = l.source_table and k.source_pk = l.source_pk
                    limit 1  -- noqa: AM09
                ) as rk
            where l.person_key = wanted.person_key
            order by rk.given_name, rk.name_folded
            limit 20
        ) as n
    ) as nm
