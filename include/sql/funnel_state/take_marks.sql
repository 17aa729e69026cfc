-- Take (remove) up to `n` marks of a lead id range, lowest ids first; the caller recomputes those
-- leads in the same transaction, so a failure puts the marks back. Marks another transaction is
-- taking are skipped (parallel ranges never wait for each other).
delete from ops.lead_marks as m
where
    m.lead_id in (
        select t.lead_id
        from ops.lead_marks as t
        where
            t.lead_id >= coalesce(%(lo)s::bigint, -9223372036854775808)
            and t.lead_id <= coalesce(%(hi)s::bigint, 9223372036854775807)
        order by t.lead_id
        limit %(n)s
        for update skip locked
    )
returning m.lead_id
