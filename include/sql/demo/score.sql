-- Score the job's identities against the seeder's ground truth (bench, tests; the job never reads
-- demo): canonical persons whose linked records belong to more than one true person ("mixed"),
-- leads linked, and leads whose true person has a linked record elsewhere but who are not linked.
with

truth as (
    select
        'module_ct_cabinet_leads' as source_table,
        t.lead_id::text as source_pk,
        t.person_id
    from demo.lead_truth as t
    union all
    select
        'drivers' as source_table,
        d.driver_id as source_pk,
        d.person_id
    from demo.driver_truth as d
),

linked as (
    select
        l.person_key,
        l.source_table,
        truth.person_id
    from canon.identity_links as l
    inner join truth on l.source_table = truth.source_table and l.source_pk = truth.source_pk
),

per_person as (
    select
        linked.person_key,
        count(distinct linked.person_id) as true_persons
    from linked
    group by linked.person_key
)

select
    (select count(*) filter (where per_person.true_persons > 1) from per_person)::integer as mixed_persons,
    (select count(*) from per_person)::integer as persons,
    (
        select count(*) filter (where linked.source_table = 'module_ct_cabinet_leads') from linked
    )::integer as leads_linked,
    (select count(*) from demo.lead_truth)::integer as leads
