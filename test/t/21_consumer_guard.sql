-- popug's own consumers and NULL arguments (SPEC 9): nobody reads,
-- acknowledges or creates the accounting and mailer consumers from SQL
-- (42501), so no event escapes being applied; a NULL argument is 22004
-- everywhere, never a NULL result.
SELECT plan(41);
\ir setup.psql

\ir cast.psql
SELECT popug.consumer_create('mine');
SELECT popug.payments_apply();
SELECT popug.mail_dispatch(0);
SET ROLE t_manager;
SELECT popug.task_create('Fetch the worms') AS t1 \gset
RESET ROLE;

-- The consumers as they stand, to show nothing moved them.
CREATE FUNCTION pg_temp.positions() RETURNS text LANGUAGE sql AS $$
	SELECT string_agg(concat_ws(' ', name, snap_lo, snap_hi, last_id, win_max_id, batch_last_id, batch_size), ', ' ORDER BY name)
	  FROM popug.consumer
$$;
SELECT pg_temp.positions() AS positions0 \gset

-- ---- popug's own consumers, from SQL: 42501 for everyone ----
CREATE TEMP TABLE own (stmt text);
INSERT INTO own VALUES
($$SELECT count(*) FROM popug.events_read('accounting')$$),
($$SELECT count(*) FROM popug.events_read('accounting', 1000000)$$),
($$SELECT popug.events_ack('accounting')$$),
($$SELECT count(*) FROM popug.events_read('mailer')$$),
($$SELECT popug.events_ack('mailer')$$),
($$SELECT popug.consumer_create('accounting')$$),
($$SELECT popug.consumer_create('mailer', true)$$);
GRANT SELECT ON own TO PUBLIC;
SET ROLE t_admin;
SELECT throws_ok(stmt, '42501', NULL, 'as an admin: ' || stmt) FROM own;
RESET ROLE;
SELECT throws_ok(stmt, '42501', NULL, 'as a superuser: ' || stmt) FROM own;
SELECT throws_like($$ SELECT popug.events_ack('accounting') $$, '%popug''s own event consumer "accounting"%', 'the error says why');
SELECT is(pg_temp.positions(), :'positions0', 'no consumer moved');
SET ROLE t_accountant;
SELECT is(popug.payments_apply(), 1::bigint, 'payments_apply still finds the task''s fee to apply');
RESET ROLE;
SELECT is((SELECT count(*)::int FROM popug.payment WHERE task_id = :'t1'), 1, 'and applied it');
SELECT popug.payments_apply();	-- it passes over the TransactionApplied events it wrote
SELECT lives_ok($$ SELECT popug.mail_dispatch(0) $$, 'mail_dispatch still drains the mailer consumer');
SELECT is((SELECT count(*)::int FROM popug.consumer_lag WHERE consumer IN ('accounting', 'mailer') AND pending > 0), 0,
		  'both are drained by popug itself');
SELECT is((SELECT count(*) FROM popug.events_read('mine', 1000000)) > 0, true, 'a consumer of one''s own reads as before');
SELECT ok(popug.events_ack('mine') > 0, 'and acknowledges');

-- ---- NULL arguments: 22004, and nothing written ----
SELECT count(*) AS consumers0 FROM popug.consumer \gset
CREATE TEMP TABLE nulls (stmt text);
INSERT INTO nulls VALUES
($$SELECT popug.consumer_create(NULL)$$),
($$SELECT popug.consumer_create(NULL, true)$$),
($$SELECT popug.consumer_create('null_start', NULL)$$),
($$SELECT count(*) FROM popug.events_read(NULL)$$),
($$SELECT count(*) FROM popug.events_read('mine', NULL)$$),
($$SELECT count(*) FROM popug.events_read(NULL, NULL)$$),
($$SELECT popug.events_ack(NULL)$$),
($$SELECT popug.dead_letter_retry(NULL)$$),
($$SELECT popug.payments_apply(NULL)$$),
($$SELECT popug.mail_dispatch(NULL)$$),
($$SELECT popug.payout_step(NULL, NULL)$$);
GRANT SELECT ON nulls TO PUBLIC;
SET ROLE t_admin;
SELECT throws_ok(stmt, '22004', NULL, 'as an admin: ' || stmt) FROM nulls;
RESET ROLE;
SELECT throws_ok($$SELECT popug.xact_lock(3, NULL)$$, '22004', NULL,
				 'as the owner (nobody else may): SELECT popug.xact_lock(3, NULL)');
SELECT is((SELECT count(*) FROM popug.consumer), :consumers0::bigint, 'no consumer was created');
SELECT is((SELECT string_agg(p.oid::regprocedure::text, ', ') FROM pg_proc p
			WHERE p.pronamespace = 'popug'::regnamespace AND p.proisstrict AND p.pronargs > 0),
		  NULL, 'no popug function with arguments is STRICT: a NULL argument is an error, never a NULL result');
SET ROLE t_admin;
SELECT throws_ok(format('SELECT popug.dead_letter_retry(%L)', gen_random_uuid()), 'P0002', NULL,
				 'dead_letter_retry of an event no dead letter waits for: P0002');
RESET ROLE;

-- ---- the mailer's malformed PayoutMade events: dead letters, never a crash ----
CREATE TEMP TABLE bad_payouts (label text, version int, payload jsonb, id bigint);
INSERT INTO bad_payouts (label, version, payload) VALUES
('payload an array', 1, '[]'),
('payload null', 1, 'null'),
('payload a string', 1, '"x"'),
('empty payload', 1, '{}'),
('account_id a number', 1, jsonb_build_object('account_id', 5, 'email', 'a@example.com', 'billing_day', '2026-11-01', 'amount', 10)),
('account_id not a uuid', 1, jsonb_build_object('account_id', 'nobody', 'email', 'a@example.com', 'billing_day', '2026-11-01', 'amount', 10)),
('billing_day not a date', 1, jsonb_build_object('account_id', :'w1', 'email', 'a@example.com', 'billing_day', 'soon', 'amount', 10)),
('amount a word', 1, jsonb_build_object('account_id', :'w1', 'email', 'a@example.com', 'billing_day', '2026-11-01', 'amount', 'ten')),
('version 2', 2, jsonb_build_object('account_id', :'w1', 'email', 'a@example.com', 'billing_day', '2026-11-01', 'amount', 10));
UPDATE bad_payouts SET id = popug.event_append('PayoutMade', version, 'import', NULL, payload);
SELECT lives_ok($$ SELECT popug.mail_dispatch(0) $$, 'mail_dispatch drains malformed PayoutMade events');
SELECT is((SELECT string_agg(b.label, ', ' ORDER BY b.id) FROM bad_payouts b
			WHERE NOT EXISTS (SELECT FROM popug.dead_letter d WHERE d.consumer = 'mailer' AND d.event = b.id)),
		  NULL, 'each is a dead letter of the mailer');
SELECT is((SELECT count(*)::int FROM popug.mail), 0, 'and queues no mail');
SELECT is((SELECT error FROM popug.dead_letter d JOIN bad_payouts b ON b.id = d.event WHERE b.label = 'version 2'),
		  'PayoutMade version 2 is not supported', 'e.g. the version');

SELECT * FROM finish();
