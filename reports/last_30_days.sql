-- The last 30 days, one line each, with a running total of earnings.
-- Run as an admin or accountant:  psql -X -f reports/last_30_days.sql
\pset footer off
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
  FROM popug.stats_days(current_date - 29, current_date)
 ORDER BY day DESC;
