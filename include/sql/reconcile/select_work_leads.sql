-- Leads of one run's scope that need identity work, in id order (SPEC section 6).
-- Scope: the recent window [anchor - recent_days, anchor) and/or every lead whose kept stage is one
-- of limbo_stages (a lead without kept state counts as NO_IDENTITY), optionally restricted to a lead
-- id range (one mapped Airflow task). With `full_check` (--full) the scope is every lead of the range.
-- Needs identity work: never normalised, or changed upstream since (its stored keys are older than
-- its updated_at; with `full_check`, also when its fingerprint differs from the stored one), or its
-- keys are stored but its identity is not decided yet (identity_pending: a run died in between).
-- Unlinked, unchanged leads are not re-matched: candidate sets only grow, so an AMBIGUOUS or
-- NO_CANDIDATES outcome can only change when the lead's own data changes. Everything
-- else that moves a lead's stage (driver accounts, trips, claims, configuration, deletions) marks
-- the lead instead (funnel_state/mark_changes.sql), and its state is recomputed without identity work.
-- A reviewer's standing decision is never overridden (issue 11, cabinet_leads.review): a lead dismissed
-- or unlinked by hand gets no identity work until a reviewer decides again (a linked lead, manual or
-- not, is never re-matched anyway).
with

params as (
    select
        %(anchor)s::timestamptz as anchor,
        %(recent_days)s::integer as recent_days,
        %(process_recent)s::boolean as process_recent,
        %(process_limbo)s::boolean as process_limbo,
        %(limbo_stages)s::text[] as limbo_stages,
        %(full_check)s::boolean as full_check,
        coalesce(%(lo)s::bigint, -9223372036854775808) as lo,
        coalesce(%(hi)s::bigint, 9223372036854775807) as hi
),

scoped as (
    select
        l.id as lead_id,
        l.updated_at,
        case when p.full_check then ops.lead_fingerprint(l) end as fingerprint
    from public.module_ct_cabinet_leads as l
    cross join params as p
    left join ops.lead_state as s on l.id = s.lead_id
    left join ops.manual_lead_state as m on l.id = m.lead_id
    where
        l.id between p.lo and p.hi
        and m.decision is distinct from 'dismiss'
        and m.decision is distinct from 'unlink'
        and (
            (
                p.process_recent
                and l.lead_created_at >= p.anchor - make_interval(days => p.recent_days)
                and l.lead_created_at < p.anchor
            )
            or (p.process_limbo and coalesce(s.limbo_stage, 'NO_IDENTITY') = any(p.limbo_stages))
            -- --full re-reads every source row, whatever its stage
            or p.full_check
        )
)

select scoped.lead_id
from scoped
left join canon.record_keys as rk
    on rk.source_table = 'module_ct_cabinet_leads' and rk.source_pk = scoped.lead_id::text
where
    rk.source_updated_at is distinct from scoped.updated_at
    or rk.identity_pending
    -- --full: also a row edited without bumping updated_at
    or (scoped.fingerprint is not null and rk.source_fingerprint is distinct from scoped.fingerprint)
order by scoped.lead_id
