-- Statistics (SPEC 7).  Definitions at the top of extension/stats.c.

-- Workers in debt at the end of closed days: final once a day is closed.
CREATE TABLE popug.stats_cache (
	day				date PRIMARY KEY,
	negative_workers bigint NOT NULL,
	fees			numeric NOT NULL,
	rewards			numeric NOT NULL,
	payouts			numeric NOT NULL,
	completed		bigint NOT NULL,
	computed_at		timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE popug.stats_cache IS 'Statistics of closed days (all but tasks_created), final once the day is closed, kept once computed';

CREATE FUNCTION popug.stats_days(from_day date, to_day date)
RETURNS TABLE (day date, management_earnings numeric, negative_workers bigint,
			   fees_charged numeric, rewards_paid numeric, payouts numeric,
			   tasks_created bigint, tasks_completed bigint)
AS 'MODULE_PATHNAME', 'popug_stats_days'
LANGUAGE C CALLED ON NULL INPUT VOLATILE ROWS 30 SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION popug.stats_days(date, date) IS
	'One row of statistics per billing day in the range: earnings (fees - rewards), workers in debt at the day''s end, fees, rewards, payouts, tasks (admins, accountants)';

CREATE FUNCTION popug.stats_day(day date DEFAULT CURRENT_DATE)
RETURNS TABLE (day date, management_earnings numeric, negative_workers bigint,
			   fees_charged numeric, rewards_paid numeric, payouts numeric,
			   tasks_created bigint, tasks_completed bigint)
AS 'MODULE_PATHNAME', 'popug_stats_day'
LANGUAGE C CALLED ON NULL INPUT VOLATILE ROWS 1 SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION popug.stats_day(date) IS
	'The statistics of one billing day (NULL: today in popug.timezone) (admins, accountants)';

CREATE FUNCTION popug.stats_most_expensive_task(from_day date, to_day date)
RETURNS TABLE (task_id uuid, jira_id text, title text, complete_reward numeric, completed_at timestamptz)
AS 'MODULE_PATHNAME', 'popug_stats_most_expensive_task'
LANGUAGE C CALLED ON NULL INPUT STABLE ROWS 1 SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION popug.stats_most_expensive_task(date, date) IS
	'The task with the highest reward among those completed in the range (earliest on a tie) (admins)';
