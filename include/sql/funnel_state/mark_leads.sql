-- Mark leads whose link a batch may have written: their kept state is recomputed with the marks.
insert into ops.lead_marks (lead_id)
select m.lead_id from unnest(%(ids)s::bigint[]) as m (lead_id)
on conflict (lead_id) do nothing
