-- One row per record per snapshot date; rewritten only when the outcome itself changed.
insert into canon.identity_unmatched as u (source_table, source_pk, reason_code, snapshot_date, evidence, run_id)
select
    %(source_table)s,
    x.source_pk,
    x.reason_code,
    %(snapshot_date)s::date,
    x.evidence,
    %(run_id)s
from
    unnest(%(source_pk)s::text[], %(reason_code)s::text[], %(evidence)s::jsonb[])
        as x (source_pk, reason_code, evidence)
on conflict (source_table, source_pk, snapshot_date) do update set
    reason_code = excluded.reason_code,
    evidence = excluded.evidence,
    run_id = excluded.run_id,
    recorded_at = now()
where (u.reason_code, u.evidence) is distinct from (excluded.reason_code, excluded.evidence)
