-- Statistics.  Definitions at the top of extension/stats.c.

-- A closed day's figures are kept in popug.billing_day by its payout.
CREATE INDEX ledger_task_billing_day_idx ON popug.ledger_task (billing_day);

CREATE FUNCTION popug.stats_days(from_day date, to_day date)
RETURNS TABLE (day date, management_earnings numeric, negative_workers bigint,
			   fees_charged numeric, rewards_paid numeric, payouts numeric,
			   tasks_created bigint, tasks_completed bigint)
AS 'MODULE_PATHNAME', 'popug_stats_days'
LANGUAGE C CALLED ON NULL INPUT STABLE ROWS 30 SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION popug.stats_days(date, date) IS
	'One row of statistics per billing day in the range: earnings (fees - rewards), workers in debt at the day''s end, fees, rewards, payouts, tasks (admins, accountants)';

CREATE FUNCTION popug.stats_day(day date DEFAULT NULL)
RETURNS TABLE (day date, management_earnings numeric, negative_workers bigint,
			   fees_charged numeric, rewards_paid numeric, payouts numeric,
			   tasks_created bigint, tasks_completed bigint)
AS 'MODULE_PATHNAME', 'popug_stats_day'
LANGUAGE C CALLED ON NULL INPUT STABLE ROWS 1 SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION popug.stats_day(date) IS
	'The statistics of one billing day (by default or NULL: today in popug.timezone) (admins, accountants)';

CREATE FUNCTION popug.stats_most_expensive_task(from_day date, to_day date)
RETURNS TABLE (task_id uuid, jira_id text, title text, complete_reward numeric, completed_at timestamptz)
AS 'MODULE_PATHNAME', 'popug_stats_most_expensive_task'
LANGUAGE C CALLED ON NULL INPUT STABLE ROWS 1 SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION popug.stats_most_expensive_task(date, date) IS
	'The task with the highest reward among those completed in the range (earliest on a tie) (admins)';
