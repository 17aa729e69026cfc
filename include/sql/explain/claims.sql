-- The person's claims (at most max_rows, with the total); unrepresentable claimed_at is NULL.
select
    left(c.claim_id, 200) as claim_id,
    c.driver_id,
    c.milestone,
    ops.representable_ts(c.claimed_at) as claimed_at,
    left(c.status, 100) as status,
    count(*) over () as total
from public.milestone_claims as c
inner join canon.identity_links as dl
    on dl.source_table = 'drivers' and c.driver_id = dl.source_pk
where dl.person_key = %(person_key)s
order by c.milestone, c.claimed_at
limit %(max_rows)s
