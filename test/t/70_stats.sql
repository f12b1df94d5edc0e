-- Statistics (SPEC 7) over hand-built accounting data with known answers:
-- earnings, workers in debt at the end of each day, payouts, tasks, late
-- events on their billing day, the most expensive task, permissions.
SELECT plan(28);
\ir setup.psql

\ir cast.psql
SELECT (now() AT TIME ZONE 'UTC')::date - 10 AS d1 \gset

CREATE FUNCTION pg_temp.pay(account uuid, day date, kind text, amount numeric, task uuid DEFAULT NULL,
							at timestamptz DEFAULT NULL) RETURNS void
LANGUAGE sql AS $$
	INSERT INTO popug.payment (id, account_id, task_id, kind, debit, credit, description, occurred_at, billing_day)
	VALUES (gen_random_uuid(), account, task, kind,
			CASE WHEN kind = 'complete_reward' THEN 0 ELSE amount END,
			CASE WHEN kind = 'complete_reward' THEN amount ELSE 0 END, 'test',
			COALESCE(at, day + time '12:00'), day);
	INSERT INTO popug.balance AS b (account_id, amount)
	VALUES (account, CASE WHEN kind = 'complete_reward' THEN amount ELSE -amount END)
	ON CONFLICT (account_id) DO UPDATE SET amount = b.amount + excluded.amount;
$$;
INSERT INTO popug.ledger_task VALUES
	('aaaaaaaa-0000-4000-8000-000000000001', 'POPUG-1', 'Cheap', 25.00, :'d1'::date + time '09:00', :'d1'),
	('aaaaaaaa-0000-4000-8000-000000000002', NULL, 'Dear', 39.00, :'d1'::date + time '10:00', :'d1'),
	('aaaaaaaa-0000-4000-8000-000000000003', NULL, 'Also dear', 39.00, :'d1'::date + 2 + time '10:00', :'d1'::date + 2);

-- d1: worker1 charged 15 and 12 (debt 27), worker2 charged 10, rewarded 25
SELECT pg_temp.pay(:'w1', :'d1', 'assign_fee', 15), pg_temp.pay(:'w1', :'d1', 'assign_fee', 12),
	   pg_temp.pay(:'w2', :'d1', 'assign_fee', 10),
	   pg_temp.pay(:'w2', :'d1', 'complete_reward', 25, 'aaaaaaaa-0000-4000-8000-000000000001');
-- d1+1: nothing.  d1+2: worker1 rewarded 39 (debt paid off: +12), worker2 paid out 15;
-- a late event from d1 counts on d1+2, its billing day
SELECT pg_temp.pay(:'w1', :'d1'::date + 2, 'complete_reward', 39, 'aaaaaaaa-0000-4000-8000-000000000002', :'d1'::date + time '23:59'),
	   pg_temp.pay(:'w2', :'d1'::date + 2, 'payout', 15),
	   pg_temp.pay(:'w2', :'d1'::date + 2, 'complete_reward', 39, 'aaaaaaaa-0000-4000-8000-000000000003');

SET ROLE t_accountant;
CREATE TEMP TABLE s AS SELECT * FROM popug.stats_days(:'d1', :'d1'::date + 3);
RESET ROLE;
SELECT is((SELECT count(*)::int FROM s), 4, 'one row per day, days without activity included');
SELECT is((SELECT row(fees_charged, rewards_paid, management_earnings)::text FROM s WHERE day = :'d1'),
		  row(37.00, 25.00, 12.00)::text, 'd1: fees 37, rewards 25, earnings 12');
SELECT is((SELECT negative_workers FROM s WHERE day = :'d1'), 1::bigint, 'd1: one worker in debt at the end of the day');
SELECT is((SELECT row(management_earnings, negative_workers)::text FROM s WHERE day = :'d1'::date + 1),
		  row(0.00, 1)::text, 'd1+1: no money moved, the debt is still there');
SELECT is((SELECT row(fees_charged, rewards_paid, management_earnings, payouts)::text FROM s WHERE day = :'d1'::date + 2),
		  row(0.00, 78.00, -78.00, 15.00)::text, 'd1+2: rewards 78 (the late one included), earnings -78, payouts 15');
SELECT is((SELECT negative_workers FROM s WHERE day = :'d1'::date + 2), 0::bigint, 'd1+2: the debt was paid off');
SELECT is((SELECT row(tasks_created, tasks_completed)::text FROM s WHERE day = :'d1'), row(2, 1)::text, 'd1: 2 tasks created, 1 completed');
SELECT is((SELECT row(tasks_created, tasks_completed)::text FROM s WHERE day = :'d1'::date + 2), row(1, 2)::text, 'd1+2: 1 created, 2 completed');
SET ROLE t_admin;
SELECT is((SELECT row(day, management_earnings)::text FROM popug.stats_day(:'d1')), row(:'d1'::date, 12.00)::text,
		  'stats_day is the same row');
SELECT is((SELECT negative_workers FROM popug.stats_day()), 0::bigint, 'today: nobody in debt now');
SELECT is((SELECT day FROM popug.stats_day()), (now() AT TIME ZONE 'UTC')::date, 'stats_day() is today');

-- ---- closed days: figures kept by the payout, the same answers ----
-- Paying out d1 and d1+1 pays worker2 the 15 it had at the end of d1.
RESET ROLE;
CALL popug.payout_run(:'d1'::date + 1);
SELECT is((SELECT array_agg(row(day, negative_workers, fees, rewards, payouts, completed)::text ORDER BY day)
			 FROM popug.billing_day),
		  ARRAY[row(:'d1'::date, 1, 37.00, 25.00, 15.00, 1)::text, row(:'d1'::date + 1, 1, 0.00, 0.00, 0.00, 0)::text],
		  'the payout keeps each closed day''s figures: debt counted at its start, money summed at its close');
UPDATE s SET payouts = 15.00 WHERE day = :'d1';
SET ROLE t_accountant;
SELECT is((SELECT array_agg(row(s.*)::text ORDER BY day) FROM popug.stats_days(:'d1', :'d1'::date + 3) s),
		  (SELECT array_agg(row(s.*)::text ORDER BY day) FROM s),
		  'closed days read from there agree with the days computed from payments (d1 now with its payout)');
SELECT is((SELECT array_agg(row(s.*)::text ORDER BY day) FROM popug.stats_days(:'d1'::date - 3, :'d1'::date - 1) s),
		  ARRAY[row(:'d1'::date - 3, 0.00, 0, 0.00, 0.00, 0.00, 0, 0)::text, row(:'d1'::date - 2, 0.00, 0, 0.00, 0.00, 0.00, 0, 0)::text,
				row(:'d1'::date - 1, 0.00, 0, 0.00, 0.00, 0.00, 0, 0)::text],
		  'days before the first day paid out are all zero');
SET ROLE t_admin;

-- ---- the most expensive task ----
SELECT is((SELECT row(task_id, jira_id, title, complete_reward)::text FROM popug.stats_most_expensive_task(:'d1', :'d1'::date + 3)),
		  row('aaaaaaaa-0000-4000-8000-000000000002'::uuid, NULL::text, 'Dear', 39.00)::text,
		  'the highest reward in the range; on a tie the earliest completion');
SELECT is((SELECT title FROM popug.stats_most_expensive_task(:'d1', :'d1')), 'Cheap', 'the range bounds it');
SELECT is((SELECT count(*)::int FROM popug.stats_most_expensive_task(:'d1'::date + 1, :'d1'::date + 1)), 0, 'no completion: no row');
RESET ROLE;

-- ---- a closed day's figures are final, tasks_created included ----
-- A task counts on the billing day accounting learned of it, as its fee
-- does: one created after today's early payout counts tomorrow.
SELECT (now() AT TIME ZONE 'UTC')::date AS today \gset
SET ROLE t_manager;
SELECT popug.task_create('Before the early payout') IS NOT NULL AS created;
RESET ROLE;
SELECT popug.payments_apply() > 0 AS applied;
CALL popug.payout_run(:'today');
SET ROLE t_accountant;
CREATE TEMP TABLE closed AS SELECT * FROM popug.stats_day(:'today');
RESET ROLE;
SELECT is((SELECT tasks_created FROM closed), 1::bigint, 'today, paid out early: one task created');
SET ROLE t_manager;
SELECT popug.task_create('After the early payout') IS NOT NULL AS created;
RESET ROLE;
SELECT popug.payments_apply() > 0 AS applied;
SET ROLE t_accountant;
SELECT is((SELECT row(s.*)::text FROM popug.stats_day(:'today') s), (SELECT row(c.*)::text FROM closed c),
		  'a task created after the payout leaves the closed day''s figures as they were');
SELECT is((SELECT row(tasks_created, fees_charged > 0)::text FROM popug.stats_day(:'today'::date + 1)), row(1, true)::text,
		  'it counts on the next billing day, with its fee');
RESET ROLE;

-- ---- stats_day() is stats_day(NULL): today in popug.timezone ----
-- 26 hours apart, so the session's CURRENT_DATE is never popug's today.
SET popug.timezone = 'Etc/GMT-14';
SET TimeZone = 'Etc/GMT+12';
SET ROLE t_accountant;
SELECT is((SELECT day FROM popug.stats_day()), (now() AT TIME ZONE 'Etc/GMT-14')::date,
		  'stats_day() is today in popug.timezone, not the session''s CURRENT_DATE');
SELECT is((SELECT row(s.*)::text FROM popug.stats_day() s), (SELECT row(s.*)::text FROM popug.stats_day(NULL) s),
		  'the same row as stats_day(NULL)');
RESET ROLE;
RESET TimeZone;
RESET popug.timezone;

-- ---- errors and permissions ----
SET ROLE t_admin;
SELECT throws_ok(format('SELECT * FROM popug.stats_days(%L, %L)', :'d1'::date + 1, :'d1'), '22023', NULL, 'from after to: 22023');
SELECT throws_ok($$ SELECT * FROM popug.stats_days('2000-01-01', '2030-01-01') $$, '22023', NULL, 'a range of 30 years: 22023');
SET ROLE t_accountant;
SELECT throws_ok($$ SELECT * FROM popug.stats_most_expensive_task(current_date, current_date) $$, '42501', NULL,
	'only an admin sees task analytics');
SET ROLE t_manager;
SELECT throws_ok($$ SELECT * FROM popug.stats_day() $$, '42501', NULL, 'a manager cannot read statistics');
SET ROLE t_worker1;
SELECT throws_ok($$ SELECT * FROM popug.stats_days(current_date, current_date) $$, '42501', NULL, 'nor a worker');
SET ROLE t_nobody;
SELECT throws_ok($$ SELECT * FROM popug.stats_day() $$, '42501', NULL, 'nor a role without an account');
RESET ROLE;

SELECT * FROM finish();
