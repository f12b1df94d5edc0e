-- Events (SPEC 3): consumers, batches, acknowledgement, permissions.
-- Runs in autocommit: a consumer only ever sees committed events.
SELECT plan(42);
\ir setup.psql

SELECT popug.account_create('t_admin', 'admin@example.com', 'admin');
SELECT popug.account_create('t_worker1', 'w1@example.com', 'worker');

-- ---- registering consumers ----
SELECT lives_ok($$ SELECT popug.consumer_create('from_start', true) $$, 'a superuser registers a consumer from the start');
SET ROLE t_admin;
SELECT lives_ok($$ SELECT popug.consumer_create('tail') $$, 'an admin registers a consumer at the end');
SELECT throws_ok($$ SELECT popug.consumer_create('tail') $$, '42710', 'event consumer "tail" already exists',
	'registering a name twice is 42710');
SELECT throws_ok($$ SELECT popug.consumer_create('bad name!') $$, '22023', NULL, 'a malformed name is 22023');
SELECT throws_ok($$ SELECT * FROM popug.events_read('nope') $$, 'P0002', 'event consumer "nope" does not exist',
	'reading an unknown consumer is P0002');
SELECT throws_ok($$ SELECT popug.events_ack('nope') $$, 'P0002', NULL, 'acknowledging an unknown consumer is P0002');
SELECT throws_ok($$ SELECT * FROM popug.events_read('tail', 0) $$, '22023', NULL, 'max_events 0 is 22023');
RESET ROLE;
SET ROLE t_worker1;
SELECT throws_ok($$ SELECT popug.consumer_create('mine') $$, '42501', NULL, 'a worker cannot register consumers');
SELECT throws_ok($$ SELECT * FROM popug.events_read('tail') $$, '42501', NULL, 'nor read events');
RESET ROLE;
SELECT ok(NOT has_function_privilege('t_admin', 'popug.event_append(text,int,text,uuid,jsonb)', 'EXECUTE'),
	'nobody but the owner may append raw events');

-- ---- reading from the start, in batches ----
SELECT popug.event_append('Test', 1, 'test', NULL, jsonb_build_object('n', g)) FROM generate_series(1, 5) g;

SELECT is((SELECT array_agg(event_name ORDER BY id) FROM popug.events_read('from_start', 3)),
	ARRAY['AccountCreated', 'AccountCreated', 'Test'], 'the first batch from the start, in id order');
SELECT is((SELECT array_agg(event_name ORDER BY id) FROM popug.events_read('from_start', 3)),
	ARRAY['AccountCreated', 'AccountCreated', 'Test'], 'the same batch again until it is acknowledged');
SELECT is((SELECT array_agg(event_name ORDER BY id) FROM popug.events_read('from_start', 100)),
	ARRAY['AccountCreated', 'AccountCreated', 'Test'], 'the same batch even with another max_events');
SELECT is(popug.events_ack('from_start'), 3::bigint, 'ack returns the batch size');
SELECT is(popug.events_ack('from_start'), 0::bigint, 'a second ack acknowledges nothing');
SELECT is((SELECT array_agg((payload->>'n')::int ORDER BY id) FROM popug.events_read('from_start', 3)),
	ARRAY[2, 3, 4], 'the next batch continues where the last ended');
SELECT is(popug.events_ack('from_start'), 3::bigint, 'ack');
SELECT is((SELECT array_agg((payload->>'n')::int ORDER BY id) FROM popug.events_read('from_start', 3)),
	ARRAY[5], 'the last, shorter batch');
SELECT is(popug.events_ack('from_start'), 1::bigint, 'ack');
SELECT is((SELECT count(*)::int FROM popug.events_read('from_start', 3)), 0, 'then nothing');

-- ---- a consumer created later sees only later events ----
SELECT is((SELECT array_agg((payload->>'n')::int ORDER BY id) FROM popug.events_read('tail')),
	ARRAY[1, 2, 3, 4, 5], 'tail sees the events committed after it was registered');
SELECT is(popug.events_ack('tail'), 5::bigint, 'ack');
SELECT popug.event_append('Test', 1, 'test', NULL, '{"n": 6}');
SELECT is((SELECT array_agg((payload->>'n')::int ORDER BY id) FROM popug.events_read('from_start')),
	ARRAY[6], 'a new event reaches the first consumer');
SELECT is((SELECT array_agg((payload->>'n')::int ORDER BY id) FROM popug.events_read('tail')),
	ARRAY[6], 'and the second: consumers are independent');

-- ---- an event written in the reading transaction is not delivered before it commits ----
BEGIN;
SELECT popug.event_append('Test', 1, 'test', NULL, '{"n": 7}');
SELECT popug.events_ack('tail');
SELECT is((SELECT count(*)::int FROM popug.events_read('tail')), 0,
	'a consumer does not see its own transaction''s uncommitted event');
SELECT popug.events_ack('tail');
COMMIT;
SELECT is((SELECT array_agg((payload->>'n')::int ORDER BY id) FROM popug.events_read('tail')),
	ARRAY[7], 'it is delivered once committed, not skipped');

-- ---- a rolled back ack leaves the batch to be delivered again ----
SELECT popug.events_ack('tail');
SELECT popug.event_append('Test', 1, 'test', NULL, '{"n": 8}');
BEGIN;
SELECT is((SELECT count(*)::int FROM popug.events_read('tail')), 1, 'read inside a transaction');
SELECT is(popug.events_ack('tail'), 1::bigint, 'acked inside it');
ROLLBACK;
SELECT is((SELECT array_agg((payload->>'n')::int ORDER BY id) FROM popug.events_read('tail')),
	ARRAY[8], 'after rollback the batch comes again');

-- ---- lag and event columns ----
SELECT is((SELECT pending FROM popug.consumer_lag WHERE consumer = 'tail'), 1::bigint, 'consumer_lag counts the unacknowledged batch');
SELECT popug.events_ack('tail');
SELECT is((SELECT pending FROM popug.consumer_lag WHERE consumer = 'tail'), 0::bigint, 'and nothing after ack');
SET ROLE t_worker1;
SELECT is((SELECT count(*)::int FROM popug.consumer_lag), 0, 'a worker sees no consumer lag rows');
SELECT is((SELECT count(*)::int FROM popug.worker_status), 0, 'nor worker status rows');
SELECT is((SELECT count(*)::int FROM popug.worker_status_rows()), 0, 'not even calling the row function directly');
RESET ROLE;
-- (all four when popug is preloaded; none run without it)
SELECT current_setting('shared_preload_libraries') ~ 'popug' AS preloaded \gset
SET ROLE t_admin;
SELECT is((SELECT count(*)::int FROM popug.worker_status),
	CASE WHEN :'preloaded'::boolean THEN 4 ELSE 0 END, 'an admin sees the workers');
RESET ROLE;
GRANT pg_monitor TO t_nobody;
SET ROLE t_nobody;
SELECT is((SELECT count(*)::int FROM popug.worker_status),
	CASE WHEN :'preloaded'::boolean THEN 4 ELSE 0 END, 'so does a pg_monitor member without an account');
RESET ROLE;
REVOKE pg_monitor FROM t_nobody;
SELECT ok((SELECT bool_and(event_id IS NOT NULL AND occurred_at IS NOT NULL) FROM popug.event),
	'every event has an event_id and occurred_at');

-- ---- popug.payload: jsonb_build_object for payloads, types resolved once ----
SET datestyle = 'SQL, DMY';
CREATE TEMP TABLE pv (u uuid, n numeric, i int, b boolean, d date, t timestamptz, s text, r popug.role);
INSERT INTO pv VALUES
	('7a1c0d3e-0000-4000-8000-000000000001', 12.50, 1, true, '2026-11-24', '2026-11-24 10:00+00', 'a"b', 'worker'),
	('7a1c0d3e-0000-4000-8000-000000000002', 'NaN', 2, false, '2026-01-02', now(), NULL, NULL),
	(NULL, -0.01, 3, NULL, NULL, NULL, '', 'admin');
SELECT is((SELECT jsonb_agg(popug.payload('id', u, 'n', n, 'i', i, 'b', b, 'd', d, 'at', t, 's', s, 'r', r, 'lit', 'x') ORDER BY i) FROM pv),
		  (SELECT jsonb_agg(jsonb_build_object('id', u, 'n', n, 'i', i, 'b', b, 'd', d, 'at', t, 's', s, 'r', r, 'lit', 'x') ORDER BY i) FROM pv),
		  'payload() gives what jsonb_build_object() gives, whatever the DateStyle');
RESET datestyle;
SELECT is(popug.payload('amount', 12.50::numeric(12,2), 'day', date '2026-11-24', 'n', 3::bigint),
		  '{"amount": 12.50, "day": "2026-11-24", "n": 3}'::jsonb, 'numbers keep their scale, dates are ISO');
SELECT throws_ok($$ SELECT popug.payload('k') $$, '22023', NULL, 'an odd number of arguments is 22023');
SELECT throws_ok($$ SELECT popug.payload(NULL::text, 1) $$, '22004', NULL, 'a null key is 22004');
SELECT throws_ok($$ SELECT popug.payload('k', ARRAY[1]) $$, '0A000', 'popug.payload() takes scalar values, not integer[]',
	'arrays are 0A000');

SELECT * FROM finish();
