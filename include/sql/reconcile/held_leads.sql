-- Which of a batch's leads a reviewer dismissed or unlinked by hand (their standing decision in
-- ops.manual_lead_state): the job leaves them alone (issue 11).
select m.lead_id::text as source_pk
from ops.manual_lead_state as m
where
    m.lead_id = any(%(source_pk)s::bigint[])
    and m.decision in ('dismiss', 'unlink')
