-- Accounting (SPEC 4): payments from task events, idempotence, balances,
-- billing days, TaskCreated v1, dead letters, views and permissions.
-- The workers serve database popug, not this one: payments_apply is called
-- by hand here.
SELECT plan(52);
\ir setup.psql

\ir cast.psql
SELECT popug.account_deactivate(:'w2');

-- ---- the fee on creation ----
SET ROLE t_manager;
SELECT popug.task_create('Feed the parrots', '', 'POPUG-7') AS t1 \gset
RESET ROLE;
SELECT assign_fee AS fee, complete_reward AS reward FROM popug.task WHERE id = :'t1' \gset
SET ROLE t_accountant;
SELECT is(popug.payments_apply(), 1::bigint, 'payments_apply writes one payment: the fee of the new task');
RESET ROLE;
SELECT is((SELECT row(kind, debit, credit, task_id, account_id)::text FROM popug.payment),
		  row('assign_fee', :'fee'::numeric, 0::numeric(12,2), :'t1'::uuid, :'w1'::uuid)::text,
		  'the assignee is debited the task''s fee');
SELECT is((SELECT amount FROM popug.balance WHERE account_id = :'w1'), -:'fee'::numeric, 'and the balance drops by it');
SELECT is((SELECT billing_day FROM popug.payment), (now() AT TIME ZONE 'UTC')::date, 'on today''s billing day (UTC)');
SELECT is((SELECT row(title, jira_id, complete_reward)::text FROM popug.ledger_task WHERE task_id = :'t1'),
		  row('Feed the parrots', 'POPUG-7', :'reward'::numeric)::text, 'accounting knows the task from TaskCreated v2');
SELECT is((SELECT payload FROM popug.event WHERE event_name = 'TransactionApplied'),
		  (SELECT jsonb_build_object('payment_id', id, 'account_id', account_id, 'task_id', task_id, 'kind', kind,
									 'debit', debit, 'credit', credit, 'billing_day', billing_day) FROM popug.payment),
		  'a TransactionApplied event carries the payment');
SELECT is((SELECT id FROM popug.payment),
		  (SELECT md5(concat_ws('|', e.event_id, 'assign_fee', :'w1'))::uuid
			 FROM popug.event e WHERE event_name = 'TaskAssigned'),
		  'the payment id is a hash of the event id, kind and account');

-- ---- idempotence ----
SELECT is(popug.payment_apply(e), false, 'applying the same event again writes nothing')
  FROM popug.event e WHERE event_name = 'TaskAssigned';
SELECT is(popug.payments_apply(), 0::bigint, 'nothing left to apply');
SELECT is((SELECT count(*)::int FROM popug.payment), 1, 'still one payment');
-- a batch delivered again (read, not acknowledged, read again) changes nothing
SET ROLE t_manager;
SELECT popug.task_create('Sweep the nest') AS t2 \gset
RESET ROLE;
BEGIN;
SELECT popug.payments_apply();
SELECT is((SELECT count(*)::int FROM popug.payment), 2, 'a second fee applied, inside a transaction');
ROLLBACK;
SELECT is(popug.payments_apply(), 1::bigint, 'after a rollback the batch comes again and is applied once');
SELECT is((SELECT count(*)::int FROM popug.payment), 2, 'two payments');
CREATE TEMP TABLE redo AS SELECT e FROM popug.event e WHERE event_name LIKE 'Task%';
SELECT is((SELECT count(*)::int FROM redo WHERE popug.payment_apply(e)), 0, 'replaying every task event changes nothing');

-- ---- shuffle and completion ----
SET ROLE t_manager;
SELECT is(popug.tasks_shuffle(), 2::bigint, 'a shuffle');
RESET ROLE;
-- one of the shuffle's events applied by hand before the consumer's batch
-- holding it: the batch's plain insert meets its payment and falls back
SELECT is(popug.payment_apply(e), true, 'one reassignment applied by hand first')
  FROM (SELECT e FROM popug.event e WHERE event_name = 'TaskAssigned' ORDER BY id DESC LIMIT 1) s;
SELECT is(popug.payments_apply(), 1::bigint, 'the batch holding it writes only the other fee');
SELECT is((SELECT sum(debit) FROM popug.payment WHERE task_id = :'t1' AND kind = 'assign_fee'), 2 * :'fee'::numeric,
		  'the fee is charged on every assignment');
SET ROLE t_worker1;
SELECT popug.task_complete(:'t1');
RESET ROLE;
SELECT is(popug.payments_apply(), 1::bigint, 'completion');
SELECT is((SELECT credit FROM popug.payment WHERE kind = 'complete_reward'), :'reward'::numeric, 'credits the reward');
SELECT is((SELECT amount FROM popug.balance WHERE account_id = :'w1'),
		  (SELECT sum(credit - debit) FROM popug.payment WHERE account_id = :'w1'),
		  'the balance equals the sum of credit - debit of its payments');

-- ---- TaskCreated v1 (imported): the Jira id is taken out of the title ----
SELECT popug.event_append('TaskCreated', 1, 'import', '11111111-1111-4111-8111-111111111111',
	'{"task_id": "11111111-1111-4111-8111-111111111111", "title": "[OLD-42] Paint the perch", "description": "", "assign_fee": 12.00, "complete_reward": 30.00}');
SELECT popug.event_append('TaskAssigned', 1, 'import', '11111111-1111-4111-8111-111111111111',
	jsonb_build_object('task_id', '11111111-1111-4111-8111-111111111111', 'assignee_id', :'w1',
					   'previous_assignee_id', NULL, 'assign_fee', 12.00, 'reason', 'create'));
SELECT is(popug.payments_apply(), 1::bigint, 'an imported v1 task''s assignment is charged');
SELECT is((SELECT row(jira_id, title)::text FROM popug.ledger_task WHERE task_id = '11111111-1111-4111-8111-111111111111'),
		  row('OLD-42', 'Paint the perch')::text, 'v1: "[OLD-42] Paint the perch" is jira_id OLD-42, title "Paint the perch"');

-- ---- bad events go to the dead letter table; the stream goes on ----
SELECT popug.event_append('TaskAssigned', 1, 'import', NULL, '{"task_id": "not a uuid"}') AS bad1 \gset
SELECT popug.event_append('TaskAssigned', 1, 'import', NULL,
	jsonb_build_object('task_id', gen_random_uuid(), 'assignee_id', gen_random_uuid(), 'assign_fee', 10, 'reason', 'create')) AS bad2 \gset
SELECT popug.event_append('TaskCompleted', 9, 'import', NULL, '{}') AS bad3 \gset
SET ROLE t_worker1;
SELECT popug.task_complete(:'t2') WHERE EXISTS (SELECT FROM popug.my_tasks WHERE id = :'t2');
RESET ROLE;
SET ROLE t_admin;
SELECT popug.tasks_shuffle();
RESET ROLE;
SELECT lives_ok($$ SELECT popug.payments_apply() $$, 'a batch with bad events is applied');
SELECT is((SELECT array_agg(event ORDER BY event) FROM popug.dead_letter WHERE consumer = 'accounting'),
		  ARRAY[:bad1, :bad2, :bad3]::bigint[], 'the malformed, unknown-account and unknown-version events are dead letters');
SELECT ok((SELECT bool_and(error <> '') FROM popug.dead_letter), 'each with its error');
SELECT is((SELECT error FROM popug.dead_letter WHERE event = :bad3), 'TaskCompleted version 9 is not supported', 'e.g. the version');
SET ROLE t_admin;
CREATE TEMP TABLE admin_sees AS SELECT * FROM popug.dead_letters;
RESET ROLE;
SELECT is((SELECT array_agg(row(d.consumer, d.event_name, d.event_version, d.producer, d.payload, d.error, d.retried_at)::text
								ORDER BY d.event_id) FROM admin_sees d),
		  (SELECT array_agg(row(l.consumer, e.event_name, e.event_version, e.producer, e.payload, l.error, NULL)::text
								ORDER BY l.event_id) FROM popug.dead_letter l JOIN popug.event e ON e.id = l.event),
		  'an admin sees each dead letter in popug.dead_letters with its event''s name, version, producer, payload and error');
SELECT is((SELECT payload FROM admin_sees WHERE error = 'TaskCompleted version 9 is not supported'), '{}'::jsonb,
		  'e.g. the unknown version''s');
SET ROLE t_accountant;
SELECT is((SELECT count(*)::int FROM popug.dead_letters), 0, 'an accountant sees no dead letters');
RESET ROLE;
SELECT is(popug.payments_apply(), 0::bigint, 'the consumer moved past them: nothing comes again');
SELECT is((SELECT pending FROM popug.consumer_lag WHERE consumer = 'accounting'), 0::bigint, 'no lag');
SELECT ok((SELECT count(*) FROM popug.payment WHERE task_id = :'t2') >= 2, 'the good events of that batch were applied');
SELECT throws_ok(format('SELECT popug.payment_apply(e) FROM popug.event e WHERE id = %s', :bad2), '22023', NULL,
	'payment_apply of an event naming an unknown account: 22023');

-- ---- an admin replays a dead letter once its cause is fixed ----
SELECT event_id AS bad2_event, (payload->>'assignee_id')::uuid AS ghost FROM popug.event WHERE id = :bad2 \gset
SET ROLE t_accountant;
SELECT throws_ok(format('SELECT popug.dead_letter_retry(%L)', :'bad2_event'), '42501', NULL, 'only an admin replays dead letters');
RESET ROLE;
INSERT INTO popug.account (id, login, email, role) VALUES (:'ghost', 't_ghost', 'ghost@example.com', 'worker');
SET ROLE t_admin;
SELECT is(popug.dead_letter_retry(:'bad2_event'), 1, 'with the account imported, the event is replayed');
SELECT throws_ok(format('SELECT popug.dead_letter_retry(%L)', :'bad2_event'), 'P0002', NULL, 'once: replaying it again is P0002');
SELECT isnt((SELECT retried_at FROM popug.dead_letters WHERE event_id = :'bad2_event'), NULL,
			'popug.dead_letters shows when it was replayed');
RESET ROLE;
SELECT is((SELECT row(debit, kind)::text FROM popug.payment WHERE account_id = :'ghost'), row(10.00, 'assign_fee')::text,
		  'the replayed event charged its fee');

-- ---- billing day: once day D's payout has started, payments count on D + 1 ----
INSERT INTO popug.billing_day (day) VALUES ((now() AT TIME ZONE 'UTC')::date);
SET ROLE t_admin;
SELECT popug.task_create('After the payout started') IS NOT NULL;
RESET ROLE;
SELECT popug.payments_apply();
SELECT is((SELECT DISTINCT billing_day FROM popug.payment WHERE applied_at = (SELECT max(applied_at) FROM popug.payment)),
		  (now() AT TIME ZONE 'UTC')::date + 1, 'a payment applied after today''s payout started counts tomorrow');
SET popug.timezone = 'Etc/GMT-14';
SELECT is(popug.billing_day_open(), greatest((now() AT TIME ZONE 'Etc/GMT-14')::date, (now() AT TIME ZONE 'UTC')::date + 1),
		  'the open day follows popug.timezone');
RESET popug.timezone;

-- ---- permissions and views ----
SET ROLE t_worker1;
SELECT throws_ok($$ SELECT popug.payments_apply() $$, '42501', NULL, 'a worker cannot apply payments');
SELECT throws_ok($$ SELECT popug.payment_apply(NULL::popug.event) $$, '22004', NULL, 'a NULL event: 22004');
SELECT is((SELECT amount FROM popug.my_balance), (SELECT sum(credit - debit) FROM popug.my_audit_log), 'my_balance matches my_audit_log');
SELECT is((SELECT login::text FROM popug.my_balance), current_user::text, 'my_balance names the caller''s login beside its id');
SELECT is((SELECT count(*)::int FROM popug.audit_log), 0, 'a worker sees nothing in audit_log');
SELECT ok((SELECT count(*) FROM popug.my_audit_log WHERE task_title = 'Feed the parrots') > 0, 'my_audit_log names the task');
SET ROLE t_manager;
SELECT throws_ok($$ SELECT popug.payments_apply() $$, '42501', NULL, 'nor can a manager');
SELECT is((SELECT count(*)::int FROM popug.audit_log), 0, 'who sees no company money either');
SELECT is((SELECT amount FROM popug.my_balance), 0.00::numeric(14,2), 'a manager''s own balance is zero');
RESET ROLE;
SELECT count(*) AS all_payments FROM popug.payment \gset
SET ROLE t_accountant;
SELECT is((SELECT count(*) FROM popug.audit_log), :all_payments::bigint, 'an accountant sees every payment');
RESET ROLE;
SELECT is((SELECT count(*) FROM popug.payment p WHERE NOT EXISTS (SELECT FROM popug.event e WHERE e.event_id = p.event_id)), 0::bigint,
		  'every payment has its source event');

SELECT * FROM finish();
