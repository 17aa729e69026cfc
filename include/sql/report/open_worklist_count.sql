-- How many worklist rows are open (partial index milestone_claim_worklist_open_idx).
select count(*)::integer as open_rows
from ops.milestone_claim_worklist
where resolved_at is null
