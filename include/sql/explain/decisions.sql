-- The manual decisions on a lead, newest first (at most max_rows, with the total).
select
    d.decision_id,
    d.decision,
    d.person_before,
    d.person_after,
    d.keys_attached,
    d.keys_detached,
    d.keys_not_attached,
    d.doc_is_wrong,
    d.decided_by,
    d.why,
    d.db_user,
    d.decided_at,
    count(*) over () as total
from ops.manual_decisions as d
where d.lead_id = %(lead_id)s
order by d.decision_id desc
limit %(max_rows)s
