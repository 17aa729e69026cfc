-- No plan cliffs after a big run (issue 10): a cold run writes most of the rows of the identity and
-- funnel-state tables within seconds, long before autovacuum analyses them, and the planner's stale
-- estimates (e.g. "no driver links yet") turn the funnel recompute's joins into nested loops over
-- whole tables. The job therefore runs ANALYZE on the tables it has just filled before recomputing
-- a big backlog (include/sql/funnel_state/analyze_written.sql). ANALYZE needs the table's owner or,
-- from PostgreSQL 17, the MAINTAIN privilege: granted here to the job role where the server has it.
-- On older servers a job running as a non-owner role gets a warning and the tables are left to
-- autovacuum (README: Performance).

do $$
begin
    if current_setting('server_version_num')::integer >= 170000 then
        execute 'grant maintain on canon.identity_links, canon.record_keys, canon.person_keys,'
            ' canon.identity_registry, ops.lead_state, ops.milestone_claim_worklist, ops.lead_marks'
            ' to cabinet_leads_job';
    end if;
end;
$$;
