-- Money from events only (SPEC 4, 9): payment_apply takes only the stored
-- event, unchanged, whatever NULLs or forgeries it is handed; amounts are
-- checked before they become money (JSON numbers in range, no NaN, no
-- fraction of a cent); bad payloads become dead letters, never a crash;
-- a redelivered copy of an event is never charged twice; money columns
-- refuse NaN; payments_apply's argument is checked.
SELECT plan(67);
\ir setup.psql

\ir cast.psql

-- Money as it stands: every payment, and every balance.
CREATE FUNCTION pg_temp.money() RETURNS text LANGUAGE sql AS $$
	SELECT concat((SELECT string_agg(concat_ws(' ', id, account_id, kind, debit, credit), ',' ORDER BY id) FROM popug.payment),
				  ' / ', (SELECT string_agg(concat_ws(' ', account_id, amount), ',' ORDER BY account_id) FROM popug.balance))
$$;

-- ---- the reported crash: a hand-made row with NULL fields ----
SELECT throws_ok($$ SELECT popug.payment_apply(ROW(1, gen_random_uuid(), NULL, 1, 'x', NULL, now(), '{}', '1')::popug.event) $$,
	'22023', NULL, 'the row of issue 13 (event_name NULL) is refused with 22023, the backend lives');
SELECT throws_ok($$ SELECT popug.payment_apply(ROW(NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)::popug.event) $$,
	'22023', NULL, 'a row of NULLs: 22023');
SELECT throws_ok($$ SELECT popug.payment_apply(NULL) $$, '22004', NULL, 'a NULL row: 22004');

-- ---- a stored, unapplied TaskAssigned: every column NULL in turn ----
SET ROLE t_manager;
SELECT popug.task_create('Count the seeds') AS t1 \gset
RESET ROLE;
SELECT id AS assigned FROM popug.event WHERE event_name = 'TaskAssigned' AND aggregate_id = :'t1' \gset
SELECT pg_temp.money() AS money0 \gset
CREATE TEMP TABLE nulled AS
SELECT col, jsonb_populate_record(NULL::popug.event, to_jsonb(e) || jsonb_build_object(col, NULL)) AS e
  FROM popug.event e,
	   unnest(ARRAY['id', 'event_id', 'event_name', 'event_version', 'producer', 'aggregate_id',
					'occurred_at', 'payload', 'txid']) WITH ORDINALITY c(col, n)
 WHERE e.id = :assigned ORDER BY n;
GRANT SELECT ON nulled TO PUBLIC;
SET ROLE t_accountant;
SELECT throws_ok(format('SELECT popug.payment_apply(e) FROM nulled WHERE col = %L', col),
				 '22023', NULL, format('the stored TaskAssigned with %s NULL: 22023', col))
  FROM nulled;
RESET ROLE;
SELECT is((SELECT count(*)::int FROM pg_attribute WHERE attrelid = 'popug.event'::regclass AND attnum > 0 AND NOT attisdropped),
		  9, 'that was every column of popug.event');

-- ---- forged and altered rows (SPEC 4: only the stored event, unchanged) ----
CREATE TEMP TABLE forged (what text, e popug.event);
INSERT INTO forged
SELECT 'its fee raised', jsonb_populate_record(NULL::popug.event, to_jsonb(e) ||
		jsonb_build_object('payload', e.payload || jsonb_build_object('assign_fee', (e.payload->>'assign_fee')::numeric + 0.01)))
  FROM popug.event e WHERE e.id = :assigned
UNION ALL
SELECT 'another assignee', jsonb_populate_record(NULL::popug.event, to_jsonb(e) || jsonb_build_object('payload', e.payload ||
		jsonb_build_object('assignee_id', CASE e.payload->>'assignee_id' WHEN :'w1' THEN :'w2' ELSE :'w1' END)))
  FROM popug.event e WHERE e.id = :assigned
UNION ALL
SELECT 'another event_id', jsonb_populate_record(NULL::popug.event, to_jsonb(e) || jsonb_build_object('event_id', gen_random_uuid()))
  FROM popug.event e WHERE e.id = :assigned
UNION ALL
SELECT 'another occurred_at', jsonb_populate_record(NULL::popug.event, to_jsonb(e) || jsonb_build_object('occurred_at', e.occurred_at - interval '1 day'))
  FROM popug.event e WHERE e.id = :assigned
UNION ALL
SELECT 'renamed TaskCompleted with a reward', jsonb_populate_record(NULL::popug.event, to_jsonb(e) ||
		jsonb_build_object('event_name', 'TaskCompleted', 'payload', e.payload || '{"complete_reward": 40.00}'))
  FROM popug.event e WHERE e.id = :assigned
UNION ALL
SELECT 'the id of another event', jsonb_populate_record(NULL::popug.event, to_jsonb(e) || jsonb_build_object('id', e.id - 1))
  FROM popug.event e WHERE e.id = :assigned
UNION ALL
SELECT 'an id never stored', ROW(999999999, gen_random_uuid(), 'TaskCompleted', 1, 'tasks', :'t1',
		now(), jsonb_build_object('task_id', :'t1', 'assignee_id', :'w1', 'complete_reward', 40.00), '1')::popug.event;
GRANT SELECT ON forged TO PUBLIC;
SET ROLE t_admin;
SELECT throws_ok(format('SELECT popug.payment_apply(e) FROM forged WHERE what = %L', what), '22023', NULL,
				 format('payment_apply of the stored event with %s: 22023', what))
  FROM forged ORDER BY what;
RESET ROLE;
SELECT is(pg_temp.money(), :'money0', 'none of the refused rows wrote a payment or moved a balance');
CREATE TEMP TABLE stored AS
SELECT 'assigned' AS what, e FROM popug.event e WHERE e.id = :assigned
UNION ALL
SELECT 'account', e FROM (SELECT e FROM popug.event e WHERE e.event_name = 'AccountCreated' LIMIT 1) a;
GRANT SELECT ON stored TO PUBLIC;
SET ROLE t_accountant;
SELECT is(popug.payment_apply(e), true, 'the stored row itself is applied') FROM stored WHERE what = 'assigned';
SELECT is(popug.payment_apply(e), false, 'once') FROM stored WHERE what = 'assigned';
SELECT is(popug.payment_apply(e), false, 'a stored event not about money: false') FROM stored WHERE what = 'account';
RESET ROLE;
SELECT is(popug.payments_apply(), 0::bigint, 'the consumer then finds it applied');

-- ---- payloads that must not become money: dead letters, in one batch ----
-- Every bad event below sits in one batch with good ones; each goes to
-- dead_letter with its reason, the good ones are applied, nothing crashes.
SET ROLE t_manager;
SELECT popug.task_create('Carry the twigs') AS t2 \gset
RESET ROLE;
SELECT popug.payments_apply();
CREATE TEMP TABLE bad (label text, name text, version int, payload jsonb, reason text, id bigint);
INSERT INTO bad (label, name, version, payload, reason) VALUES
('empty payload', 'TaskAssigned', 1, '{}', 'has no task_id'),
('payload an array', 'TaskAssigned', 1, '[1, 2]', 'not a JSON object'),
('payload null', 'TaskAssigned', 1, 'null', 'not a JSON object'),
('payload a string', 'TaskCompleted', 1, '"x"', 'not a JSON object'),
('task_id null', 'TaskAssigned', 1, jsonb_build_object('task_id', NULL, 'assignee_id', :'w1', 'assign_fee', 12), 'task_id is null'),
('task_id a number', 'TaskAssigned', 1, jsonb_build_object('task_id', 5, 'assignee_id', :'w1', 'assign_fee', 12), 'task_id is a number'),
('assignee_id missing', 'TaskAssigned', 1, jsonb_build_object('task_id', :'t2', 'assign_fee', 12), 'has no assignee_id'),
('assignee_id null', 'TaskAssigned', 1, jsonb_build_object('task_id', :'t2', 'assignee_id', NULL, 'assign_fee', 12), 'assignee_id is null'),
('assignee_id a number', 'TaskCompleted', 1, jsonb_build_object('task_id', :'t2', 'assignee_id', 7, 'complete_reward', 30), 'assignee_id is a number'),
('assignee_id not a uuid', 'TaskAssigned', 1, jsonb_build_object('task_id', :'t2', 'assignee_id', 'nobody', 'assign_fee', 12), 'uuid'),
('task_id not a uuid', 'TaskAssigned', 1, jsonb_build_object('task_id', 'x', 'assignee_id', :'w1', 'assign_fee', 12), 'uuid'),
('fee missing', 'TaskAssigned', 1, jsonb_build_object('task_id', :'t2', 'assignee_id', :'w1'), 'has no assign_fee'),
('fee null', 'TaskAssigned', 1, jsonb_build_object('task_id', :'t2', 'assignee_id', :'w1', 'assign_fee', NULL), 'assign_fee is null'),
('fee a string', 'TaskAssigned', 1, jsonb_build_object('task_id', :'t2', 'assignee_id', :'w1', 'assign_fee', '12.00'), 'assign_fee is a string'),
('fee "NaN"', 'TaskAssigned', 1, jsonb_build_object('task_id', :'t2', 'assignee_id', :'w1', 'assign_fee', 'NaN'::numeric), 'assign_fee is a string'),
('fee "Infinity"', 'TaskAssigned', 1, jsonb_build_object('task_id', :'t2', 'assignee_id', :'w1', 'assign_fee', 'Infinity'::numeric), 'assign_fee is a string'),
('fee a boolean', 'TaskAssigned', 1, jsonb_build_object('task_id', :'t2', 'assignee_id', :'w1', 'assign_fee', true), 'a boolean'),
('fee an object', 'TaskAssigned', 1, jsonb_build_object('task_id', :'t2', 'assignee_id', :'w1', 'assign_fee', '{"v": 12}'::jsonb), 'an object'),
('fee below 10.00', 'TaskAssigned', 1, jsonb_build_object('task_id', :'t2', 'assignee_id', :'w1', 'assign_fee', 9.99), 'from 10.00 to 20.00'),
('fee above 20.00', 'TaskAssigned', 1, jsonb_build_object('task_id', :'t2', 'assignee_id', :'w1', 'assign_fee', 20.01), 'from 10.00 to 20.00'),
('fee negative', 'TaskAssigned', 1, jsonb_build_object('task_id', :'t2', 'assignee_id', :'w1', 'assign_fee', -15), 'from 10.00 to 20.00'),
('fee 1e400', 'TaskAssigned', 1, '{"task_id": "00000000-0000-4000-8000-000000000001", "assignee_id": "00000000-0000-4000-8000-000000000002", "assign_fee": 1e400}', 'from 10.00 to 20.00'),
('fee with three decimals', 'TaskAssigned', 1, jsonb_build_object('task_id', :'t2', 'assignee_id', :'w1', 'assign_fee', 12.345), 'at most two decimals'),
('reward below 20.00', 'TaskCompleted', 1, jsonb_build_object('task_id', :'t2', 'assignee_id', :'w1', 'complete_reward', 19.99), 'from 20.00 to 40.00'),
('reward above 40.00', 'TaskCompleted', 1, jsonb_build_object('task_id', :'t2', 'assignee_id', :'w1', 'complete_reward', 40.01), 'from 20.00 to 40.00'),
('reward a string', 'TaskCompleted', 1, jsonb_build_object('task_id', :'t2', 'assignee_id', :'w1', 'complete_reward', '30'), 'a string'),
('reward "NaN"', 'TaskCompleted', 1, jsonb_build_object('task_id', :'t2', 'assignee_id', :'w1', 'complete_reward', 'NaN'::numeric), 'a string'),
('reward of a fee''s size', 'TaskCompleted', 1, jsonb_build_object('task_id', :'t2', 'assignee_id', :'w1', 'complete_reward', 15), 'from 20.00 to 40.00'),
('reward 30.001', 'TaskCompleted', 1, jsonb_build_object('task_id', :'t2', 'assignee_id', :'w1', 'complete_reward', 30.001), 'at most two decimals'),
('created without task_id', 'TaskCreated', 2, '{"title": "x", "complete_reward": 30}', 'has no task_id'),
('created with a numeric title', 'TaskCreated', 2, jsonb_build_object('task_id', gen_random_uuid(), 'title', 42, 'complete_reward', 30), 'title is a number'),
('created with a string reward', 'TaskCreated', 1, jsonb_build_object('task_id', gen_random_uuid(), 'title', '[A-1] x', 'complete_reward', '30'), 'a string'),
('completed version 2', 'TaskCompleted', 2, jsonb_build_object('task_id', :'t2', 'assignee_id', :'w1', 'complete_reward', 30), 'version 2 is not supported');
UPDATE bad SET id = popug.event_append(name, version, 'import', NULL, payload);
-- amounts at the edges, in every JSON spelling of a number, are money
CREATE TEMP TABLE good (label text, name text, payload jsonb, amount numeric, id bigint);
INSERT INTO good (label, name, payload, amount) VALUES
('fee 10', 'TaskAssigned', jsonb_build_object('task_id', :'t2', 'assignee_id', :'w2', 'assign_fee', 10), -10.00),
('fee 20.00', 'TaskAssigned', jsonb_build_object('task_id', :'t2', 'assignee_id', :'w2', 'assign_fee', 20.00), -20.00),
('fee 12.5', 'TaskAssigned', ('{"task_id": "00000000-0000-4000-8000-000000000003", "assignee_id": "' || :'w2' || '", "assign_fee": 1.25e1}')::jsonb, -12.50),
('fee 12.300', 'TaskAssigned', ('{"task_id": "00000000-0000-4000-8000-000000000004", "assignee_id": "' || :'w2' || '", "assign_fee": 12.300}')::jsonb, -12.30),
('reward 20', 'TaskCompleted', jsonb_build_object('task_id', :'t2', 'assignee_id', :'w2', 'complete_reward', 20), 20.00),
('reward 40.00', 'TaskCompleted', jsonb_build_object('task_id', :'t2', 'assignee_id', :'w2', 'complete_reward', 40.00), 40.00);
UPDATE good SET id = popug.event_append(name, 1, 'import', NULL, payload);
SELECT COALESCE((SELECT amount FROM popug.balance WHERE account_id = :'w2'), 0) AS w2_before \gset
SELECT lives_ok($$ SELECT popug.payments_apply() $$, format('a batch of %s malformed events among good ones is applied', (SELECT count(*) FROM bad)));
SELECT is((SELECT string_agg(b.label, ', ' ORDER BY b.id) FROM bad b
			WHERE NOT EXISTS (SELECT FROM popug.dead_letter d WHERE d.consumer = 'accounting' AND d.event = b.id)),
		  NULL, 'every malformed event is a dead letter');
SELECT is((SELECT string_agg(format('%s: %s', b.label, d.error), E'\n' ORDER BY b.id) FROM bad b JOIN popug.dead_letter d ON d.event = b.id
			WHERE d.error NOT LIKE '%' || b.reason || '%'),
		  NULL, 'each with its reason');
SELECT is((SELECT count(*)::int FROM bad b JOIN popug.event e ON e.id = b.id JOIN popug.payment p ON p.event_id = e.event_id),
		  0, 'none of them wrote a payment');
SELECT is((SELECT string_agg(g.label, ', ' ORDER BY g.id) FROM good g JOIN popug.event e ON e.id = g.id
			WHERE NOT EXISTS (SELECT FROM popug.payment p WHERE p.event_id = e.event_id AND p.credit - p.debit = g.amount)),
		  NULL, 'the good ones were applied, each to the cent');
SELECT is((SELECT amount FROM popug.balance WHERE account_id = :'w2'), :w2_before + (SELECT sum(amount) FROM good),
		  'and moved the balance by exactly their amounts');
SELECT is((SELECT count(*)::int FROM popug.ledger_task WHERE title = 'x' OR title::text = '42'), 0, 'no malformed TaskCreated reached the ledger');

-- payment_apply refuses the same stored events with 22023
CREATE TEMP TABLE bad_rows AS SELECT b.label, e FROM bad b JOIN popug.event e ON e.id = b.id
 WHERE b.label IN ('empty payload', 'payload null', 'fee "NaN"', 'fee a string', 'fee 1e400', 'fee with three decimals',
				   'reward a string', 'assignee_id not a uuid', 'completed version 2');
GRANT SELECT ON bad_rows TO PUBLIC;
SET ROLE t_accountant;
SELECT throws_ok(format('SELECT popug.payment_apply(e) FROM bad_rows WHERE label = %L', label), '22023', NULL,
				 format('payment_apply of the stored event with %s: 22023', label))
  FROM bad_rows ORDER BY (e).id;
RESET ROLE;
SELECT is((SELECT count(*)::int FROM popug.dead_letter WHERE consumer = 'accounting'), (SELECT count(*)::int FROM bad),
		  'and sets nothing more aside');

-- ---- NaN can be stored nowhere money is kept ----
SELECT throws_ok(format($$INSERT INTO popug.payment (id, account_id, kind, debit, description, occurred_at, billing_day)
	VALUES (gen_random_uuid(), %L, 'assign_fee', 'NaN', 'x', now(), current_date)$$, :'w1'), '23514', NULL, 'a payment debit of NaN: 23514');
SELECT throws_ok(format($$INSERT INTO popug.payment (id, account_id, kind, credit, description, occurred_at, billing_day)
	VALUES (gen_random_uuid(), %L, 'complete_reward', 'NaN', 'x', now(), current_date)$$, :'w1'), '23514', NULL, 'a payment credit of NaN: 23514');
SELECT throws_ok($$INSERT INTO popug.balance (account_id, amount) SELECT id, 'NaN' FROM popug.account WHERE login = 't_admin'$$,
	'23514', NULL, 'a balance of NaN: 23514');
SELECT throws_ok(format($$INSERT INTO popug.payout (account_id, billing_day, amount) VALUES (%L, current_date, 'NaN')$$, :'w1'),
	'23514', NULL, 'a payout of NaN: 23514');
SELECT throws_ok(format($$INSERT INTO popug.payment (id, account_id, kind, debit, description, occurred_at, billing_day)
	VALUES (gen_random_uuid(), %L, 'assign_fee', 'Infinity', 'x', now(), current_date)$$, :'w1'), '22003', NULL, 'Infinity does not fit either');

-- ---- a redelivered copy changes nothing (SPEC 4) ----
SELECT popug.payments_apply();
SET ROLE t_manager;
SELECT popug.task_create('Guard the eggs') AS t3 \gset
RESET ROLE;
SELECT assignee_id AS t3_worker FROM popug.task WHERE id = :'t3' \gset
SET ROLE t_worker1;
SELECT popug.task_complete(:'t3') WHERE :'t3_worker' = :'w1';
SET ROLE t_worker2;
SELECT popug.task_complete(:'t3') WHERE :'t3_worker' = :'w2';
RESET ROLE;
SELECT is(popug.payments_apply(), 2::bigint, 'a task''s fee and reward applied');
SELECT is((SELECT id FROM popug.payment p WHERE p.task_id = :'t3' AND kind = 'assign_fee'),
		  (SELECT md5(concat_ws('|', e.event_id, 'assign_fee', :'t3_worker'))::uuid FROM popug.event e
			WHERE e.aggregate_id = :'t3' AND e.event_name = 'TaskAssigned'),
		  'a payment''s id is md5(event_id|kind|account_id) of its event');
SELECT pg_temp.money() AS money1 \gset
SELECT count(*) AS events1 FROM popug.event \gset
-- copies as a producer redelivering them might write: the same event_id,
-- another timestamp, another amount, another producer and no aggregate
CREATE FUNCTION pg_temp.redeliver(task uuid) RETURNS void LANGUAGE sql AS $$
	INSERT INTO popug.event (event_id, event_name, event_version, producer, aggregate_id, occurred_at, payload)
	SELECT e.event_id, e.event_name, e.event_version, c.producer, CASE WHEN c.keep THEN e.aggregate_id END,
		   e.occurred_at + c.shift,
		   e.payload || CASE WHEN NOT c.reprice THEN '{}'::jsonb
							 WHEN e.event_name = 'TaskAssigned' THEN '{"assign_fee": 19.99}'::jsonb
							 ELSE '{"complete_reward": 39.99}'::jsonb END
	  FROM popug.event e,
		   (VALUES ('tasks', true, interval '1 hour', false), ('tasks', true, interval '0', true),
				   ('import', false, interval '-1 day', true)) c(producer, keep, shift, reprice)
	 WHERE e.aggregate_id = task AND e.event_name IN ('TaskAssigned', 'TaskCompleted')
	 ORDER BY e.id;
$$;
SELECT max(id) AS before_copies FROM popug.event \gset
SELECT pg_temp.redeliver(:'t3');
SELECT is((SELECT count(*)::int FROM popug.event) - :events1, 6, 'three copies each of the fee''s and the reward''s event');
SELECT is(popug.payments_apply(), 0::bigint, 'payments_apply writes no payment for the copies');
SELECT is(pg_temp.money(), :'money1', 'and moves no balance');
SELECT is((SELECT count(*)::int FROM popug.event) - :events1, 6, 'no TransactionApplied either');
SELECT is((SELECT count(*)::int FROM popug.dead_letter), (SELECT count(*)::int FROM bad), 'a copy is not a dead letter: it is applied already');
CREATE TEMP TABLE copies AS SELECT e.id > :before_copies AS copy, e FROM popug.event e
 WHERE e.aggregate_id = :'t3' OR e.id > :before_copies;
GRANT SELECT ON copies TO PUBLIC;
SET ROLE t_accountant;
SELECT is((SELECT count(*)::int FROM copies WHERE copy AND NOT popug.payment_apply(e)), 6, 'payment_apply of each copy: false');
RESET ROLE;
SELECT is((SELECT count(*)::int FROM copies WHERE NOT copy AND NOT popug.payment_apply(e)), 3,
		  'of the original TaskCreated, TaskAssigned and TaskCompleted too');
SELECT is(pg_temp.money(), :'money1', 'money is still as it was');
-- an event and its copies in one fresh batch: charged once, as first written
SET ROLE t_manager;
SELECT popug.task_create('Count the feathers') AS t4 \gset
RESET ROLE;
SELECT pg_temp.redeliver(:'t4');
SELECT is(popug.payments_apply(), 1::bigint, 'an event and its copies in one batch: one payment');
SELECT is((SELECT debit FROM popug.payment WHERE task_id = :'t4'), (SELECT assign_fee FROM popug.task WHERE id = :'t4'),
		  'of the task''s own fee, not a copy''s');
SELECT is((SELECT count(*)::int FROM popug.balance b
			WHERE amount <> (SELECT sum(credit - debit) FROM popug.payment p WHERE p.account_id = b.account_id)),
		  0, 'each balance is still the sum of its payments');

-- ---- payments_apply's argument ----
SET ROLE t_manager;
SELECT popug.task_create('Sort the pebbles');
RESET ROLE;
SET ROLE t_accountant;
SELECT throws_ok($$ SELECT popug.payments_apply(NULL) $$, '22004', NULL, 'payments_apply(NULL): 22004');
SELECT throws_ok($$ SELECT popug.payments_apply(-1) $$, '22023', NULL, 'payments_apply(-1): 22023');
SELECT throws_ok($$ SELECT popug.payments_apply(-2147483648) $$, '22023', NULL, 'payments_apply of the least integer: 22023');
SELECT is(popug.payments_apply(0), 0::bigint, 'payments_apply(0) applies nothing');
RESET ROLE;
SELECT ok((SELECT pending FROM popug.consumer_lag WHERE consumer = 'accounting') > 0, 'and acknowledges nothing: the new task''s events still wait');
SET ROLE t_accountant;
SELECT is(popug.payments_apply(2147483647), 1::bigint, 'payments_apply of the greatest integer drains what there is');
RESET ROLE;
SELECT is((SELECT count(*)::int FROM popug.dead_letter), (SELECT count(*)::int FROM bad), 'no dead letter was added by any of it');

SELECT * FROM finish();
