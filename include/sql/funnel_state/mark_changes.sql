-- Mark every lead whose funnel inputs changed upstream since its kept state was computed (one
-- statement per run, before the lead batches; the identity batches mark the leads they link):
--   - its own row: new (no kept state), edited (updated_at differs) or deleted (kept state, no row);
--   - its person's driver side: a driver account linked, edited (hired_at), deleted upstream, or its
--     daily trips or claims added, changed or deleted. One fingerprint per person (accounts, trips
--     and claims hashed and combined with xor, so no sort) is compared with ops.person_inputs;
--   - the milestone configuration (every lead).
-- Fingerprints are stored in the same transaction as the marks, and marks stay until the leads are
-- recomputed, so a run that dies in between loses nothing.
with

config as (
    select coalesce(string_agg(m.milestone::text, ',' order by m.milestone) filter (where m.active), '') as fingerprint
    from ops.milestone_config as m
),

config_changed as (
    select config.fingerprint
    from config
    left join ops.funnel_inputs as f on f.input_name = 'milestone_config'
    where f.fingerprint is distinct from config.fingerprint
),

config_stored as (
    insert into ops.funnel_inputs as f (input_name, fingerprint)
    select
        'milestone_config' as input_name,
        config_changed.fingerprint
    from config_changed
    on conflict (input_name) do update
        set fingerprint = excluded.fingerprint, seen_at = now()
    returning 1
),

accounts as (
    select
        dl.person_key,
        dl.source_pk as driver_id,
        concat_ws('|', dl.source_pk, d.driver_id is not null, d.hired_at) as account_key
    from canon.identity_links as dl
    left join public.drivers as d on dl.source_pk = d.driver_id
    where dl.source_table = 'drivers'
),

trips as (
    select
        t.driver_id,
        -- integer hashing (no text); an infinite date (never in a window) adds nothing
        bit_xor(hashint8extended(
            case when isfinite(t.trip_date) then (t.trip_date - date '2000-01-01')::bigint end * 1000003
            + t.completed_trips,
            0
        )) as fingerprint
    from public.driver_daily_trips as t
    group by t.driver_id
),

claims as (
    select
        c.driver_id,
        bit_xor(hashtextextended(concat_ws('|', c.claim_id, c.milestone, lower(c.status)), 0)) as fingerprint
    from public.milestone_claims as c
    group by c.driver_id
),

persons as (
    select
        accounts.person_key,
        bit_xor(hashtextextended(concat_ws('|', accounts.account_key, trips.fingerprint, claims.fingerprint), 0))
            as fingerprint
    from accounts
    left join trips on accounts.driver_id = trips.driver_id
    left join claims on accounts.driver_id = claims.driver_id
    group by accounts.person_key
),

persons_changed as (
    select
        persons.person_key,
        persons.fingerprint
    from persons
    left join ops.person_inputs as i on persons.person_key = i.person_key
    where i.fingerprint is distinct from persons.fingerprint
),

persons_stored as (
    insert into ops.person_inputs as i (person_key, fingerprint)
    select
        persons_changed.person_key,
        persons_changed.fingerprint
    from persons_changed
    on conflict (person_key) do update
        set fingerprint = excluded.fingerprint, seen_at = now()
    returning 1
),

touched as (
    -- new or edited leads
    select l.id as lead_id
    from public.module_ct_cabinet_leads as l
    left join ops.lead_state as s on l.id = s.lead_id
    where s.source_updated_at is distinct from l.updated_at
    union
    -- leads deleted upstream
    select s.lead_id
    from ops.lead_state as s
    where
        not exists (
            select 1 from public.module_ct_cabinet_leads as l
            where l.id = s.lead_id
        )
    union
    -- leads of persons whose driver side changed
    select ll.source_pk::bigint as lead_id
    from canon.identity_links as ll
    inner join persons_changed on ll.person_key = persons_changed.person_key
    where ll.source_table = 'module_ct_cabinet_leads'
    union
    -- every lead when the milestone configuration changed
    select l.id as lead_id
    from public.module_ct_cabinet_leads as l
    where exists (select 1 from config_changed)
),

marked as (
    insert into ops.lead_marks (lead_id)
    select touched.lead_id from touched
    on conflict (lead_id) do nothing
    returning 1
)

select
    (select count(*) from marked)::integer as leads_marked,
    (select count(*) from persons_stored)::integer as persons_changed,
    (select count(*) from config_stored)::integer as config_changed
