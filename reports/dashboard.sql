-- Today's dashboard: the day's figures, the workers who earned most today
-- and those deepest in debt now, each with a bar chart.  Run as an admin
-- or accountant, connected like any psql script (flags or PGHOST, PGPORT,
-- PGUSER, PGDATABASE):
--   psql -X -h HOST -p PORT -U LOGIN -d DB -f reports/dashboard.sql
--   psql -X -v ascii=1 -f reports/dashboard.sql     (# and | instead of Unicode)
--   psql -X -v day=2026-11-24 -f reports/dashboard.sql   (another day)
\ir report.psql
\if :{?day}
SELECT day AS today FROM popug.stats_day(:'day') \gset
\else
SELECT day AS today FROM popug.stats_day(NULL) \gset
\endif
\echo
\echo 'popug: the day' :today '(billing day in popug.timezone)'
\echo
\x on
SELECT to_char(management_earnings, 'FM999G999G990D00') AS "Management earnings",
	   negative_workers AS "Workers in debt",
	   to_char(fees_charged, 'FM999G999G990D00') AS "Fees charged",
	   to_char(rewards_paid, 'FM999G999G990D00') AS "Rewards paid",
	   to_char(payouts, 'FM999G999G990D00') AS "Paid out",
	   tasks_created AS "Tasks created",
	   tasks_completed AS "Tasks completed"
  FROM popug.stats_day(:'today');
\x off
\echo
\echo 'Biggest earners of the day (rewards less fees)'
SELECT c.login AS "Worker", to_char(c.v, 'FM999G999G990D00') AS "Earned", :chart_bar AS "Chart"
  FROM (:chart_scale (SELECT login, sum(credit) - sum(debit) AS v
						FROM popug.audit_log
					   WHERE billing_day = :'today' AND kind <> 'payout'
					   GROUP BY login
					  HAVING sum(credit) > sum(debit)
					   ORDER BY v DESC, login
					   LIMIT 5) s) c
 ORDER BY c.v DESC, c.login;
\echo
\echo 'Biggest debtors now (balance)'
SELECT c.login AS "Worker", to_char(c.v, 'FM999G999G990D00') AS "Balance", :chart_bar AS "Chart"
  FROM (:chart_scale (SELECT login, amount AS v
						FROM popug.balances
					   WHERE amount < 0
					   ORDER BY amount, login
					   LIMIT 5) s) c
 ORDER BY c.v, c.login;
