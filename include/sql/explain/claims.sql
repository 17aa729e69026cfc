select
    c.claim_id,
    c.driver_id,
    c.milestone,
    c.claimed_at,
    c.status
from public.milestone_claims as c
inner join canon.identity_links as dl
    on dl.source_table = 'drivers' and c.driver_id = dl.source_pk
where dl.person_key = %(person_key)s
order by c.milestone, c.claimed_at
