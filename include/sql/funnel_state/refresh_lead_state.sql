-- Recompute the kept state of a set of marked leads from the live view: store it in ops.lead_state
-- (only rows whose outcome changed are written), drop the state of leads deleted upstream, and
-- report what moved.
with

fresh as (
    select
        v.lead_id,
        v.person_key,
        v.driver_id,
        v.limbo_stage,
        v.trips_14d,
        l.updated_at
    from ops.v_cabinet_leads_limbo as v
    inner join public.module_ct_cabinet_leads as l on v.lead_id = l.id
    where v.lead_id = any(%(ids)s::bigint[])
),

previous as (
    select
        s.lead_id,
        s.driver_id
    from ops.lead_state as s
    where s.lead_id = any(%(ids)s::bigint[])
),

written as (
    insert into ops.lead_state as s (
        lead_id, person_key, driver_id, limbo_stage, trips_14d, source_updated_at, run_id
    )
    select
        fresh.lead_id,
        fresh.person_key,
        fresh.driver_id,
        fresh.limbo_stage,
        fresh.trips_14d,
        fresh.updated_at,
        %(run_id)s
    from fresh
    on conflict (lead_id) do update
        set
            person_key = excluded.person_key,
            driver_id = excluded.driver_id,
            limbo_stage = excluded.limbo_stage,
            trips_14d = excluded.trips_14d,
            source_updated_at = excluded.source_updated_at,
            run_id = excluded.run_id,
            checked_at = now()
        where
        (s.person_key, s.driver_id, s.limbo_stage, s.trips_14d, s.source_updated_at)
        is distinct from
        (excluded.person_key, excluded.driver_id, excluded.limbo_stage, excluded.trips_14d, excluded.source_updated_at)
    returning 1
),

gone as (
    delete from ops.lead_state as s
    where
        s.lead_id = any(%(ids)s::bigint[])
        and not exists (
            select 1 from fresh
            where fresh.lead_id = s.lead_id
        )
    returning 1
)

select
    (count(*) filter (where fresh.driver_id is not null and previous.driver_id is null))::integer
        as newly_driver_mapped,
    (select count(*) from written)::integer as state_changed,
    (select count(*) from gone)::integer as state_deleted
from fresh
left join previous on fresh.lead_id = previous.lead_id
