-- Undo a lead's link (the guard audits it in canon.identity_link_audit).
delete from canon.identity_links
where source_table = 'module_ct_cabinet_leads' and source_pk = %(lead_id)s::text
returning person_key
