-- One writer of ops.alert_state at a time (held until the end of the transaction).
select pg_advisory_xact_lock(hashtext('cabinet_leads.alert_state'))
