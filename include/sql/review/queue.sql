-- The review queue (issue 11): unlinked leads a person must decide, ordered by what is at stake.
--   entries: leads whose latest identity outcome is AMBIGUOUS or NO_CANDIDATES, and leads a reviewer
--            unlinked by hand (UNLINKED); never a linked or a dismissed lead;
--   candidates: the persons the evidence names, the current owners of the lead's strong keys, and
--            the person a manual unlink took the lead from; each with the keys that match or
--            conflict, its DOC and name, its driver accounts, trips and reached milestones in the
--            lead's 14-day window, and its claims (at most max_claims);
--   order: AMBIGUOUS or UNLINKED where a candidate has trips or reached milestones in the window
--            (money at stake), then the other AMBIGUOUS or UNLINKED, then NO_CANDIDATES; oldest lead
--            date first within each tier.
-- One statement; raw text cut to max_chars + 1 characters (the caller marks the cut).
with

outcomes as (
    select distinct on (u.source_pk)
        u.source_pk,
        u.reason_code,
        u.evidence,
        u.snapshot_date
    from canon.identity_unmatched as u
    where u.source_table = 'module_ct_cabinet_leads'
    -- the primary key's order, read backwards: the newest snapshot of each record first
    order by u.source_pk desc, u.snapshot_date desc
),

wanted as (
    select
        o.source_pk::bigint as lead_id,
        o.reason_code,
        o.evidence,
        o.snapshot_date,
        null::bigint as unlinked_from
    from outcomes as o
    where o.reason_code in ('AMBIGUOUS', 'NO_CANDIDATES')
    union all
    select
        m.lead_id,
        'UNLINKED' as reason_code,
        coalesce(o.evidence, '{}') as evidence,
        o.snapshot_date,
        d.person_before as unlinked_from
    from ops.manual_lead_state as m
    inner join ops.manual_decisions as d on m.decision_id = d.decision_id
    left join outcomes as o on m.lead_id::text = o.source_pk
    where m.decision = 'unlink'
),

entries as (
    select distinct on (w.lead_id)
        w.lead_id,
        w.reason_code,
        w.evidence,
        w.snapshot_date,
        w.unlinked_from,
        l.external_id,
        l.first_name,
        l.last_name,
        l.phone as raw_phone,
        l.document_number as raw_document,
        l.lead_created_at,
        ops.lead_date(l.lead_created_at) as lead_date,
        rk.phone,
        rk.doc,
        rk.license,
        rk.name_folded,
        coalesce(rk.problems, '[]') as problems
    from wanted as w
    inner join public.module_ct_cabinet_leads as l on w.lead_id = l.id
    left join canon.record_keys as rk
        on rk.source_table = 'module_ct_cabinet_leads' and rk.source_pk = l.id::text
    left join ops.manual_lead_state as m on w.lead_id = m.lead_id
    where
        m.decision is distinct from 'dismiss'
        and not exists (
            select 1 from canon.identity_links as k
            where k.source_table = 'module_ct_cabinet_leads' and k.source_pk = l.id::text
        )
    -- an unlinked lead shows as UNLINKED even when an older outcome exists
    order by w.lead_id asc, (w.reason_code = 'UNLINKED') desc
),

candidate_keys as (
    select
        e.lead_id,
        (c.cand ->> 'person_key')::bigint as person_key
    from entries as e
    cross join
        lateral jsonb_array_elements(
            case when jsonb_typeof(e.evidence -> 'candidates') = 'array' then e.evidence -> 'candidates' else '[]' end
        ) as c (cand)
    where c.cand ->> 'person_key' ~ '^[0-9]+$'
    union
    select
        e.lead_id,
        pk.person_key
    from entries as e
    inner join canon.person_keys as pk
        on
            (pk.key_type = 'PHONE' and e.phone = pk.key_value)
            or (pk.key_type = 'DOC' and e.doc = pk.key_value)
            or (pk.key_type = 'LICENSE' and e.license = pk.key_value)
    union
    select
        e.lead_id,
        e.unlinked_from as person_key
    from entries as e
    where e.unlinked_from is not null
),

candidates as (
    select
        ck.lead_id,
        ck.person_key,
        r.name_folded as person_name,
        pdoc.key_value as person_doc,
        coalesce(mk.matched_keys, '{}') as matched_keys,
        jsonb_strip_nulls(jsonb_build_object(
            'DOC',
            case
                when e.doc <> pdoc.key_value
                    then jsonb_build_object('record', e.doc, 'person', pdoc.key_value)
            end,
            'LICENSE',
            case
                when e.license is not null and lic.licenses is not null and e.license <> all(lic.licenses)
                    then jsonb_build_object('record', e.license, 'person', to_jsonb(lic.licenses))
            end
        )) as conflicting_keys,
        coalesce(acc.driver_ids, '{}') as driver_ids,
        coalesce(trips.trips_in_window, 0)::integer as trips_in_window,
        coalesce(reached.milestones, '{}') as milestones_reached,
        coalesce(cl.claims, '[]') as claims
    from candidate_keys as ck
    inner join entries as e on ck.lead_id = e.lead_id
    inner join canon.identity_registry as r on ck.person_key = r.person_key
    left join canon.person_keys as pdoc on ck.person_key = pdoc.person_key and pdoc.key_type = 'DOC'
    cross join
        lateral (
            select jsonb_object_agg(pk.key_type, pk.key_value) as matched_keys
            from canon.person_keys as pk
            where
                pk.person_key = ck.person_key
                and (
                    (pk.key_type = 'PHONE' and pk.key_value = e.phone)
                    or (pk.key_type = 'DOC' and pk.key_value = e.doc)
                    or (pk.key_type = 'LICENSE' and pk.key_value = e.license)
                )
        ) as mk
    cross join
        lateral (
            select array_agg(pk.key_value order by pk.key_value) as licenses
            from canon.person_keys as pk
            where pk.person_key = ck.person_key and pk.key_type = 'LICENSE'
        ) as lic
    cross join
        lateral (
            select array_agg(a.driver_id order by a.driver_id) as driver_ids
            from ops.v_person_driver_accounts as a
            where a.person_key = ck.person_key
        ) as acc
    cross join
        lateral (
            select sum(t.completed_trips) as trips_in_window
            from ops.v_person_driver_accounts as a
            inner join public.driver_daily_trips as t
                on a.driver_id = t.driver_id and ops.in_trip_window(t.trip_date, e.lead_date)
            where a.person_key = ck.person_key
        ) as trips
    cross join
        lateral (
            select array_agg(mc.milestone order by mc.milestone) as milestones
            from ops.milestone_config as mc
            where mc.active and coalesce(trips.trips_in_window, 0) >= mc.milestone
        ) as reached
    cross join lateral (  -- noqa: ST05
        select
            jsonb_agg(
                jsonb_build_object(
                    'claim_id', left(c.claim_id, %(max_chars)s + 1),
                    'driver_id', c.driver_id,
                    'milestone', c.milestone,
                    'status', left(c.status, 100)
                )
                order by c.milestone, c.claim_id
            ) as claims
        from (  -- noqa: ST05
            select
                c0.claim_id,
                c0.driver_id,
                c0.milestone,
                c0.status
            from ops.v_person_driver_accounts as a
            inner join public.milestone_claims as c0 on a.driver_id = c0.driver_id
            where a.person_key = ck.person_key
            order by c0.milestone, c0.claim_id
            limit %(max_claims)s
        ) as c
    ) as cl
),

per_entry as (
    select
        c.lead_id,
        bool_or(c.trips_in_window > 0 or cardinality(c.milestones_reached) > 0) as at_stake,
        jsonb_agg(
            jsonb_build_object(
                'person_key', c.person_key,
                'person_name', c.person_name,
                'person_doc', c.person_doc,
                'matched_keys', c.matched_keys,
                'conflicting_keys', c.conflicting_keys,
                'driver_ids', to_jsonb(c.driver_ids),
                'trips_in_window', c.trips_in_window,
                'milestones_reached', to_jsonb(c.milestones_reached),
                'claims', c.claims
            )
            order by c.trips_in_window desc, c.person_key asc
        ) as candidates
    from candidates as c
    group by c.lead_id
),

ranked as (
    select
        e.*,
        coalesce(p.at_stake, false) as at_stake,
        coalesce(p.candidates, '[]') as candidates,
        case
            when e.reason_code = 'NO_CANDIDATES' then 2
            when coalesce(p.at_stake, false) then 0
            else 1
        end as tier
    from entries as e
    left join per_entry as p on e.lead_id = p.lead_id
)

select
    ranked.tier,
    ranked.lead_id,
    left(ranked.external_id, %(max_chars)s + 1) as external_id,
    ranked.reason_code,
    ranked.evidence ->> 'why' as why,
    ranked.evidence -> 'conflicting_keys' as conflicting_keys,
    ranked.evidence -> 'hot_keys' as hot_keys,
    ranked.snapshot_date,
    ranked.unlinked_from,
    ranked.lead_created_at,
    ranked.lead_date,
    left(ranked.first_name, %(max_chars)s + 1) as first_name,
    left(ranked.last_name, %(max_chars)s + 1) as last_name,
    left(ranked.raw_phone, %(max_chars)s + 1) as raw_phone,
    left(ranked.raw_document, %(max_chars)s + 1) as raw_document,
    ranked.name_folded,
    ranked.phone,
    ranked.doc,
    ranked.license,
    ranked.problems,
    ranked.at_stake,
    ranked.candidates,
    -- a DNI typed into the phone field: the person whose DOC those digits are, if any
    (
        select pk.person_key from canon.person_keys as pk
        where
            pk.key_type = 'DOC'
            and ranked.phone is null
            and pk.key_value = 'DNI:' || regexp_replace(left(ranked.raw_phone, 40), '[^0-9]', '', 'g')
    ) as phone_is_doc_of,
    count(*) over () as total
from ranked
order by ranked.tier asc, ranked.lead_date asc nulls last, ranked.lead_id asc
limit %(max_entries)s
