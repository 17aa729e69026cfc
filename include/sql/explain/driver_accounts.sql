-- The person's driver accounts with their trips in the lead's 14-day window (at most max_rows, with
-- the total); an unrepresentable hired_at is NULL.
select
    dl.source_pk as driver_id,
    dl.match_rule,
    ops.representable_ts(d.hired_at) as hired_at,
    coalesce(sum(t.completed_trips), 0)::integer as trips_in_window,
    count(*) over () as total
from canon.identity_links as dl
left join public.drivers as d on dl.source_pk = d.driver_id
left join public.driver_daily_trips as t
    on
        dl.source_pk = t.driver_id
        and ops.in_trip_window(t.trip_date, %(lead_date)s::date)
where dl.source_table = 'drivers' and dl.person_key = %(person_key)s
group by dl.source_pk, dl.match_rule, d.hired_at
order by trips_in_window desc, d.hired_at asc nulls last, dl.source_pk asc
limit %(max_rows)s
