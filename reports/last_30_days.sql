-- The last 30 billing days: one line a day with a running total of
-- management earnings, then a bar chart of the earnings (losses to the left
-- of the axis) and one of the workers in debt.  Run as an admin or
-- accountant, connected like any psql script (flags or PGHOST, PGPORT,
-- PGUSER, PGDATABASE):
--   psql -X -h HOST -p PORT -U LOGIN -d DB -f reports/last_30_days.sql
--   psql -X -v ascii=1 -f reports/last_30_days.sql     (# and | instead of Unicode)
\ir report.psql
\set days 'popug.stats_days(current_date - 29, current_date)'
\echo
\echo 'popug: the last 30 days'
\echo
SELECT day AS "Day",
	   to_char(management_earnings, 'FM999G999G990D00') AS "Earnings",
	   to_char(sum(management_earnings) OVER (ORDER BY day), 'FM999G999G990D00') AS "Running total",
	   negative_workers AS "In debt",
	   to_char(fees_charged, 'FM999G999G990D00') AS "Fees",
	   to_char(rewards_paid, 'FM999G999G990D00') AS "Rewards",
	   to_char(payouts, 'FM999G999G990D00') AS "Paid out",
	   tasks_created AS "Created",
	   tasks_completed AS "Completed"
  FROM :days
 ORDER BY day DESC;
\echo
\echo 'Management earnings'
SELECT c.day AS "Day", to_char(c.v, 'FM999G999G990D00') AS "Earnings", :chart_bar AS "Chart"
  FROM (:chart_scale (SELECT day, management_earnings AS v FROM :days) s) c
 ORDER BY c.day DESC;
\echo
\echo 'Workers in debt at the end of the day'
SELECT c.day AS "Day", c.v AS "In debt", :chart_bar AS "Chart"
  FROM (:chart_scale (SELECT day, negative_workers AS v FROM :days) s) c
 ORDER BY c.day DESC;
