-- The lead, its funnel row and its normalised keys.
select
    l.id as lead_id,
    l.external_id,
    l.lead_created_at,
    l.first_name,
    l.last_name,
    l.phone,
    l.document_number,
    l.license_number,
    l.plate,
    l.park_id,
    l.source,
    v.lead_date,
    v.week_start,
    v.limbo_stage,
    v.person_key,
    v.driver_id,
    v.trips_14d,
    v.milestones_reached,
    v.milestones_unclaimed,
    rk.phone as key_phone,
    rk.doc as key_doc,
    rk.license as key_license,
    rk.plate as key_plate,
    rk.problems,
    rk.invalid_reason
from public.module_ct_cabinet_leads as l
inner join ops.v_cabinet_leads_limbo as v on l.id = v.lead_id
left join canon.record_keys as rk
    on rk.source_table = 'module_ct_cabinet_leads' and rk.source_pk = l.id::text
where l.id = %(lead_id)s
