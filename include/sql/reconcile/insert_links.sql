-- C0.1: one link per record; the unique constraint refuses a second one (batch retried).
insert into canon.identity_links (source_table, source_pk, person_key, match_rule, evidence, run_id)
select
    %(source_table)s,
    l.source_pk,
    l.person_key,
    l.match_rule,
    l.evidence,
    %(run_id)s
from unnest(%(source_pk)s::text[], %(person_key)s::bigint[], %(match_rule)s::text[], %(evidence)s::jsonb[])
    as l (source_pk, person_key, match_rule, evidence)
