-- Existing owners of the batch's strong keys, with what the matcher needs of each person.
-- No plan cliff, whatever the statistics say (a cold run grows these tables from nothing): each
-- lookup is a lateral subquery with a LIMIT, which the planner cannot flatten into a join, so it
-- stays one primary-key (or person_key) index probe per wanted key instead of a scan of the table.
-- Each LIMIT 1 reads a unique key (C0.2 for a key value, at most one DOC per person).
with

wanted as (
    select distinct
        w.key_type,
        w.key_value
    from unnest(%(key_types)s::text[], %(key_values)s::text[]) as w (key_type, key_value)
)

select
    wanted.key_type,
    wanted.key_value,
    o.person_key,
    r.name_folded,
    r.given_name,
    doc.key_value as person_doc
from wanted
cross join
    lateral (
        select pk.person_key
        from canon.person_keys as pk
        where pk.key_type = wanted.key_type and pk.key_value = wanted.key_value
        limit 1  -- noqa: AM09
    ) as o
cross join
    lateral (
        select
            reg.name_folded,
            reg.given_name
        from canon.identity_registry as reg
        where reg.person_key = o.person_key
        limit 1  -- noqa: AM09
    ) as r
left join
    lateral (
        select d.key_value
        from canon.person_keys as d
        where d.person_key = o.person_key and d.key_type = 'DOC'
        limit 1  -- noqa: AM09
    ) as doc
    on true
