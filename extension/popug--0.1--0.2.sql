-- popug 0.1 -> 0.2.  Every change to extension/sql/ since 0.1 is made here
-- too, so that an upgraded database has exactly the objects of a fresh 0.2
-- install (test/integration/20_upgrade checks the catalogs).
\echo Use "ALTER EXTENSION popug UPDATE TO '0.2'" to load this file. \quit

-- Where event transaction ids come from (see extension/sql/20_events.sql).
CREATE TABLE popug.origin (
	one					boolean PRIMARY KEY DEFAULT true CHECK (one),
	system_identifier	bigint NOT NULL,
	database			oid NOT NULL,
	stamped_at			timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE popug.origin IS
	'The cluster (system identifier) and database whose transaction ids popug.event and popug.consumer hold';

-- Backups: pg_dump keeps every table's rows and the identity sequences'
-- positions (see extension/sql/90_dump.sql).  worker_pool keeps its row:
-- 0.2 makes it on the first worker's arrival instead of at install.
SELECT pg_catalog.pg_extension_config_dump('popug.account', '');
SELECT pg_catalog.pg_extension_config_dump('popug.worker_pool', '');
SELECT pg_catalog.pg_extension_config_dump('popug.worker_slot', '');
SELECT pg_catalog.pg_extension_config_dump('popug.event', '');
SELECT pg_catalog.pg_extension_config_dump('popug.event_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('popug.consumer', '');
SELECT pg_catalog.pg_extension_config_dump('popug.origin', '');
SELECT pg_catalog.pg_extension_config_dump('popug.dead_letter', '');
SELECT pg_catalog.pg_extension_config_dump('popug.task', '');
SELECT pg_catalog.pg_extension_config_dump('popug.payment', '');
SELECT pg_catalog.pg_extension_config_dump('popug.balance', '');
SELECT pg_catalog.pg_extension_config_dump('popug.ledger_task', '');
SELECT pg_catalog.pg_extension_config_dump('popug.billing_day', '');
SELECT pg_catalog.pg_extension_config_dump('popug.payout', '');
SELECT pg_catalog.pg_extension_config_dump('popug.mail', '');
SELECT pg_catalog.pg_extension_config_dump('popug.mail_id_seq', '');

-- Hardening (money): NULL arguments of the consumer functions raise 22004
-- instead of returning NULL; money columns refuse NaN; a balance stays
-- within what one payment can pay out and day totals are wide enough that
-- no payout or close can overflow; payment ids hash the source event's
-- event_id, kind and account only.  See extension/sql/20_events.sql and
-- 40_accounting.sql, whose definitions these repeat.

CREATE OR REPLACE FUNCTION popug.consumer_create(name text, from_start boolean DEFAULT false)
RETURNS void
AS 'MODULE_PATHNAME', 'popug_consumer_create'
LANGUAGE C CALLED ON NULL INPUT VOLATILE SET search_path = pg_catalog, pg_temp;

CREATE OR REPLACE FUNCTION popug.events_read(consumer text, max_events integer DEFAULT 1000)
RETURNS SETOF popug.event
AS 'MODULE_PATHNAME', 'popug_events_read'
LANGUAGE C CALLED ON NULL INPUT VOLATILE ROWS 1000 SET search_path = pg_catalog, pg_temp;

CREATE OR REPLACE FUNCTION popug.events_ack(consumer text)
RETURNS bigint
AS 'MODULE_PATHNAME', 'popug_events_ack'
LANGUAGE C CALLED ON NULL INPUT VOLATILE SET search_path = pg_catalog, pg_temp;

COMMENT ON FUNCTION popug.consumer_create(text, boolean) IS
	'Registers a durable consumer at the current end of the stream, or at its start (admins; not popug''s own accounting and mailer)';
COMMENT ON FUNCTION popug.events_read(text, integer) IS
	'The consumer''s next batch; the same batch again until events_ack (admins; not popug''s own accounting and mailer)';
COMMENT ON FUNCTION popug.events_ack(text) IS
	'Acknowledges the batch last read; returns its size (admins; not popug''s own accounting and mailer)';

-- A 0.1 database holding NaN or a balance beyond the bound stops the
-- upgrade here: such money has to be corrected by hand first.
ALTER TABLE popug.payment
	DROP CONSTRAINT payment_debit_check,
	DROP CONSTRAINT payment_credit_check,
	ADD CONSTRAINT payment_debit_check CHECK (debit >= 0 AND debit <> 'NaN'),
	ADD CONSTRAINT payment_credit_check CHECK (credit >= 0 AND credit <> 'NaN');
ALTER TABLE popug.balance
	ADD CONSTRAINT balance_amount_check CHECK (amount BETWEEN -9999999999.99 AND 9999999999.99);
ALTER TABLE popug.payout
	DROP CONSTRAINT payout_amount_check,
	ADD CONSTRAINT payout_amount_check CHECK (amount > 0 AND amount <> 'NaN');
ALTER TABLE popug.billing_day
	ALTER COLUMN accounts_paid TYPE bigint,
	ALTER COLUMN accounts_paid SET DEFAULT 0,
	ALTER COLUMN total_paid TYPE numeric(30,2),
	ALTER COLUMN total_paid SET DEFAULT 0,
	ALTER COLUMN fees TYPE numeric(30,2),
	ALTER COLUMN rewards TYPE numeric(30,2),
	ALTER COLUMN payouts TYPE numeric(30,2);

-- Payment ids.  0.1 hashed the amount and the event's occurred_at too, so
-- a redelivered copy of an event with another timestamp or amount was
-- charged again.  0.2 hashes event_id, kind and account only; the payments
-- 0.1 wrote from events take the id 0.2 would give them, so that applying
-- one of those events again after the upgrade meets its payment and writes
-- nothing.  Where 0.1 already applied copies of one event more than once,
-- the first payment takes the new id and the others keep theirs: they are
-- money that was moved, and stay in the audit log.  Payout payments keep
-- their ids, which 0.2 computes as 0.1 did.  TransactionApplied events
-- written before the upgrade name the payments by their 0.1 ids: events are
-- history and are never rewritten.
UPDATE popug.payment p
   SET id = pg_catalog.md5(pg_catalog.concat_ws('|', p.event_id, p.kind, p.account_id))::uuid
  FROM (SELECT DISTINCT ON (event_id, kind, account_id) id
		  FROM popug.payment
		 WHERE kind <> 'payout' AND event_id IS NOT NULL
		 ORDER BY event_id, kind, account_id, applied_at, id) canonical
 WHERE p.id = canonical.id
   AND p.id <> pg_catalog.md5(pg_catalog.concat_ws('|', p.event_id, p.kind, p.account_id))::uuid;

COMMENT ON TABLE popug.payment IS 'Append-only audit log of money; id is md5(event_id|kind|account_id) of the source event, or md5(''payout''|account_id|day)';

-- Hardening (input and views): every view is a security barrier, so that a
-- function in a caller's WHERE clause sees only the rows the view lets
-- through (SPEC 9).
ALTER VIEW popug.accounts SET (security_barrier);
ALTER VIEW popug.consumer_lag SET (security_barrier);
ALTER VIEW popug.worker_status SET (security_barrier);
ALTER VIEW popug.my_tasks SET (security_barrier);
ALTER VIEW popug.tasks SET (security_barrier);
ALTER VIEW popug.my_balance SET (security_barrier);
ALTER VIEW popug.my_audit_log SET (security_barrier);
ALTER VIEW popug.audit_log SET (security_barrier);
ALTER VIEW popug.mails SET (security_barrier);

-- Event log retention (SPEC 11): popug.event becomes partitioned by id
-- range with a default partition holding every event 0.1 wrote, and
-- dead_letter keeps a copy of its events; see extension/sql/20_events.sql,
-- 40_accounting.sql and extension/retention.c, whose definitions these
-- repeat.  A table cannot become partitioned in place: 0.1's moves aside
-- (with its constraint, index and identity sequence), the new one takes
-- its rows and the sequence's position, and what was declared over its
-- row type (events_read, payment_apply, consumer_lag) is declared again.
ALTER TABLE popug.event RENAME TO event_0_1;
ALTER TABLE popug.event_0_1 RENAME CONSTRAINT event_pkey TO event_0_1_pkey;
ALTER INDEX popug.event_txid_idx RENAME TO event_0_1_txid_idx;
ALTER SEQUENCE popug.event_id_seq RENAME TO event_0_1_id_seq;

CREATE TABLE popug.event (
	id				bigint GENERATED ALWAYS AS IDENTITY,
	event_id		uuid NOT NULL DEFAULT pg_catalog.gen_random_uuid(),
	event_name		text NOT NULL,
	event_version	integer NOT NULL,
	producer		text NOT NULL,
	aggregate_id	uuid,
	occurred_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	payload			jsonb NOT NULL,
	txid			xid8 NOT NULL DEFAULT pg_catalog.pg_current_xact_id()
) PARTITION BY RANGE (id);
CREATE TABLE popug.event_default PARTITION OF popug.event (PRIMARY KEY (id)) DEFAULT;
CREATE INDEX event_default_txid_idx ON popug.event_default (txid);
COMMENT ON TABLE popug.event_default IS 'Events of ids no partition of popug.event covers';
COMMENT ON TABLE popug.event IS 'Transactional outbox: every change writes its events in its own transaction';
COMMENT ON COLUMN popug.event.txid IS 'Writing transaction; consumers cut batches by snapshot on it';
INSERT INTO popug.event OVERRIDING SYSTEM VALUE SELECT * FROM popug.event_0_1;
SELECT pg_catalog.setval('popug.event_id_seq', s.last_value, s.is_called) FROM popug.event_0_1_id_seq s;

DROP FUNCTION popug.events_read(text, integer);
DROP FUNCTION popug.payment_apply(popug.event_0_1);
DROP VIEW popug.consumer_lag;
-- out of the extension first, which also takes them off pg_dump's list
ALTER EXTENSION popug DROP SEQUENCE popug.event_0_1_id_seq;
ALTER EXTENSION popug DROP TABLE popug.event_0_1;
DROP TABLE popug.event_0_1;

CREATE FUNCTION popug.events_read(consumer text, max_events integer DEFAULT 1000)
RETURNS SETOF popug.event
AS 'MODULE_PATHNAME', 'popug_events_read'
LANGUAGE C CALLED ON NULL INPUT VOLATILE ROWS 1000 SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION popug.events_read(text, integer) IS
	'The consumer''s next batch; the same batch again until events_ack (admins; not popug''s own accounting and mailer)';

CREATE FUNCTION popug.payment_apply(e popug.event)
RETURNS boolean
AS 'MODULE_PATHNAME', 'popug_payment_apply'
LANGUAGE C CALLED ON NULL INPUT VOLATILE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION popug.payment_apply(popug.event) IS
	'Applies one event to money; true when it wrote a payment, false when already applied or not about money (admins, accountants)';

CREATE VIEW popug.consumer_lag WITH (security_barrier) AS
	SELECT c.name AS consumer,
		   (SELECT pg_catalog.count(*)
			  FROM popug.event e
			 WHERE e.txid OPERATOR(pg_catalog.>=) pg_catalog.pg_snapshot_xmin(c.snap_lo)
			   AND NOT pg_catalog.pg_visible_in_snapshot(e.txid, c.snap_lo)
			   AND (c.snap_hi IS NULL
					OR e.id OPERATOR(pg_catalog.>) c.last_id
					OR NOT pg_catalog.pg_visible_in_snapshot(e.txid, c.snap_hi))) AS pending
	  FROM popug.consumer c
	 WHERE popug.caller_role() OPERATOR(pg_catalog.=) 'admin'::popug.role
		OR pg_catalog.pg_has_role('pg_monitor', 'USAGE');
COMMENT ON VIEW popug.consumer_lag IS 'Events each consumer has not acknowledged yet (admins, pg_monitor)';
GRANT SELECT ON popug.consumer_lag TO PUBLIC;

SELECT pg_catalog.pg_extension_config_dump('popug.event', '');
SELECT pg_catalog.pg_extension_config_dump('popug.event_default', '');
SELECT pg_catalog.pg_extension_config_dump('popug.event_id_seq', '');

ALTER TABLE popug.dead_letter
	ADD COLUMN event_name text,
	ADD COLUMN event_version integer,
	ADD COLUMN producer text,
	ADD COLUMN aggregate_id uuid,
	ADD COLUMN occurred_at timestamptz,
	ADD COLUMN payload jsonb;
UPDATE popug.dead_letter d
   SET event_name = e.event_name, event_version = e.event_version, producer = e.producer,
	   aggregate_id = e.aggregate_id, occurred_at = e.occurred_at, payload = e.payload
  FROM popug.event e WHERE e.id = d.event;
ALTER TABLE popug.dead_letter
	ALTER COLUMN event_name SET NOT NULL,
	ALTER COLUMN event_version SET NOT NULL,
	ALTER COLUMN producer SET NOT NULL,
	ALTER COLUMN occurred_at SET NOT NULL,
	ALTER COLUMN payload SET NOT NULL;

CREATE FUNCTION popug.event_maintenance(OUT created integer, OUT dropped integer)
RETURNS record
AS 'MODULE_PATHNAME', 'popug_event_maintenance'
LANGUAGE C STRICT VOLATILE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION popug.event_maintenance() IS
	'Makes the next partition of popug.event and drops those past popug.event_retention that every consumer has acknowledged, as the scheduler worker does every minute; returns how many (admins)';

-- Events out by logical replication: the publication popug_events, as
-- extension/sql/20_events.sql creates it (see there).
-- No warning, to the client or the log, where wal_level is below logical.
SET client_min_messages = error;
SET log_min_messages = error;
DROP PUBLICATION IF EXISTS popug_events;
CREATE PUBLICATION popug_events FOR TABLE popug.event
	WITH (publish = 'insert', publish_via_partition_root = true);
-- pg_dump leaves out what belongs to an extension, which CREATE EXTENSION
-- makes again.  ALTER EXTENSION ADD knows no publications, so the
-- membership is recorded as PostgreSQL records it for the objects it
-- knows: pg_dump then leaves the publication out (a restore makes it with
-- the extension instead of clashing with it), and DROP EXTENSION drops it.
INSERT INTO pg_catalog.pg_depend (classid, objid, objsubid, refclassid, refobjid, refobjsubid, deptype)
SELECT 'pg_catalog.pg_publication'::pg_catalog.regclass, p.oid, 0,
	   'pg_catalog.pg_extension'::pg_catalog.regclass, e.oid, 0, 'e'
  FROM pg_catalog.pg_publication p, pg_catalog.pg_extension e
 WHERE p.pubname OPERATOR(pg_catalog.=) 'popug_events' AND e.extname OPERATOR(pg_catalog.=) 'popug';
RESET log_min_messages;
SET client_min_messages = warning;

-- Metrics (monitoring): worker_status counts each worker's failed passes,
-- consumer_lag tells when the oldest pending event happened and how many
-- dead letters wait, and popug.metrics holds the other gauges.  See
-- extension/sql/20_events.sql, 60_mail.sql and 80_metrics.sql, whose
-- definitions these repeat.
DROP VIEW popug.worker_status;
DROP FUNCTION popug.worker_status_rows();
CREATE FUNCTION popug.worker_status_rows(OUT worker text, OUT pid integer, OUT state text,
										 OUT last_run timestamptz, OUT processed bigint,
										 OUT last_error text, OUT errors bigint)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'popug_worker_status'
LANGUAGE C STRICT VOLATILE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION popug.worker_status_rows() IS
	'Background workers as seen in shared memory (rows for admins, superusers and pg_monitor only)';

CREATE VIEW popug.worker_status WITH (security_barrier) AS
	SELECT w.* FROM popug.worker_status_rows() w;
COMMENT ON VIEW popug.worker_status IS
	'popug background workers: pid, state, last run, work done, last error, failed passes (admins, pg_monitor)';
GRANT SELECT ON popug.worker_status TO PUBLIC;

CREATE OR REPLACE VIEW popug.consumer_lag WITH (security_barrier) AS
	SELECT c.name AS consumer, p.pending, p.oldest_pending_at,
		   (SELECT pg_catalog.count(*)
			  FROM popug.dead_letter d
			 WHERE d.consumer OPERATOR(pg_catalog.=) c.name AND d.retried_at IS NULL) AS dead_letters
	  FROM popug.consumer c,
		   LATERAL (SELECT pg_catalog.count(*) AS pending, pg_catalog.min(e.occurred_at) AS oldest_pending_at
					  FROM popug.event e
					 WHERE e.txid OPERATOR(pg_catalog.>=) pg_catalog.pg_snapshot_xmin(c.snap_lo)
					   AND NOT pg_catalog.pg_visible_in_snapshot(e.txid, c.snap_lo)
					   AND (c.snap_hi IS NULL
							OR e.id OPERATOR(pg_catalog.>) c.last_id
							OR NOT pg_catalog.pg_visible_in_snapshot(e.txid, c.snap_hi))) p
	 WHERE popug.caller_role() OPERATOR(pg_catalog.=) 'admin'::popug.role
		OR pg_catalog.pg_has_role('pg_monitor', 'USAGE');
COMMENT ON VIEW popug.consumer_lag IS
	'Events each consumer has not acknowledged yet, when the oldest of them happened, and its dead letters not replayed (admins, pg_monitor)';

CREATE INDEX mail_failed_idx ON popug.mail (id) WHERE status = 'failed';	-- counted by popug.metrics

CREATE VIEW popug.metrics WITH (security_barrier) AS
	SELECT (SELECT COALESCE(pg_catalog.max(e.id), (SELECT s.last_value FROM popug.event_id_seq s WHERE s.is_called), 0)
			  FROM popug.event e) AS events_total,
		   (SELECT pg_catalog.count(*) FROM popug.mail m
			 WHERE m.status OPERATOR(pg_catalog.=) 'pending') AS mails_pending,
		   (SELECT pg_catalog.count(*) FROM popug.mail m
			 WHERE m.status OPERATOR(pg_catalog.=) 'failed') AS mails_failed,
		   (SELECT COALESCE(EXTRACT(epoch FROM pg_catalog.now() OPERATOR(pg_catalog.-) pg_catalog.min(m.created_at)), 0)
			  FROM popug.mail m
			 WHERE m.status OPERATOR(pg_catalog.=) 'pending') AS mail_oldest_pending_age_seconds,
		   GREATEST(d.today OPERATOR(pg_catalog.-) d.first_open OPERATOR(pg_catalog.+) 1, 0) AS billing_days_open,
		   GREATEST(EXTRACT(epoch FROM pg_catalog.now() OPERATOR(pg_catalog.-)
							pg_catalog.timezone(d.tz, d.first_open::timestamp)), 0) AS billing_oldest_open_day_age_seconds,
		   (SELECT pg_catalog.count(*) FROM popug.task t
			 WHERE t.status OPERATOR(pg_catalog.=) 'open') AS tasks_open,
		   (SELECT pg_catalog.count(*) FROM popug.balance b
			 WHERE b.amount OPERATOR(pg_catalog.<) 0) AS accounts_in_debt
	  FROM (SELECT z.tz, pg_catalog.timezone(z.tz, pg_catalog.now())::date AS today,
				   COALESCE((SELECT pg_catalog.max(b.day) OPERATOR(pg_catalog.+) 1 FROM popug.billing_day b
							  WHERE b.closed_at IS NOT NULL),
							(SELECT pg_catalog.min(p.billing_day) FROM popug.payment p)) AS first_open
			  FROM (SELECT COALESCE(pg_catalog.current_setting('popug.timezone', true), 'UTC') AS tz) z) d
	 WHERE popug.caller_role() OPERATOR(pg_catalog.=) 'admin'::popug.role
		OR pg_catalog.pg_has_role('pg_monitor', 'USAGE');
COMMENT ON VIEW popug.metrics IS
	'popug''s gauges for monitoring, one row (admins, pg_monitor): events, mail, billing days not closed, open tasks, accounts in debt';
GRANT SELECT ON popug.metrics TO PUBLIC;

-- Balances with logins, for the psql dashboard's debtors (see
-- extension/sql/40_accounting.sql, whose definition this repeats).
CREATE VIEW popug.balances WITH (security_barrier) AS
	SELECT a.id AS account_id, a.login, a.full_name, a.role, a.active,
		   COALESCE(b.amount, 0::numeric(14,2)) AS amount, b.updated_at
	  FROM popug.account a LEFT JOIN popug.balance b ON b.account_id OPERATOR(pg_catalog.=) a.id
	 WHERE (SELECT popug.caller_role()) OPERATOR(pg_catalog.=) ANY ('{admin,accountant}'::popug.role[]);
COMMENT ON VIEW popug.balances IS 'Every account''s balance, with its login (admins and accountants; no rows for anyone else)';
GRANT SELECT ON popug.balances TO PUBLIC;

-- Admin chores (issue 19): dead letters and failed mail an admin can see
-- and act on, accounts that come back, logins beside account ids, the
-- day a task counts on in statistics, stats_day()'s default.  See
-- extension/sql/10_identity.sql, 20_events.sql, 30_tasks.sql,
-- 40_accounting.sql, 60_mail.sql and 70_stats.sql, whose definitions
-- these repeat.
CREATE FUNCTION popug.account_reactivate(account_id uuid)
RETURNS void
AS 'MODULE_PATHNAME', 'popug_account_reactivate'
LANGUAGE C CALLED ON NULL INPUT VOLATILE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION popug.account_reactivate(uuid) IS
	'Reactivates a deactivated account: it can act again and, as a worker, get tasks (admins)';

CREATE VIEW popug.dead_letters WITH (security_barrier) AS
	SELECT d.consumer, d.event_id, d.event_name, d.event_version, d.producer, d.aggregate_id,
		   d.occurred_at, d.payload, d.error, d.failed_at, d.retried_at
	  FROM popug.dead_letter d
	 WHERE (SELECT popug.caller_role()) OPERATOR(pg_catalog.=) 'admin'::popug.role;
COMMENT ON VIEW popug.dead_letters IS
	'Events popug''s own consumers set aside, with the event and the error; retried_at is set once dead_letter_retry replayed it (admins; no rows for anyone else)';
GRANT SELECT ON popug.dead_letters TO PUBLIC;

CREATE OR REPLACE VIEW popug.tasks WITH (security_barrier) AS
	SELECT t.id, t.jira_id, t.title, t.description, t.status, t.assign_fee,
		   t.complete_reward, t.assignee_id, t.created_by, t.created_at, t.completed_at,
		   assignee.login AS assignee_login, creator.login AS created_by_login
	  FROM popug.task t
	  LEFT JOIN popug.account assignee ON assignee.id OPERATOR(pg_catalog.=) t.assignee_id
	  LEFT JOIN popug.account creator ON creator.id OPERATOR(pg_catalog.=) t.created_by
	 WHERE (SELECT popug.caller_role()) OPERATOR(pg_catalog.=) ANY ('{admin,manager}'::popug.role[]);

CREATE OR REPLACE VIEW popug.my_balance WITH (security_barrier) AS
	SELECT a.id AS account_id, COALESCE(b.amount, 0::numeric(14,2)) AS amount, b.updated_at, a.login
	  FROM popug.account a LEFT JOIN popug.balance b ON b.account_id OPERATOR(pg_catalog.=) a.id
	 WHERE a.id OPERATOR(pg_catalog.=) (SELECT popug.caller_account_id());

CREATE OR REPLACE VIEW popug.mails WITH (security_barrier) AS
	SELECT m.id, m.account_id, m.to_addr, m.subject, m.status, m.attempts, m.next_attempt_at,
		   m.last_error, m.created_at, m.sent_at, a.login
	  FROM popug.mail m LEFT JOIN popug.account a ON a.id OPERATOR(pg_catalog.=) m.account_id
	 WHERE (SELECT popug.caller_role()) OPERATOR(pg_catalog.=) 'admin'::popug.role
		OR m.account_id OPERATOR(pg_catalog.=) (SELECT popug.caller_account_id());

CREATE FUNCTION popug.mail_resend(mail_id bigint)
RETURNS void
AS 'MODULE_PATHNAME', 'popug_mail_resend'
LANGUAGE C CALLED ON NULL INPUT VOLATILE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION popug.mail_resend(bigint) IS
	'Puts a failed mail back to pending with its attempts reset, to be sent again (admins)';

-- A task counts in statistics on the billing day accounting learned of it,
-- as its money does, so that a paid-out day's tasks_created is final.
-- Tasks 0.1 recorded take the billing day of their first assignment fee,
-- or else the day they were created in popug.timezone.
ALTER TABLE popug.ledger_task ADD COLUMN billing_day date;
UPDATE popug.ledger_task t
   SET billing_day = COALESCE(
		(SELECT pg_catalog.min(p.billing_day) FROM popug.payment p
		  WHERE p.task_id OPERATOR(pg_catalog.=) t.task_id AND p.kind OPERATOR(pg_catalog.=) 'assign_fee'),
		(t.created_at AT TIME ZONE
		 COALESCE(pg_catalog.current_setting('popug.timezone', true), 'UTC'))::date);
ALTER TABLE popug.ledger_task ALTER COLUMN billing_day SET NOT NULL;
DROP INDEX popug.ledger_task_created_idx;
CREATE INDEX ledger_task_billing_day_idx ON popug.ledger_task (billing_day);

CREATE OR REPLACE FUNCTION popug.stats_day(day date DEFAULT NULL)
RETURNS TABLE (day date, management_earnings numeric, negative_workers bigint,
			   fees_charged numeric, rewards_paid numeric, payouts numeric,
			   tasks_created bigint, tasks_completed bigint)
AS 'MODULE_PATHNAME', 'popug_stats_day'
LANGUAGE C CALLED ON NULL INPUT STABLE ROWS 1 SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION popug.stats_day(date) IS
	'The statistics of one billing day (by default or NULL: today in popug.timezone) (admins, accountants)';

-- C module structure: worker_status_rows() calls the C function named
-- after it (the name 0.1 used stays in the library for 0.1's SQL).
CREATE OR REPLACE FUNCTION popug.worker_status_rows(OUT worker text, OUT pid integer, OUT state text,
										 OUT last_run timestamptz, OUT processed bigint,
										 OUT last_error text, OUT errors bigint)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'popug_worker_status_rows'
LANGUAGE C STRICT VOLATILE SET search_path = pg_catalog, pg_temp;

-- Today in popug.timezone has one definition, in C (extension/day.c):
-- the open billing day is computed there too.
CREATE OR REPLACE FUNCTION popug.billing_day_open()
RETURNS date
AS 'MODULE_PATHNAME', 'popug_billing_day_open'
LANGUAGE C STABLE
SET search_path = pg_catalog, pg_temp;

-- popug's advisory locks are taken in C (extension/lock.c), where the C
-- callers take them too: one mapping of a key to its lock, and no SQL
-- function planned for every lock taken.
CREATE OR REPLACE FUNCTION popug.xact_lock(key integer, exclusive boolean)
RETURNS void
AS 'MODULE_PATHNAME', 'popug_xact_lock_sql'
LANGUAGE C CALLED ON NULL INPUT VOLATILE SET search_path = pg_catalog, pg_temp;

-- A worker's open tasks are found without walking its done ones: with
-- task_assignee_idx on assignee_id alone, popug.my_tasks WHERE status =
-- 'open' read every task the worker ever had (a sequential scan of
-- popug.task once the planner gave up on the index), so it slowed as
-- history grew.
DROP INDEX popug.task_assignee_idx;
CREATE INDEX task_assignee_idx ON popug.task (assignee_id, status);
