-- The lead, its funnel row and its normalised keys. Raw text is cut to max_chars + 1 characters
-- (the caller marks the cut); an unrepresentable creation time is NULL (the view clamps it).
select
    l.id as lead_id,
    left(l.external_id, %(max_chars)s + 1) as external_id,
    v.lead_created_at,
    left(l.first_name, %(max_chars)s + 1) as first_name,
    left(l.last_name, %(max_chars)s + 1) as last_name,
    left(l.phone, %(max_chars)s + 1) as phone,
    left(l.document_number, %(max_chars)s + 1) as document_number,
    left(l.license_number, %(max_chars)s + 1) as license_number,
    left(l.plate, %(max_chars)s + 1) as plate,
    left(l.park_id, %(max_chars)s + 1) as park_id,
    left(l.source, %(max_chars)s + 1) as source,
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
    rk.invalid_reason,
    rk.normalised_at
from public.module_ct_cabinet_leads as l
inner join ops.v_cabinet_leads_limbo as v on l.id = v.lead_id
left join canon.record_keys as rk
    on rk.source_table = 'module_ct_cabinet_leads' and rk.source_pk = l.id::text
where l.id = %(lead_id)s
