-- Key conflicts are surfaced, never silently kept (issue 15): when a linked record's current strong
-- keys point to another person, or its DOC or LICENSE now differs from its person's, the link stays
-- (C0.1) and the record is recorded with reason LINK_CONFLICT, the evidence naming the linked person,
-- the other candidates and the keys.
alter table canon.identity_unmatched drop constraint identity_unmatched_reason_code_check;

alter table canon.identity_unmatched add constraint identity_unmatched_reason_code_check
check (reason_code in ('NO_CANDIDATES', 'AMBIGUOUS', 'INVALID_DATA', 'LINK_CONFLICT'));
