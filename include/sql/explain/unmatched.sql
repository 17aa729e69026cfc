-- Why the lead is not linked: its latest outcomes, newest first.
select
    u.snapshot_date,
    u.reason_code,
    u.evidence,
    u.run_id,
    u.recorded_at
from canon.identity_unmatched as u
where u.source_table = 'module_ct_cabinet_leads' and u.source_pk = %(lead_id)s::text
order by u.snapshot_date desc
limit 5
