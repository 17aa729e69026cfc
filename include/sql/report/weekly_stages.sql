-- Leads per week and funnel stage from the Monday %(first_week)s (Lima dates) on: the dashboard's
-- stacked bars. The stages come from ops.v_cabinet_leads_limbo, the same rows the weekly audit
-- view counts. The bound is on lead_created_at (indexed) rather than on week_start: a filter on
-- the view's computed week_start reaches the base table only as a filter of a full scan.
select
    week_start,
    limbo_stage,
    count(*)::integer as lead_count
from ops.v_cabinet_leads_limbo
where lead_created_at >= (%(first_week)s::date)::timestamp at time zone 'America/Lima'
group by week_start, limbo_stage
order by week_start, limbo_stage
