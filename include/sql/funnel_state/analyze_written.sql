-- Fresh planner statistics for the tables a big run has just filled (V015 explains why): run before
-- recomputing a large backlog of marked leads. A table still empty (the kept state before a first
-- run's recompute) is left alone: analysed empty, the planner would trust it to stay empty while the
-- recompute fills it. A role that may not analyse a table gets a warning.
do $$
begin
    analyze canon.identity_links, ops.lead_marks;
    if exists (select from ops.lead_state) then
        analyze ops.lead_state;
    end if;
    if exists (select from ops.milestone_claim_worklist) then
        analyze ops.milestone_claim_worklist;
    end if;
end;
$$
