-- Driver accounts that need identity work: never normalised, or changed upstream since, or keys
-- stored and identity not decided yet (identity_pending).
-- Linked, unchanged accounts and unlinked, unchanged ones (AMBIGUOUS / NO_CANDIDATES, which
-- only change when their own data changes) are skipped.
select d.driver_id
from public.drivers as d
left join canon.record_keys as rk
    on rk.source_table = 'drivers' and d.driver_id = rk.source_pk
where
    rk.source_updated_at is distinct from d.updated_at
    or rk.identity_pending
    -- --full: also an account edited without bumping updated_at
    or (%(full_check)s::boolean and rk.source_fingerprint is distinct from ops.driver_fingerprint(d))
order by d.hired_at asc nulls last, d.driver_id asc
