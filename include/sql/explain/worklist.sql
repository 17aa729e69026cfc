-- The lead's worklist rows (at most max_rows, with the total).
select
    count(*) over () as total,
    w.milestone,
    w.driver_id,
    w.reached_on,
    w.detected_at,
    w.resolved_at,
    w.resolved_by_claim_id
from ops.milestone_claim_worklist as w
where w.lead_id = %(lead_id)s
order by w.milestone
limit %(max_rows)s
