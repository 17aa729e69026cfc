-- Hot keys among the batch's strong key values: values that the data itself shows are shared by
-- records of clearly different people, i.e. the records carrying the value (canon.record_keys,
-- this batch's included; at most `scan` of them are looked at) show more than `hot_limit`
-- distinct first given names or more than `hot_limit` distinct DOCs. No link is made through
-- such a value (a form placeholder, a call-centre phone, a shared office licence).
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
    h.records,
    h.given_names,
    h.docs
from wanted
cross join
    lateral (  -- noqa: ST05
        select
            count(*)::integer as records,
            count(distinct nullif(split_part(c.given_name, ' ', 1), ''))::integer as given_names,
            count(distinct c.doc)::integer as docs
        -- one index lookup per value (record_keys_phone_idx, _doc_idx, _license_idx)
        from (  -- noqa: ST05
            select
                rk.given_name,
                rk.doc
            from canon.record_keys as rk
            where wanted.key_type = 'PHONE' and rk.phone = wanted.key_value
            union all
            select
                rk.given_name,
                rk.doc
            from canon.record_keys as rk
            where wanted.key_type = 'DOC' and rk.doc = wanted.key_value
            union all
            select
                rk.given_name,
                rk.doc
            from canon.record_keys as rk
            where wanted.key_type = 'LICENSE' and rk.license = wanted.key_value
            limit %(scan)s
        ) as c
    ) as h
where h.given_names > %(hot_limit)s or h.docs > %(hot_limit)s
