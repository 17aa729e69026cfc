-- Open TRIPS_NO_CLAIM worklist rows, oldest milestone first (milestone_claim_worklist_open_idx),
-- with the lead's name (cut at 120 characters); days open counts from the day the milestone was reached (Lima dates).
select
    w.lead_id,
    left(l.external_id, 120) as external_id,
    left(concat_ws(' ', nullif(l.first_name, ''), nullif(l.last_name, '')), 120) as lead_name,
    w.driver_id,
    w.milestone,
    w.reached_on,
    (ops.lead_date(now()) - w.reached_on)::integer as days_open,
    w.detected_at
from ops.milestone_claim_worklist as w
left join public.module_ct_cabinet_leads as l on w.lead_id = l.id
where w.resolved_at is null
order by w.reached_on, w.lead_id, w.milestone
limit %(max_rows)s
