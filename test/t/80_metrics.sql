-- Metrics (issue 18): popug.metrics, consumer_lag and worker_status give
-- the figures monitoring reads, each against what the tables hold; only
-- admins and pg_monitor read them; popug.event is never read whole.
SELECT plan(17);
\ir setup.psql
\ir cast.psql
SET popug.timezone = 'Etc/GMT-3';	-- billing days begin at 21:00 UTC
SELECT (now() AT TIME ZONE 'Etc/GMT-3')::date AS today \gset

CREATE FUNCTION pg_temp.m(col text) RETURNS numeric
LANGUAGE plpgsql AS $$
DECLARE
	v numeric;
BEGIN
	SET LOCAL ROLE t_admin;
	EXECUTE format('SELECT %I FROM popug.metrics', col) INTO v;
	RESET ROLE;
	RETURN v;
END $$;

-- ---- nothing to pay yet ----
SELECT is(pg_temp.m('billing_days_open'), 0::numeric, 'no payment yet: no billing day is open');
SELECT is(pg_temp.m('billing_oldest_open_day_age_seconds'), 0::numeric, 'and none has an age');
SELECT is(pg_temp.m('events_total'), (SELECT max(id) FROM popug.event)::numeric,
		  'events_total is the highest event id (the accounts'' events)');
SELECT ok(pg_temp.m('events_total') > 0, 'which the accounts made');

-- ---- tasks and money: three tasks, one completed; the workers charged ----
SET ROLE t_manager;
SELECT popug.task_create('Metric task ' || i) FROM generate_series(1, 3) i;
RESET ROLE;
SELECT t.id AS done, a.login AS done_by FROM popug.task t JOIN popug.account a ON a.id = t.assignee_id LIMIT 1 \gset
SET ROLE :done_by;
SELECT popug.task_complete(:'done');
RESET ROLE;
SELECT popug.payments_apply();
SELECT is(pg_temp.m('tasks_open'), 2::numeric, 'two open tasks');
SELECT is(pg_temp.m('accounts_in_debt'), (SELECT count(*) FROM popug.balance WHERE amount < 0)::numeric,
		  'accounts in debt: those with a negative balance');

-- ---- billing days: payments from three days ago are not paid out ----
INSERT INTO popug.payment (id, account_id, kind, debit, description, occurred_at, billing_day)
VALUES (gen_random_uuid(), :'w1', 'assign_fee', 10, 'old', now() - interval '3 days', :'today'::date - 3);
SELECT is(pg_temp.m('billing_days_open'), 4::numeric, 'today and the three days before it are open');
SELECT is(pg_temp.m('billing_oldest_open_day_age_seconds'),
		  EXTRACT(epoch FROM now() - ((:'today'::date - 3) || ' 00:00 +03')::timestamptz),
		  'the oldest open day began at its midnight in popug.timezone');
CALL popug.payout_run(:'today'::date - 2);	-- commits: each statement is its own transaction from here
SELECT is(pg_temp.m('billing_days_open'), 2::numeric, 'after paying out up to the day before yesterday: two open');
SELECT ok(pg_temp.m('billing_oldest_open_day_age_seconds') BETWEEN 86400 AND 2 * 86400,
		  'the oldest open day is yesterday, between one and two days old');

-- ---- mail: one pending for two hours, one failed, one sent ----
INSERT INTO popug.mail (account_id, event_id, to_addr, subject, body, status, created_at)
VALUES (:'w1', gen_random_uuid(), 'w1@example.com', 's', 'b', 'pending', now() - interval '2 hours'),
	   (:'w1', gen_random_uuid(), 'w1@example.com', 's', 'b', 'pending', now() - interval '1 hour'),
	   (:'w2', gen_random_uuid(), 'w2@example.com', 's', 'b', 'failed', now() - interval '5 hours'),
	   (:'w2', gen_random_uuid(), 'w2@example.com', 's', 'b', 'sent', now() - interval '9 hours');
SELECT is(ARRAY[pg_temp.m('mails_pending'), pg_temp.m('mails_failed'), round(pg_temp.m('mail_oldest_pending_age_seconds'))],
		  ARRAY[2, 1, 7200]::numeric[], 'mail: two pending, the oldest for 7200 s, one failed');

-- ---- consumers: what is pending, since when, dead letters not replayed ----
-- metric_all stands before every event (none is visible in its position),
-- metric_now at the current snapshot; an event from an hour ago
INSERT INTO popug.event (event_name, event_version, producer, payload, occurred_at)
VALUES ('Old', 1, 'test', '{}', now() - interval '1 hour');
INSERT INTO popug.consumer (name, snap_lo) VALUES ('metric_all', '1:1:'), ('metric_now', pg_current_snapshot());
INSERT INTO popug.dead_letter (consumer, event_id, event, error, retried_at, event_name, event_version, producer, occurred_at, payload)
VALUES ('metric_all', gen_random_uuid(), 1, 'bad', NULL, 'Old', 1, 'test', now(), '{}'),
	   ('metric_all', gen_random_uuid(), 2, 'bad', now(), 'Old', 1, 'test', now(), '{}');
SET ROLE t_admin;
CREATE TEMP TABLE lag AS SELECT * FROM popug.consumer_lag;
RESET ROLE;
SELECT is((SELECT row(pending, oldest_pending_at, dead_letters)::text FROM lag WHERE consumer = 'metric_all'),
		  (SELECT row(count(*), min(occurred_at) FILTER (WHERE event_name = 'Old'), 1)::text FROM popug.event),
		  'consumer_lag: every event pending, the oldest from an hour ago, one dead letter not replayed');
SELECT is((SELECT row(pending, oldest_pending_at, dead_letters)::text FROM lag WHERE consumer = 'metric_now'),
		  row(0, NULL, 0)::text, 'a consumer at the current snapshot: nothing pending, no oldest event');

-- ---- who reads them ----
SET ROLE t_worker1;
SELECT is((SELECT count(*)::int FROM popug.metrics), 0, 'a worker reads no metrics');
RESET ROLE;
GRANT pg_monitor TO t_nobody;
SELECT max(id) AS last_event FROM popug.event \gset
SET ROLE t_nobody;
SELECT is((SELECT events_total FROM popug.metrics), :last_event::bigint, 'a pg_monitor member without an account reads them');
RESET ROLE;
REVOKE pg_monitor FROM t_nobody;

-- ---- cheap: with 200,000 events, no sequential scan of popug.event ----
INSERT INTO popug.event (event_name, event_version, producer, payload)
SELECT 'Filler', 1, 'test', '{}' FROM generate_series(1, 200000);
ANALYZE popug.event;
SELECT popug.consumer_create('metric_caught_up');
-- (its sequence, one row, it reads whole)
SELECT doesnt_match(pg_temp.plan('SELECT * FROM popug.metrics'), 'Seq Scan on event(?!_id_seq)',
			  'popug.metrics reads popug.event through an index');
SELECT unalike(pg_temp.plan($$SELECT * FROM popug.consumer_lag WHERE consumer = 'metric_caught_up'$$),
			  '%Seq Scan on event%', 'consumer_lag too');

SELECT * FROM finish();
