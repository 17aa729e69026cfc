-- Least privilege: two NOLOGIN group roles, granted only what the job and the dashboard use.
--
--   cabinet_leads_job     the reconcile job (Airflow's reconcile_db connection, the CLI's `run`):
--                         reads the four source tables, writes canon/ops with INSERT/UPDATE only;
--                         identity links are INSERT only; no DELETE, TRUNCATE or CREATE anywhere,
--                         and it can never declare a manual action on the links (guard below).
--   cabinet_leads_reader  the dashboard, `report --html`, `explain`, `limbo`: SELECT only.
--
-- Roles are cluster-wide and created here only if missing (this runs once per database); the
-- grants are per database. Run `cabinet-leads migrate` as the schema owner, then create the login
-- users in the roles (passwords come from your secret store, never from this repository):
--   create role cl_job login password '...' in role cabinet_leads_job;
--   create role cl_dashboard login password '...' in role cabinet_leads_reader;
-- and point Airflow's reconcile_db at cl_job (the dashboard plugin reads the same connection: give
-- the webserver its own reconcile_db with cl_dashboard where it runs apart from the workers).
-- If the owner lacks CREATEROLE, an administrator creates the two NOLOGIN roles first.
--
-- Tables and sequences that later migrations (run by the same owner) create in canon and ops get
-- the job's SELECT/INSERT/UPDATE and the reader's SELECT by default. A later migration that adds a
-- view, or a table the job must not write, revokes what it should not have
-- (tests/integration/test_roles.py checks that no view is writable by the job).

do $$
begin
    if not exists (select from pg_catalog.pg_roles where rolname = 'cabinet_leads_job') then
        begin
            create role cabinet_leads_job nologin;
        exception when duplicate_object or unique_violation then
            null;  -- created meanwhile by a migration of another database
        end;
    end if;
    if not exists (select from pg_catalog.pg_roles where rolname = 'cabinet_leads_reader') then
        begin
            create role cabinet_leads_reader nologin;
        exception when duplicate_object or unique_violation then
            null;
        end;
    end if;
end;
$$;

-- The job: schemas, the four source tables (read only), canon/ops (no DELETE, no TRUNCATE).
grant usage on schema public, canon, ops to cabinet_leads_job;
grant select on
public.module_ct_cabinet_leads,
public.drivers,
public.driver_daily_trips,
public.milestone_claims
to cabinet_leads_job;
grant select, insert, update on all tables in schema canon, ops to cabinet_leads_job;
-- C0.1: links are written once, never rewritten; the audit is written by the guard for others.
revoke update on canon.identity_links from cabinet_leads_job;
revoke all on canon.identity_link_audit from cabinet_leads_job;
-- configuration and the migration record are the owner's
revoke insert, update on ops.milestone_config, ops.schema_migrations from cabinet_leads_job;
-- the views are read, never written (an updatable view would write with its owner's rights)
do $$
declare
    v regclass;
begin
    for v in
        select c.oid::regclass
        from pg_catalog.pg_class as c
        inner join pg_catalog.pg_namespace as n on c.relnamespace = n.oid
        where n.nspname in ('canon', 'ops') and c.relkind in ('v', 'm')
    loop
        execute format('revoke insert, update on %s from cabinet_leads_job', v);
    end loop;
end;
$$;
-- allocate_person_keys.sql reserves person keys with nextval()
grant usage on all sequences in schema canon, ops to cabinet_leads_job;

-- The reader: everything in canon/ops, and the source tables that explain and the worklist read
-- directly (the views need no grant on public: they read with their owner's rights).
grant usage on schema public, canon, ops to cabinet_leads_reader;
grant select on all tables in schema canon, ops to cabinet_leads_reader;
grant select on
public.module_ct_cabinet_leads,
public.drivers,
public.driver_daily_trips,
public.milestone_claims
to cabinet_leads_reader;

-- What later migrations of this owner create in canon and ops.
alter default privileges in schema canon, ops
grant select, insert, update on tables to cabinet_leads_job;
alter default privileges in schema canon, ops
grant usage on sequences to cabinet_leads_job;
alter default privileges in schema canon, ops
grant select on tables to cabinet_leads_reader;

-- The manual-action declaration (a custom setting any session can set) is honoured only for a
-- role that is not a member of cabinet_leads_job, checked for the session user and the current
-- user both (so `set role` does not help). Membership is walked in pg_auth_members on purpose:
-- pg_has_role() counts a superuser as a member of every role, which would lock the owner out.
create or replace function canon.guard_identity_links() returns trigger
language plpgsql as $$
declare
    reason text := nullif(current_setting('cabinet_leads.manual_action', true), '');
    is_job boolean;
begin
    with recursive memberships (roleid) as (
        select r.oid from pg_catalog.pg_roles as r
        where r.rolname in (current_user, session_user)
        union
        select m.roleid from pg_catalog.pg_auth_members as m
        inner join memberships on m.member = memberships.roleid
    )

    select exists (
        select from memberships
        inner join pg_catalog.pg_roles as r on memberships.roleid = r.oid
        where r.rolname = 'cabinet_leads_job'
    ) into is_job;
    if is_job then
        raise exception 'C0.1: the job role (cabinet_leads_job) never rewrites or deletes identity links (% on link %)',
            tg_op, old.link_id
            using hint = 'manual actions are for an administrator role that is not a member of cabinet_leads_job';
    end if;
    if reason is null then
        raise exception 'C0.1: identity links are never rewritten or deleted by the job (% on link %)',
            tg_op, old.link_id
            using hint = 'declare an audited manual action: set local cabinet_leads.manual_action = ''why''';
    end if;
    insert into canon.identity_link_audit (operation, reason, old_row, new_row)
    values (tg_op, reason, to_jsonb(old), case when tg_op = 'UPDATE' then to_jsonb(new) end);
    return case when tg_op = 'DELETE' then old else new end;
end;
$$;
