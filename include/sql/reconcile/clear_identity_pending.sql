-- The batch's identities are decided (in this transaction): its records no longer await a decision.
update canon.record_keys as rk
set identity_pending = false
where
    rk.source_table = %(source_table)s
    and rk.source_pk = any(%(source_pk)s::text[])
    and rk.identity_pending
