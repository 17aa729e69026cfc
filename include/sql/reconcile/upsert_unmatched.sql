-- One row per record per snapshot date; rewritten only when the outcome itself changed. The
-- evidence travels as one JSON array (its n-th element is the n-th record's).
insert into canon.identity_unmatched as u (source_table, source_pk, reason_code, snapshot_date, evidence, run_id)
select
    %(source_table)s,
    x.source_pk,
    x.reason_code,
    %(snapshot_date)s::date,
    e.evidence,
    %(run_id)s
from unnest(%(source_pk)s::text[], %(reason_code)s::text[]) with ordinality as x (source_pk, reason_code, n)
inner join jsonb_array_elements(%(evidence)s::jsonb) with ordinality as e (evidence, n) on x.n = e.n
on conflict (source_table, source_pk, snapshot_date) do update set
    reason_code = excluded.reason_code,
    evidence = excluded.evidence,
    run_id = excluded.run_id,
    recorded_at = now()
where (u.reason_code, u.evidence) is distinct from (excluded.reason_code, excluded.evidence)
