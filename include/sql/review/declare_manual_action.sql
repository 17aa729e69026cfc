-- Declare the audited manual action the guard on canon.identity_links requires (V002, V009), for
-- this transaction only.
select set_config('cabinet_leads.manual_action', %(reason)s, true) as declared
