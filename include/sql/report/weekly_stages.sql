-- Leads per week and funnel stage from the Monday %(first_week)s on, as stored by the newest
-- after-snapshot (ops.weekly_funnel_snapshots, written by each run from its scan of
-- ops.v_cabinet_leads_limbo): the dashboard's stacked bars, read without scanning the view.
with

newest as (
    select max(run_id) as run_id
    from ops.weekly_funnel_snapshots
)

select
    w.week_start,
    w.limbo_stage,
    w.lead_count
from ops.weekly_funnel_snapshots as w
inner join newest on w.run_id = newest.run_id
where w.week_start >= %(first_week)s::date
order by w.week_start, w.limbo_stage
