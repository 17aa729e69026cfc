-- The funnel's rules (SPEC section 5), each in one place; the views (10_, 30_) and the kept-state
-- statements (include/sql/funnel_state/) use them, never a copy. Applied by `cabinet-leads migrate`
-- before the views whenever this file changes. The one-line functions are SQL expressions the
-- planner inlines, so a filter or join through them still uses indexes.
--   - lead date: the creation time's date in America/Lima (NULL when the time is not representable,
--     ops.representable_ts);
--   - trip window: the lead date and the 13 days after it (14 days);
--   - driver accounts: those linked to the person that still exist upstream (a deleted account is no
--     account; its link stays for audit);
--   - claims: every status counts except rejected and cancelled;
--   - stage: NO_IDENTITY, NO_DRIVER, NO_TRIPS_14D, TRIPS_NO_CLAIM, OK, first that applies;
--   - milestones: active ones, reached when the person's trips in the window reach them, on the first
--     day the running total does.

create or replace function ops.lead_date(created_at timestamptz) returns date
language sql immutable parallel safe
return (ops.representable_ts(created_at) at time zone 'America/Lima')::date;

create or replace function ops.in_trip_window(trip_date date, lead_date date) returns boolean
language sql immutable parallel safe
return trip_date between lead_date and lead_date + 13;

create or replace function ops.claim_counts(claim_status text) returns boolean
language sql immutable parallel safe
return coalesce(lower(claim_status), '') not in ('rejected', 'cancelled');

create or replace function ops.funnel_stage(
    person_key bigint, driver_id text, trips_14d bigint, unclaimed_milestones integer
) returns text
language sql immutable parallel safe
return case
    when person_key is null then 'NO_IDENTITY'
    when driver_id is null then 'NO_DRIVER'
    when trips_14d = 0 then 'NO_TRIPS_14D'
    when unclaimed_milestones > 0 then 'TRIPS_NO_CLAIM'
    else 'OK'
end;

create or replace view ops.v_person_driver_accounts as
select
    dl.person_key,
    d.driver_id,
    d.hired_at
from canon.identity_links as dl
inner join public.drivers as d on dl.source_pk = d.driver_id
where dl.source_table = 'drivers';

comment on view ops.v_person_driver_accounts is
'Driver accounts that count for a person: linked and still present upstream.';

-- Each reached milestone of a lead (its person, its lead date, the milestones its trips reach) with
-- the day the person's running trip total in the window reached it and the lowest counting claim
-- of the person for it, if any. Inlined by the planner (a single SELECT, stable, not strict).
create or replace function ops.lead_milestones(person_key bigint, lead_date date, milestones integer[])
returns table (milestone integer, reached_on date, claim_id text)
language sql stable parallel safe
as $$
select
    reached.milestone,
    reached_day.reached_on,
    claim.claim_id
from unnest(milestones) as reached (milestone)
cross join lateral (
    select min(daily.trip_date) as reached_on
    from (
        select
            t.trip_date,
            sum(sum(t.completed_trips)) over (order by t.trip_date) as cumulative_trips
        from ops.v_person_driver_accounts as a
        inner join public.driver_daily_trips as t
            on a.driver_id = t.driver_id and ops.in_trip_window(t.trip_date, lead_milestones.lead_date)
        where a.person_key = lead_milestones.person_key
        group by t.trip_date
    ) as daily
    where daily.cumulative_trips >= reached.milestone
) as reached_day
cross join lateral (
    select min(c.claim_id) as claim_id
    from ops.v_person_driver_accounts as a
    inner join public.milestone_claims as c on a.driver_id = c.driver_id
    where
        a.person_key = lead_milestones.person_key
        and c.milestone = reached.milestone
        and ops.claim_counts(c.status)
) as claim
$$;
