-- Daily snapshot of unlinked records: once per snapshot date, copy the last known outcome of every
-- record that is still unlinked (unchanged records are not re-matched, see select_work_leads.sql).
with

previous as (
    select max(snapshot_date) as snapshot_date
    from canon.identity_unmatched
    where snapshot_date < %(snapshot_date)s::date
),

carried as (
    insert into canon.identity_unmatched (source_table, source_pk, reason_code, snapshot_date, evidence, run_id)
    select
        u.source_table,
        u.source_pk,
        u.reason_code,
        %(snapshot_date)s::date,
        u.evidence,
        %(run_id)s
    from canon.identity_unmatched as u
    inner join previous on u.snapshot_date = previous.snapshot_date
    where
        not exists (
            select 1 from canon.identity_unmatched as t
            where t.snapshot_date = %(snapshot_date)s::date
        )
        and not exists (
            select 1 from canon.identity_links as l
            where l.source_table = u.source_table and l.source_pk = u.source_pk
        )
    on conflict do nothing
    returning 1
)

select count(*) as carried from carried
