-- Issue 10: identity_links rows are wide (the evidence JSON, ~400 bytes), and the funnel reads only
-- (source_table, source_pk, person_key) of them: a lead's person, a person's driver accounts, every
-- driver link when fingerprinting the driver side of each person (funnel_state/mark_changes.sql).
-- Both lookups become index-only: the one-link-per-record constraint covers the person, and the
-- person index covers the record (it still leads with person_key: the matcher's person profiles
-- look a person's links up by person_key alone).

alter table canon.identity_links
drop constraint identity_links_one_per_record,
add constraint identity_links_one_per_record unique (source_table, source_pk) include (person_key);

drop index canon.identity_links_person_idx;

create index identity_links_person_idx on canon.identity_links (person_key, source_table) include (source_pk);
