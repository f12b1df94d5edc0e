-- popug install script, generated from extension/sql/*.sql in name order.
\echo Use "CREATE EXTENSION popug" to load this file. \quit

-- Everything lives in schema popug, a member of the extension.  Every function and view is granted to PUBLIC on purpose:
-- the functions decide, from the caller's account, what each caller may do,
-- and the views filter rows by the caller's role.  Tables are never granted:
-- they are written only by popug's C code, which runs table access as the
-- extension owner after it has captured the caller's identity.
CREATE SCHEMA popug;
COMMENT ON SCHEMA popug IS 'popug: task tracker with honest accounting';
GRANT USAGE ON SCHEMA popug TO PUBLIC;

CREATE TYPE popug.role AS ENUM ('admin', 'manager', 'accountant', 'worker');
COMMENT ON TYPE popug.role IS 'What an account may do: admin, manager, accountant or worker';

-- popug's locks (advisory, transaction-scoped; no row lock, page write or
-- WAL), taken shared or exclusive:
--   1  billing: shared to apply payments, exclusive to start a day's payout
--   2  payout runs: exclusive for each step, so runs never overlap
--   3  worker pool: shared to assign tasks, exclusive to take a worker out
CREATE FUNCTION popug.xact_lock(key integer, exclusive boolean)
RETURNS void
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT CASE WHEN exclusive
		THEN pg_catalog.pg_advisory_xact_lock(1886351207, key)
		ELSE pg_catalog.pg_advisory_xact_lock_shared(1886351207, key) END;
$$;
REVOKE ALL ON FUNCTION popug.xact_lock(integer, boolean) FROM PUBLIC;
COMMENT ON FUNCTION popug.xact_lock(integer, boolean) IS
	'Takes one of popug''s transaction-level locks (1 billing, 2 payout runs, 3 worker pool), shared or exclusive';
-- Identity (SPEC 1): accounts map onto PostgreSQL roles by login.

CREATE TABLE popug.account (
	id			uuid PRIMARY KEY DEFAULT pg_catalog.gen_random_uuid(),
	login		name NOT NULL,
	email		text NOT NULL,
	role		popug.role NOT NULL,
	full_name	text,
	active		boolean NOT NULL DEFAULT true,
	created_at	timestamptz NOT NULL DEFAULT pg_catalog.now(),
	updated_at	timestamptz NOT NULL DEFAULT pg_catalog.now(),
	CONSTRAINT account_login_key UNIQUE (login)
);
COMMENT ON TABLE popug.account IS 'popug accounts; login is the PostgreSQL role that acts as the account';

-- Active workers in a dense array: slot 1..n of worker_pool.n.  Picking a
-- random worker is one random slot number and one primary-key lookup, the
-- same cost for 10 or 1,000,000 workers.  Account changes keep it dense by
-- moving the last slot into a freed one, under the worker_pool row lock.
CREATE TABLE popug.worker_pool (
	one			boolean PRIMARY KEY DEFAULT true CHECK (one),
	n			integer NOT NULL DEFAULT 0 CHECK (n >= 0)
);
INSERT INTO popug.worker_pool DEFAULT VALUES;

CREATE TABLE popug.worker_slot (
	slot		integer PRIMARY KEY CHECK (slot > 0),
	account_id	uuid NOT NULL UNIQUE REFERENCES popug.account (id)
);
COMMENT ON TABLE popug.worker_slot IS 'Active workers, densely numbered from 1, for O(1) uniform random assignment';


CREATE FUNCTION popug.account_create(login name, email text, role popug.role,
									 full_name text DEFAULT NULL)
RETURNS uuid
AS 'MODULE_PATHNAME', 'popug_account_create'
LANGUAGE C CALLED ON NULL INPUT VOLATILE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION popug.account_create(name, text, popug.role, text) IS
	'Creates an account for the PostgreSQL role named login (admins; a superuser bootstraps the first admin)';

CREATE FUNCTION popug.account_set_role(account_id uuid, role popug.role)
RETURNS void
AS 'MODULE_PATHNAME', 'popug_account_set_role'
LANGUAGE C CALLED ON NULL INPUT VOLATILE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION popug.account_set_role(uuid, popug.role) IS 'Changes an account''s role (admins)';

CREATE FUNCTION popug.account_deactivate(account_id uuid)
RETURNS void
AS 'MODULE_PATHNAME', 'popug_account_deactivate'
LANGUAGE C CALLED ON NULL INPUT VOLATILE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION popug.account_deactivate(uuid) IS 'Deactivates an account: it can no longer act or get tasks (admins)';

CREATE FUNCTION popug.whoami()
RETURNS popug.account
AS 'MODULE_PATHNAME', 'popug_whoami'
LANGUAGE C STRICT STABLE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION popug.whoami() IS 'The calling role''s active account';

-- Used by the views: the caller's account id and role, NULL without an
-- active account.  Not SECURITY DEFINER: current_user is the caller here.
CREATE FUNCTION popug.caller_account_id()
RETURNS uuid
AS 'MODULE_PATHNAME', 'popug_caller_account_id'
LANGUAGE C STABLE PARALLEL RESTRICTED SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION popug.caller_account_id() IS 'The calling role''s active account id, or NULL';

CREATE FUNCTION popug.caller_role()
RETURNS popug.role
AS 'MODULE_PATHNAME', 'popug_caller_role'
LANGUAGE C STABLE PARALLEL RESTRICTED SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION popug.caller_role() IS 'The calling role''s popug role, or NULL without an active account';

CREATE VIEW popug.accounts AS
	SELECT a.id, a.login, a.email, a.role, a.full_name, a.active, a.created_at
	  FROM popug.account a
	 WHERE (SELECT popug.caller_role()) OPERATOR(pg_catalog.<>) 'worker'::popug.role
		OR a.id OPERATOR(pg_catalog.=) (SELECT popug.caller_account_id());
COMMENT ON VIEW popug.accounts IS
	'Accounts: all for admins, managers and accountants (who assign and pay them); one''s own for a worker';
GRANT SELECT ON popug.accounts TO PUBLIC;
-- Events (SPEC 3): the transactional outbox and its durable consumers.
--
-- Each event row records the id of the transaction that wrote it (txid).
-- A consumer's position is a snapshot: everything visible in snap_lo is
-- consumed.  Reading opens a window up to a newer snapshot snap_hi and hands
-- out the events visible in snap_hi but not in snap_lo in id order, in
-- batches, so an event whose transaction commits after a later-numbered one
-- is still delivered (the skytools PgQ idea).  No row of this table is ever
-- locked or updated.

CREATE TABLE popug.event (
	id				bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	event_id		uuid NOT NULL DEFAULT pg_catalog.gen_random_uuid(),
	event_name		text NOT NULL,
	event_version	integer NOT NULL,
	producer		text NOT NULL,
	aggregate_id	uuid,
	occurred_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	payload			jsonb NOT NULL,
	txid			xid8 NOT NULL DEFAULT pg_catalog.pg_current_xact_id()
);
CREATE INDEX event_txid_idx ON popug.event (txid);
COMMENT ON TABLE popug.event IS 'Transactional outbox: every change writes its events in its own transaction';
COMMENT ON COLUMN popug.event.txid IS 'Writing transaction; consumers cut batches by snapshot on it';

CREATE TABLE popug.consumer (
	name			text PRIMARY KEY,
	snap_lo			pg_snapshot NOT NULL,
	snap_hi			pg_snapshot,
	last_id			bigint,
	win_max_id		bigint,
	batch_last_id	bigint,
	batch_size		integer,
	created_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	acked_at		timestamptz
);
COMMENT ON TABLE popug.consumer IS 'Durable event consumers and their positions';

-- Events a consumer could not process; the stream moves on without them.
CREATE TABLE popug.dead_letter (
	consumer		text NOT NULL REFERENCES popug.consumer (name) ON DELETE CASCADE,
	event_id		uuid NOT NULL,
	event			bigint NOT NULL,
	error			text NOT NULL,
	failed_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	retried_at		timestamptz,
	PRIMARY KEY (consumer, event_id)
);
COMMENT ON TABLE popug.dead_letter IS 'Events popug''s own consumers could not process';

CREATE FUNCTION popug.consumer_create(name text, from_start boolean DEFAULT false)
RETURNS void
AS 'MODULE_PATHNAME', 'popug_consumer_create'
LANGUAGE C STRICT VOLATILE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION popug.consumer_create(text, boolean) IS
	'Registers a durable consumer at the current end of the stream, or at its start';

CREATE FUNCTION popug.events_read(consumer text, max_events integer DEFAULT 1000)
RETURNS SETOF popug.event
AS 'MODULE_PATHNAME', 'popug_events_read'
LANGUAGE C STRICT VOLATILE ROWS 1000 SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION popug.events_read(text, integer) IS
	'The consumer''s next batch; the same batch again until events_ack';

CREATE FUNCTION popug.events_ack(consumer text)
RETURNS bigint
AS 'MODULE_PATHNAME', 'popug_events_ack'
LANGUAGE C STRICT VOLATILE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION popug.events_ack(text) IS 'Acknowledges the batch last read; returns its size';

-- jsonb_build_object() for event payloads built row by row in one
-- statement: argument types are resolved once per statement, not per value.
CREATE FUNCTION popug.payload(VARIADIC "any")
RETURNS jsonb
AS 'MODULE_PATHNAME', 'popug_payload'
LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION popug.payload("any") IS
	'jsonb_build_object() of scalar key/value pairs, as event payloads use it';

-- The append path other C code uses, callable from SQL for benchmarks and
-- imports by the extension owner only: nobody else may forge events.
CREATE FUNCTION popug.event_append(event_name text, event_version integer,
								   producer text, aggregate_id uuid, payload jsonb)
RETURNS bigint
AS 'MODULE_PATHNAME', 'popug_event_append_sql'
LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION popug.event_append(text, integer, text, uuid, jsonb) FROM PUBLIC;
COMMENT ON FUNCTION popug.event_append(text, integer, text, uuid, jsonb) IS
	'Appends one event in the current transaction (extension owner only)';

CREATE VIEW popug.consumer_lag AS
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

CREATE FUNCTION popug.worker_status_rows(OUT worker text, OUT pid integer, OUT state text,
										 OUT last_run timestamptz, OUT processed bigint,
										 OUT last_error text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'popug_worker_status'
LANGUAGE C STRICT VOLATILE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION popug.worker_status_rows() IS
	'Background workers as seen in shared memory (rows for admins, superusers and pg_monitor only)';

CREATE VIEW popug.worker_status AS
	SELECT w.* FROM popug.worker_status_rows() w;
COMMENT ON VIEW popug.worker_status IS 'popug background workers: pid, state, last run, work done, last error (admins, pg_monitor)';
GRANT SELECT ON popug.worker_status TO PUBLIC;

CREATE FUNCTION popug.dead_letter_retry(event_id uuid)
RETURNS integer
AS 'MODULE_PATHNAME', 'popug_dead_letter_retry'
LANGUAGE C CALLED ON NULL INPUT VOLATILE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION popug.dead_letter_retry(uuid) IS
	'Replays a dead-lettered event to the consumers that set it aside, once its cause is fixed; returns how many (admins)';
-- Task tracker (SPEC 2).

CREATE TABLE popug.task (
	id				uuid PRIMARY KEY,
	title			text NOT NULL,
	description		text NOT NULL DEFAULT '',
	jira_id			text,
	assign_fee		numeric(12,2) NOT NULL CHECK (assign_fee BETWEEN 10.00 AND 20.00),
	complete_reward	numeric(12,2) NOT NULL CHECK (complete_reward BETWEEN 20.00 AND 40.00),
	status			text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'done')),
	assignee_id		uuid NOT NULL,	-- from popug.worker_slot (see below)
	created_by		uuid NOT NULL REFERENCES popug.account (id),
	created_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	completed_at	timestamptz
);
CREATE INDEX task_assignee_idx ON popug.task (assignee_id);
CREATE INDEX task_open_idx ON popug.task (id) WHERE status = 'open';
COMMENT ON TABLE popug.task IS 'Tasks; prices are fixed at creation';
-- assignee_id has no foreign key on purpose: assignees are only ever taken
-- from popug.worker_slot, whose own foreign key vouches for them, and
-- accounts are never deleted.  A foreign key would lock a random account
-- row (a page write and WAL) on every assignment, making task_create
-- slower with more workers and a shuffle of a million tasks lock a million
-- rows.

CREATE FUNCTION popug.task_create(title text, description text DEFAULT '', jira_id text DEFAULT NULL)
RETURNS uuid
AS 'MODULE_PATHNAME', 'popug_task_create'
LANGUAGE C CALLED ON NULL INPUT VOLATILE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION popug.task_create(text, text, text) IS
	'Creates an open task for a uniformly random active worker; prices are drawn once (any active account)';

CREATE FUNCTION popug.task_complete(task_id uuid)
RETURNS void
AS 'MODULE_PATHNAME', 'popug_task_complete'
LANGUAGE C CALLED ON NULL INPUT VOLATILE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION popug.task_complete(uuid) IS 'Marks a task done (its current assignee only)';

CREATE FUNCTION popug.tasks_shuffle()
RETURNS bigint
AS 'MODULE_PATHNAME', 'popug_tasks_shuffle'
LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION popug.tasks_shuffle() IS
	'Reassigns every open task to a uniformly random active worker; returns how many (admins, managers)';

CREATE VIEW popug.my_tasks AS
	SELECT t.id, t.jira_id, t.title, t.description, t.status, t.assign_fee,
		   t.complete_reward, t.created_at, t.completed_at
	  FROM popug.task t
	 WHERE t.assignee_id OPERATOR(pg_catalog.=) (SELECT popug.caller_account_id());
COMMENT ON VIEW popug.my_tasks IS 'The caller''s tasks, open and done';
GRANT SELECT ON popug.my_tasks TO PUBLIC;

CREATE VIEW popug.tasks AS
	SELECT t.id, t.jira_id, t.title, t.description, t.status, t.assign_fee,
		   t.complete_reward, t.assignee_id, t.created_by, t.created_at, t.completed_at
	  FROM popug.task t
	 WHERE (SELECT popug.caller_role()) OPERATOR(pg_catalog.=) ANY ('{admin,manager}'::popug.role[]);
COMMENT ON VIEW popug.tasks IS 'Every task (admins and managers; no rows for anyone else)';
GRANT SELECT ON popug.tasks TO PUBLIC;
-- Accounting (SPEC 4): the append-only audit log, balances, billing days.
--
-- Billing days.  A payment counts on popug.billing_day_open(): today in
-- popug.timezone, or the day after the last day whose payout has started,
-- if that is later.  A payout of day D inserts D into popug.billing_day
-- (closed_at NULL while it runs) under the exclusive billing lock; payment
-- application computes its day under the shared billing lock (both via
-- popug.xact_lock(1, ...)).  So once the payout of D has started, every payment
-- applied counts on D + 1 or later, and none in flight can still land on D.

CREATE TABLE popug.payment (
	id				uuid PRIMARY KEY,
	account_id		uuid NOT NULL,	-- checked by its writers, see below
	task_id			uuid,
	kind			text NOT NULL CHECK (kind IN ('assign_fee', 'complete_reward', 'payout')),
	debit			numeric(12,2) NOT NULL DEFAULT 0 CHECK (debit >= 0),
	credit			numeric(12,2) NOT NULL DEFAULT 0 CHECK (credit >= 0),
	description		text NOT NULL,
	occurred_at		timestamptz NOT NULL,
	applied_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	billing_day		date NOT NULL,
	event_id		uuid
);
CREATE INDEX payment_account_day_idx ON popug.payment (account_id, billing_day);
CREATE INDEX payment_day_idx ON popug.payment (billing_day);
COMMENT ON TABLE popug.payment IS 'Append-only audit log of money; id is a hash of the source event';
-- account_id has no foreign key: a per-row RI check (a row lock on the
-- account) cost more than the payment itself.  Every payment moves its
-- account's balance in the same statement, and the balance does have its
-- foreign key: a batch naming an unknown account fails, and accounting
-- sets the event aside (see extension/accounting.c); the payout pays only
-- accounts that have a balance row.  Accounts are never deleted.

CREATE TABLE popug.balance (
	account_id		uuid PRIMARY KEY REFERENCES popug.account (id),
	amount			numeric(14,2) NOT NULL DEFAULT 0,
	updated_at		timestamptz NOT NULL DEFAULT pg_catalog.now()
) WITH (fillfactor = 70);
COMMENT ON TABLE popug.balance IS 'Each account''s balance: the sum of credit - debit of its payments';

-- Tasks as accounting knows them, from TaskCreated v1 and v2 events.
CREATE TABLE popug.ledger_task (
	task_id			uuid PRIMARY KEY,
	jira_id			text,
	title			text NOT NULL,
	complete_reward	numeric(12,2),
	created_at		timestamptz NOT NULL
);
COMMENT ON TABLE popug.ledger_task IS 'Accounting''s projection of tasks (titles for the audit log)';

CREATE TABLE popug.billing_day (
	day				date PRIMARY KEY,
	closed_at		timestamptz,
	accounts_paid	integer NOT NULL DEFAULT 0,
	total_paid		numeric(14,2) NOT NULL DEFAULT 0,
	paid_upto		uuid,			-- the last account paid, while the payout runs
	-- the day's statistics (SPEC 7), final once its payout has started:
	negative_workers bigint,		-- workers in debt at the end of the day (as batches walk)
	fees			numeric(14,2),	-- assignment fees charged (at the close)
	rewards			numeric(14,2),	-- completion rewards credited
	payouts			numeric(14,2),	-- paid out
	completed		bigint			-- tasks completed
);
COMMENT ON TABLE popug.billing_day IS 'Days whose payout has started; closed_at is set when every account is done';

CREATE TABLE popug.payout (
	account_id		uuid NOT NULL,	-- an account with a balance row, see below
	billing_day		date NOT NULL,
	amount			numeric(14,2) NOT NULL CHECK (amount > 0),
	paid_at			timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (account_id, billing_day)
);
COMMENT ON TABLE popug.payout IS 'One row per account paid per day: a rerun skips who was paid';
-- No foreign key on account_id either: the payout pays only accounts that
-- have a balance row, whose foreign key vouches for them (a per-row RI
-- check was a tenth of the payout's time).


-- The billing day a payment applied now counts on (see the top of this file).
CREATE FUNCTION popug.billing_day_open()
RETURNS date
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT GREATEST(
		(pg_catalog.now() AT TIME ZONE
		 COALESCE(pg_catalog.current_setting('popug.timezone', true), 'UTC'))::date,
		(SELECT max(day) OPERATOR(pg_catalog.+) 1 FROM popug.billing_day));
$$;
REVOKE ALL ON FUNCTION popug.billing_day_open() FROM PUBLIC;
COMMENT ON FUNCTION popug.billing_day_open() IS
	'The billing day a payment applied now counts on: today in popug.timezone, or the day after the last paid-out day';

CREATE FUNCTION popug.payment_apply(e popug.event)
RETURNS boolean
AS 'MODULE_PATHNAME', 'popug_payment_apply'
LANGUAGE C CALLED ON NULL INPUT VOLATILE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION popug.payment_apply(popug.event) IS
	'Applies one event to money; true when it wrote a payment, false when already applied or not about money (admins, accountants)';

CREATE FUNCTION popug.payments_apply(max_events integer DEFAULT 10000)
RETURNS bigint
AS 'MODULE_PATHNAME', 'popug_payments_apply'
LANGUAGE C CALLED ON NULL INPUT VOLATILE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION popug.payments_apply(integer) IS
	'Drains the accounting consumer as the accounting worker does; returns the payments written (admins, accountants)';

CREATE VIEW popug.my_balance AS
	SELECT a.id AS account_id, COALESCE(b.amount, 0::numeric(14,2)) AS amount, b.updated_at
	  FROM popug.account a LEFT JOIN popug.balance b ON b.account_id OPERATOR(pg_catalog.=) a.id
	 WHERE a.id OPERATOR(pg_catalog.=) (SELECT popug.caller_account_id());
COMMENT ON VIEW popug.my_balance IS 'The caller''s balance';
GRANT SELECT ON popug.my_balance TO PUBLIC;

CREATE VIEW popug.my_audit_log AS
	SELECT p.id, p.applied_at, p.billing_day, p.kind, p.debit, p.credit, p.description,
		   p.task_id, t.jira_id, t.title AS task_title, p.occurred_at
	  FROM popug.payment p LEFT JOIN popug.ledger_task t ON t.task_id OPERATOR(pg_catalog.=) p.task_id
	 WHERE p.account_id OPERATOR(pg_catalog.=) (SELECT popug.caller_account_id())
	 ORDER BY p.applied_at DESC, p.occurred_at DESC;
COMMENT ON VIEW popug.my_audit_log IS 'The caller''s payments, newest first, with the task title';
GRANT SELECT ON popug.my_audit_log TO PUBLIC;

CREATE VIEW popug.audit_log AS
	SELECT p.id, p.applied_at, p.billing_day, p.account_id, a.login, p.kind, p.debit, p.credit,
		   p.description, p.task_id, t.jira_id, t.title AS task_title, p.occurred_at, p.event_id
	  FROM popug.payment p
	  JOIN popug.account a ON a.id OPERATOR(pg_catalog.=) p.account_id
	  LEFT JOIN popug.ledger_task t ON t.task_id OPERATOR(pg_catalog.=) p.task_id
	 WHERE (SELECT popug.caller_role()) OPERATOR(pg_catalog.=) ANY ('{admin,accountant}'::popug.role[]);
COMMENT ON VIEW popug.audit_log IS 'Every payment (admins and accountants; no rows for anyone else)';
GRANT SELECT ON popug.audit_log TO PUBLIC;
-- Daily payout (SPEC 5).  See extension/payout.c for the steps.

CREATE FUNCTION popug.payout_step(upto date, batch integer)
RETURNS boolean
AS 'MODULE_PATHNAME', 'popug_payout_step_sql'
LANGUAGE C CALLED ON NULL INPUT VOLATILE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION popug.payout_step(date, integer) IS
	'One transaction''s worth of closing every day up to upto (NULL: yesterday): starts a day, pays a batch, or closes a day; true when done (admins, accountants)';

-- No SET clause: it commits between steps, which a SET clause forbids.
-- It runs a single fully qualified statement, so the caller's search_path
-- does not matter.
CREATE PROCEDURE popug.payout_run(day date DEFAULT NULL)
AS 'MODULE_PATHNAME', 'popug_payout_run'
LANGUAGE C;
COMMENT ON PROCEDURE popug.payout_run(date) IS
	'Closes every open day up to day (NULL: yesterday in popug.timezone), committing every popug.payout_batch_size accounts (admins, accountants)';
-- Payout mail (SPEC 6).  See extension/mail.c.

CREATE TABLE popug.mail (
	id				bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	account_id		uuid NOT NULL,
	event_id		uuid NOT NULL UNIQUE,
	to_addr			text NOT NULL,
	subject			text NOT NULL,
	body			text NOT NULL,
	status			text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
	attempts		integer NOT NULL DEFAULT 0,
	next_attempt_at	timestamptz NOT NULL DEFAULT pg_catalog.now(),
	last_error		text,
	created_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	sent_at			timestamptz
);
CREATE INDEX mail_due_idx ON popug.mail (next_attempt_at) WHERE status = 'pending';
CREATE INDEX mail_sent_idx ON popug.mail (sent_at) WHERE status = 'sent';
COMMENT ON TABLE popug.mail IS 'Payout mail: one per PayoutMade event, sent by the mailer worker';

CREATE FUNCTION popug.mail_dispatch(max_mails integer DEFAULT 100)
RETURNS integer
AS 'MODULE_PATHNAME', 'popug_mail_dispatch'
LANGUAGE C CALLED ON NULL INPUT VOLATILE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION popug.mail_dispatch(integer) IS
	'Queues new payout mail and sends up to max_mails due mails now; returns how many were delivered (admins)';

CREATE VIEW popug.mails AS
	SELECT m.id, m.account_id, m.to_addr, m.subject, m.status, m.attempts, m.next_attempt_at,
		   m.last_error, m.created_at, m.sent_at
	  FROM popug.mail m
	 WHERE (SELECT popug.caller_role()) OPERATOR(pg_catalog.=) 'admin'::popug.role
		OR m.account_id OPERATOR(pg_catalog.=) (SELECT popug.caller_account_id());
COMMENT ON VIEW popug.mails IS 'Payout mail: all for admins, one''s own for everyone else';
GRANT SELECT ON popug.mails TO PUBLIC;
-- Statistics (SPEC 7).  Definitions at the top of extension/stats.c.

-- A closed day's figures are kept in popug.billing_day by its payout.
CREATE INDEX ledger_task_created_idx ON popug.ledger_task (created_at);

CREATE FUNCTION popug.stats_days(from_day date, to_day date)
RETURNS TABLE (day date, management_earnings numeric, negative_workers bigint,
			   fees_charged numeric, rewards_paid numeric, payouts numeric,
			   tasks_created bigint, tasks_completed bigint)
AS 'MODULE_PATHNAME', 'popug_stats_days'
LANGUAGE C CALLED ON NULL INPUT STABLE ROWS 30 SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION popug.stats_days(date, date) IS
	'One row of statistics per billing day in the range: earnings (fees - rewards), workers in debt at the day''s end, fees, rewards, payouts, tasks (admins, accountants)';

CREATE FUNCTION popug.stats_day(day date DEFAULT CURRENT_DATE)
RETURNS TABLE (day date, management_earnings numeric, negative_workers bigint,
			   fees_charged numeric, rewards_paid numeric, payouts numeric,
			   tasks_created bigint, tasks_completed bigint)
AS 'MODULE_PATHNAME', 'popug_stats_day'
LANGUAGE C CALLED ON NULL INPUT STABLE ROWS 1 SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION popug.stats_day(date) IS
	'The statistics of one billing day (NULL: today in popug.timezone) (admins, accountants)';

CREATE FUNCTION popug.stats_most_expensive_task(from_day date, to_day date)
RETURNS TABLE (task_id uuid, jira_id text, title text, complete_reward numeric, completed_at timestamptz)
AS 'MODULE_PATHNAME', 'popug_stats_most_expensive_task'
LANGUAGE C CALLED ON NULL INPUT STABLE ROWS 1 SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION popug.stats_most_expensive_task(date, date) IS
	'The task with the highest reward among those completed in the range (earliest on a tie) (admins)';
