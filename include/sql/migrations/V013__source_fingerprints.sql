-- Change detection that does not trust updated_at alone (issue 15): a fingerprint of the fields the
-- job uses per source row, stored with its normalised keys. `cabinet-leads reconcile --full`
-- re-reads every source row and treats a row whose fingerprint changed as changed, even when the
-- loader forgot to bump updated_at. (Driver accounts' hired_at, trips and claims are fingerprinted
-- per person on every run: funnel_state/mark_changes.sql.)

create function ops.lead_fingerprint(l public.module_ct_cabinet_leads) returns bigint
language sql stable parallel safe
return hashtextextended(
    array[
        l.first_name, l.last_name, l.phone, l.document_number, l.license_number, l.plate,
        extract(epoch from l.lead_created_at)::text
    ]::text,
    0
);

create function ops.driver_fingerprint(d public.drivers) returns bigint
language sql stable parallel safe
return hashtextextended(
    array[
        d.first_name, d.last_name, d.phone, d.document_number, d.license_number, d.plate,
        extract(epoch from d.hired_at)::text
    ]::text,
    0
);

alter table canon.record_keys add column source_fingerprint bigint;
