-- A person of its own for a lead (new-person decision); names are evidence only.
insert into canon.identity_registry (name_folded, given_name)
values (coalesce(%(name_folded)s, ''), coalesce(%(given_name)s, ''))
returning person_key
