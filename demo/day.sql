-- popug's scripted day, played by `make demo` (and by the docker image with
-- POPUG_DEMO=1) as a superuser against a cluster whose workers serve this
-- database.  Each actor is a PostgreSQL role acting through SET ROLE, as a
-- client connected as that role would.
--
-- The day is played in the time zone Etc/GMT+12, the last on Earth to see
-- midnight; at its end the scheduler's clock moves to Etc/GMT-14, the first,
-- where that day is already over, so popug's scheduler worker pays it out
-- as it would after midnight.  Nothing else is faked.
\set ON_ERROR_STOP 1
\pset footer off

-- Waits (at most :secs seconds) until a query returns true.
CREATE FUNCTION pg_temp.wait_for(what text, cond text, secs int) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
	ok boolean;
BEGIN
	FOR i IN 1 .. secs * 10 LOOP
		EXECUTE cond INTO ok;
		IF ok THEN
			RETURN;
		END IF;
		PERFORM pg_sleep(0.1);
	END LOOP;
	RAISE EXCEPTION 'timed out after % s waiting for %', secs, what;
END $$;

\echo '== morning: the day starts in Etc/GMT+12'
ALTER SYSTEM SET popug.timezone = 'Etc/GMT+12';
ALTER SYSTEM SET popug.payout_at = '00:00';
SELECT clock_timestamp() AS reloaded_at \gset
SELECT pg_reload_conf() \gset
SET popug.timezone = 'Etc/GMT+12';
-- a reload makes each worker run a pass with the new settings: the day's
-- payments must not count on a day in the old time zone
SELECT pg_temp.wait_for('the workers to read the day''s time zone',
	format($$SELECT count(*) = 2 FROM popug.worker_status
			  WHERE worker IN ('accounting', 'scheduler') AND last_run > %L$$, :'reloaded_at'), 30) \gset

\echo '== the people: a superuser bootstraps the admin, who creates the rest'
CREATE ROLE admin_ada LOGIN;
CREATE ROLE manager_max LOGIN;
CREATE ROLE accountant_eve LOGIN;
CREATE ROLE worker_bob LOGIN;
CREATE ROLE worker_kim LOGIN;
CREATE ROLE worker_lea LOGIN;
CREATE ROLE worker_ned LOGIN;
SELECT popug.account_create('admin_ada', 'ada@example.com', 'admin', 'Ada Admin') IS NOT NULL AS admin_created;

SET ROLE admin_ada;
SELECT popug.account_create('manager_max', 'max@example.com', 'manager', 'Max Manager'),
	   popug.account_create('accountant_eve', 'eve@example.com', 'accountant', 'Eve Accountant'),
	   popug.account_create('worker_bob', 'bob@example.com', 'worker', 'Bob Popug'),
	   popug.account_create('worker_kim', 'kim@example.com', 'worker', 'Kim Popug'),
	   popug.account_create('worker_lea', 'lea@example.com', 'worker', 'Lea Popug'),
	   popug.account_create('worker_ned', 'ned@example.com', 'worker', 'Ned Popug') \gset
SELECT login, role, email FROM popug.accounts ORDER BY role, login;
RESET ROLE;

\echo '== the manager files the day''s tasks; each goes to a random worker'
SET ROLE manager_max;
SELECT popug.task_create('Fix the login page', 'Users cannot log in with long passwords', 'POPUG-101'),
	   popug.task_create('Feed the parrots', 'Seeds, not crackers'),
	   popug.task_create('Sweep the nest'),
	   popug.task_create('Write the release notes', '', 'POPUG-102'),
	   popug.task_create('Count the beaks'),
	   popug.task_create('Sharpen the claws'),
	   popug.task_create('Paint the perch', 'Green, as always'),
	   popug.task_create('Migrate the seed database', '', 'POPUG-103') \gset
SELECT jira_id, title, assign_fee, complete_reward, assignee_login AS assignee
  FROM popug.tasks ORDER BY created_at;
RESET ROLE;

\echo '== each worker finishes one task'
SET ROLE worker_bob;
SELECT popug.task_complete(id) FROM popug.my_tasks WHERE status = 'open' ORDER BY created_at LIMIT 1;
SET ROLE worker_kim;
SELECT popug.task_complete(id) FROM popug.my_tasks WHERE status = 'open' ORDER BY created_at LIMIT 1;
SET ROLE worker_lea;
SELECT popug.task_complete(id) FROM popug.my_tasks WHERE status = 'open' ORDER BY created_at LIMIT 1;
RESET ROLE;

\echo '== the manager shuffles what is still open'
SET ROLE manager_max;
SELECT popug.tasks_shuffle() AS tasks_reassigned;
RESET ROLE;

\echo '== afternoon: everyone finishes what they have'
SET ROLE worker_bob;
SELECT count(popug.task_complete(id)) AS done_by_bob FROM popug.my_tasks WHERE status = 'open';
SET ROLE worker_kim;
SELECT count(popug.task_complete(id)) AS done_by_kim FROM popug.my_tasks WHERE status = 'open';
SET ROLE worker_lea;
SELECT count(popug.task_complete(id)) AS done_by_lea FROM popug.my_tasks WHERE status = 'open';
SET ROLE worker_ned;
SELECT count(popug.task_complete(id)) AS done_by_ned FROM popug.my_tasks WHERE status = 'open';
RESET ROLE;

\echo '== the accounting worker has applied every event (popug.consumer_lag)'
SELECT pg_temp.wait_for('the accounting worker',
	$$SELECT pending = 0 FROM popug.consumer_lag WHERE consumer = 'accounting'$$, 30) \gset
SET ROLE accountant_eve;
SELECT login, sum(credit) AS credited, sum(debit) AS debited,
	   sum(credit - debit) AS balance
  FROM popug.audit_log GROUP BY login ORDER BY login;
RESET ROLE;

\echo '== midnight: the scheduler''s clock moves to Etc/GMT-14, where the day is over'
SELECT max(billing_day) AS the_day FROM popug.payment \gset
ALTER SYSTEM SET popug.timezone = 'Etc/GMT-14';
SELECT pg_reload_conf() \gset
SELECT pg_temp.wait_for('the scheduler to close the day',
	format($$SELECT EXISTS (SELECT FROM popug.billing_day WHERE day = %L AND closed_at IS NOT NULL)$$, :'the_day'), 90) \gset
SELECT day, accounts_paid, total_paid, closed_at IS NOT NULL AS closed
  FROM popug.billing_day ORDER BY day;

\echo '== the mailer sends the payout mails'
SELECT pg_temp.wait_for('the payout mails',
	$$SELECT count(*) FILTER (WHERE status = 'sent') = count(*) FROM popug.mail$$, 60) \gset
SELECT to_addr, subject, status, attempts FROM popug.mail ORDER BY to_addr;

\echo '== the next day: the cluster stays in Etc/GMT-14, sessions too'
-- Billing days follow popug.timezone; the sessions' TimeZone follows it
-- as well, so that current_date is the open billing day: what a user does
-- next counts on the day stats_day() shows and payout_run(current_date)
-- closes.
ALTER SYSTEM SET timezone = 'Etc/GMT-14';
SELECT pg_reload_conf() \gset
SET timezone = 'Etc/GMT-14';
SELECT current_date AS today, popug.billing_day_open() AS open_billing_day;

\echo '== the dashboard of the day (accountant_eve: SELECT * FROM popug.stats_day(day))'
SET ROLE accountant_eve;
\x on
SELECT * FROM popug.stats_day(:'the_day');
\x off
RESET ROLE;

\echo '== worker_bob''s audit log (SELECT * FROM popug.my_audit_log)'
SET ROLE worker_bob;
SELECT * FROM popug.my_balance;
SELECT billing_day, kind, debit, credit, task_title FROM popug.my_audit_log;
RESET ROLE;
