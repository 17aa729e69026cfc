-- Manual resolution (issue 11): a reviewer's decisions on a lead, each one audited row, and the
-- standing decision per lead that the job honours (a dismissed or manually unlinked lead is never
-- re-matched; a manually linked lead is linked, so never re-matched either).
--
-- Decisions are made by an operator (cabinet_leads.review), never by the job: the group role
-- cabinet_leads_operator below may write links, person keys and the decisions; cabinet_leads_job may
-- only read the decisions (select_work_leads.sql excludes held leads). The guard on identity links
-- (V009) already refuses a manual action to any member of cabinet_leads_job.
--   create role cl_reviewer login password '...' in role cabinet_leads_operator;

create table ops.manual_decisions (
    decision_id bigint generated always as identity primary key,
    lead_id bigint not null,
    decision text not null check (decision in ('link', 'new_person', 'dismiss', 'unlink')),
    person_before bigint,
    person_after bigint,
    -- key_type -> value attached to person_after / detached from person_before
    keys_attached jsonb not null default '{}',
    keys_detached jsonb not null default '{}',
    -- key_type -> {value, why}: a key the decision left where it was (C0.2 owner, DOC declared wrong,
    -- a key another record of the person still needs)
    keys_not_attached jsonb not null default '{}',
    doc_is_wrong boolean not null default false,
    decided_by text not null check (btrim(decided_by) <> ''),
    why text not null check (btrim(why) <> ''),
    db_user text not null default current_user,
    decided_at timestamptz not null default now()
);

create index manual_decisions_lead_idx on ops.manual_decisions (lead_id, decision_id);

-- The standing (latest effective) decision per lead.
create table ops.manual_lead_state (
    lead_id bigint primary key,
    decision text not null check (decision in ('link', 'new_person', 'dismiss', 'unlink')),
    person_key bigint,
    decision_id bigint not null references ops.manual_decisions (decision_id),
    decided_at timestamptz not null
);

create index manual_lead_state_decision_idx on ops.manual_lead_state (decision);

-- The job reads the decisions, never writes them (default privileges gave it INSERT/UPDATE).
revoke insert, update on ops.manual_decisions, ops.manual_lead_state from cabinet_leads_job;
revoke usage on sequence ops.manual_decisions_decision_id_seq from cabinet_leads_job;

do $$
begin
    if not exists (select from pg_catalog.pg_roles where rolname = 'cabinet_leads_operator') then
        begin
            create role cabinet_leads_operator nologin;
        exception when duplicate_object or unique_violation then
            null;  -- created meanwhile by a migration of another database
        end;
    end if;
end;
$$;

-- The operator: reads everything the reader reads; writes exactly what a decision writes.
grant usage on schema public, canon, ops to cabinet_leads_operator;
grant select on
public.module_ct_cabinet_leads,
public.drivers,
public.driver_daily_trips,
public.milestone_claims
to cabinet_leads_operator;
grant select on all tables in schema canon, ops to cabinet_leads_operator;
grant insert, delete on canon.identity_links to cabinet_leads_operator;
grant insert on canon.identity_link_audit to cabinet_leads_operator;  -- written by the guard
grant insert, delete on canon.person_keys to cabinet_leads_operator;
grant insert on canon.identity_registry to cabinet_leads_operator;
grant usage on sequence canon.identity_registry_person_key_seq to cabinet_leads_operator;
grant insert on ops.manual_decisions to cabinet_leads_operator;
grant usage on sequence ops.manual_decisions_decision_id_seq to cabinet_leads_operator;
grant insert, update on ops.manual_lead_state to cabinet_leads_operator;
-- the lead's funnel state and claim worklist, recomputed in the decision's transaction (the lead is
-- also marked, for the job's next recompute)
grant insert, update, delete on ops.lead_state to cabinet_leads_operator;
grant insert on ops.lead_marks to cabinet_leads_operator;
grant insert, update on ops.milestone_claim_worklist to cabinet_leads_operator;
-- the views (re-created after the migrations) and what later migrations create: readable
alter default privileges in schema canon, ops
grant select on tables to cabinet_leads_operator;
