-- The most expensive task completed this week and this month (by billing
-- day).  Run as an admin, connected like any psql script (flags or PGHOST,
-- PGPORT, PGUSER, PGDATABASE):
--   psql -X -h HOST -p PORT -U LOGIN -d DB -f reports/top_tasks.sql
\ir report.psql
\echo
\echo 'popug: the most expensive tasks'
\echo
SELECT 'this week' AS "Period", coalesce(jira_id, '') AS "Jira", title AS "Task",
	   to_char(complete_reward, 'FM999G990D00') AS "Reward", completed_at AS "Completed"
  FROM popug.stats_most_expensive_task(date_trunc('week', current_date)::date, current_date)
UNION ALL
SELECT 'this month', coalesce(jira_id, ''), title, to_char(complete_reward, 'FM999G990D00'), completed_at
  FROM popug.stats_most_expensive_task(date_trunc('month', current_date)::date, current_date);
