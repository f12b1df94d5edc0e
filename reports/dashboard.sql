-- Today's dashboard.  Run as an admin or accountant:
--   psql -X -f reports/dashboard.sql
\pset footer off
\echo
\echo 'popug: today (billing day in popug.timezone)'
\echo
\x on
SELECT day AS "Day",
	   to_char(management_earnings, 'FM999G999G990D00') AS "Management earnings",
	   negative_workers AS "Workers in debt",
	   to_char(fees_charged, 'FM999G999G990D00') AS "Fees charged",
	   to_char(rewards_paid, 'FM999G999G990D00') AS "Rewards paid",
	   to_char(payouts, 'FM999G999G990D00') AS "Paid out",
	   tasks_created AS "Tasks created",
	   tasks_completed AS "Tasks completed"
  FROM popug.stats_day(NULL);
\x off
