-- Links whose source record was deleted upstream: kept (C0.1, audit) but counting for nothing in the
-- funnel (the views join the source rows). Reported by `audit` and `health`.
with

lead_links as (
    select count(*)::integer as n
    from canon.identity_links as link
    where
        link.source_table = 'module_ct_cabinet_leads'
        and not exists (
            select 1 from public.module_ct_cabinet_leads as l
            where l.id = link.source_pk::bigint
        )
),

driver_links as (
    select count(*)::integer as n
    from canon.identity_links as link
    where
        link.source_table = 'drivers'
        and not exists (
            select 1 from public.drivers as d
            where d.driver_id = link.source_pk
        )
)

select
    lead_links.n as lead_links,
    driver_links.n as driver_links
from lead_links
cross join driver_links
