-- The funnel state follows every upstream change through one mechanism (issues 10 and 15): every
-- input change marks the leads it touches in ops.lead_marks; the job recomputes exactly the marked
-- leads (their ops.lead_state row and claim worklist rows) and removes their marks in the same
-- transaction; `cabinet-leads verify` proves the kept state equals the live views.
-- What marks a lead (include/sql/funnel_state/mark_changes.sql and the identity batches):
--   its own row new, edited (updated_at) or deleted; its link written; any of its person's driver
--   accounts linked, edited, deleted, or their trips or claims added, changed or deleted (a
--   fingerprint per person in ops.person_inputs); the milestone configuration changed (all leads).

create table ops.lead_marks (
    lead_id bigint primary key,
    marked_at timestamptz not null default now()
);

-- What the kept state of a person's leads was computed from: a fingerprint of the person's driver
-- accounts (presence upstream, hired_at) with their daily trips and claims.
create table ops.person_inputs (
    person_key bigint primary key,
    fingerprint bigint not null,
    seen_at timestamptz not null default now()
);

-- Fingerprints of inputs that concern every lead (the milestone configuration).
create table ops.funnel_inputs (
    input_name text primary key,
    fingerprint text not null,
    seen_at timestamptz not null default now()
);

-- Why a worklist row closed: 'claimed' (resolved_by_claim_id says which claim), 'not_reached' (the
-- milestone is no longer reached: trips corrected, an account deleted), 'source_deleted' (the lead
-- was deleted upstream).
alter table ops.milestone_claim_worklist add column resolution text
check (resolution in ('claimed', 'not_reached', 'source_deleted'));

update ops.milestone_claim_worklist set resolution = 'claimed'
where resolved_at is not null;

-- Which version of each repeatable view definition (include/sql/views/) the database holds:
-- `cabinet-leads migrate` re-creates a view whose file changed; other commands refuse to run on
-- views older than their files.
create table ops.schema_views (
    view_name text primary key,
    file_checksum text not null,
    applied_at timestamptz not null default now()
);

-- Least privilege (V009): the job takes (deletes) the marks it recomputes and deletes the kept state
-- of leads deleted upstream; those two deletes are its only ones. The view records are migrate's.
grant delete on ops.lead_marks, ops.lead_state to cabinet_leads_job;
revoke insert, update on ops.schema_views from cabinet_leads_job;
