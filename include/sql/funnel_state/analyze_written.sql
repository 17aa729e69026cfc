-- Fresh planner statistics for the tables a big run has just filled (V015 explains why): run before
-- recomputing a large backlog of marked leads. A role that may not analyse a table gets a warning.
analyze canon.identity_links, ops.lead_state, ops.milestone_claim_worklist, ops.lead_marks
