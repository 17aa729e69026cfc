-- Leads for a normalised phone: those whose own normalised phone it is (linked or not, through
-- record_keys_phone_idx) and those linked to the person who owns it (canon.person_keys primary
-- key, then identity_links_person_idx).
with

own_phone as (
    select rk.source_pk::bigint as lead_id
    from canon.record_keys as rk
    where rk.phone = %(phone)s and rk.source_table = 'module_ct_cabinet_leads'
),

same_person as (
    select l.source_pk::bigint as lead_id
    from canon.person_keys as pk
    inner join canon.identity_links as l
        on pk.person_key = l.person_key and l.source_table = 'module_ct_cabinet_leads'
    where pk.key_type = 'PHONE' and pk.key_value = %(phone)s
),

found as (
    select lead_id from own_phone
    union
    select lead_id from same_person
)

-- at most max_rows leads, with how many were found in all
select
    lead_id,
    count(*) over () as total
from found
order by lead_id
limit %(max_rows)s
