-- C0.1: one link per record; the unique constraint refuses a second one (batch retried).
-- The evidence travels as one JSON array (its n-th element is the n-th link's): one parameter the
-- server parses, instead of an array of documents the client must escape one by one.
insert into canon.identity_links (source_table, source_pk, person_key, match_rule, evidence, run_id)
select
    %(source_table)s,
    l.source_pk,
    l.person_key,
    l.match_rule,
    e.evidence,
    %(run_id)s
from
    unnest(%(source_pk)s::text[], %(person_key)s::bigint[], %(match_rule)s::text[])
    with ordinality as l (source_pk, person_key, match_rule, n)
inner join jsonb_array_elements(%(evidence)s::jsonb) with ordinality as e (evidence, n) on l.n = e.n
