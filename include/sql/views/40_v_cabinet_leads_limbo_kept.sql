-- The funnel stage of every lead as the job keeps it (ops.lead_state), for the run's snapshots and
-- alert metrics: one merge of two primary keys instead of a full evaluation of the live view. A lead
-- with no kept state yet (new since the last run) has no link yet, so it is NO_IDENTITY, as the live
-- view says; a lead deleted upstream is gone. It equals ops.v_cabinet_leads_limbo once a run has
-- recomputed its marked leads (`cabinet-leads verify` proves it); between runs it lags upstream
-- changes to existing leads' inputs (a late trip, a new claim) until the next run.

create or replace view ops.v_cabinet_leads_limbo_kept as
select
    l.id as lead_id,
    ops.lead_date(l.lead_created_at) as lead_date,
    date_trunc('week', ops.lead_date(l.lead_created_at))::date as week_start,
    coalesce(s.limbo_stage, 'NO_IDENTITY') as limbo_stage
from public.module_ct_cabinet_leads as l
left join ops.lead_state as s on l.id = s.lead_id;

comment on view ops.v_cabinet_leads_limbo_kept is
'Funnel stage per lead as kept by the job (ops.lead_state); equals ops.v_cabinet_leads_limbo after a run.';
