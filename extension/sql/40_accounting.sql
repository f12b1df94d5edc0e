-- Accounting: the append-only audit log, balances, billing days.
--
-- Billing days.  A payment counts on popug.billing_day_open(): today in
-- popug.timezone, or the day after the last day whose payout has started,
-- if that is later.  A payout of day D inserts D into popug.billing_day
-- (closed_at NULL while it runs) under the exclusive billing lock; payment
-- application computes its day under the shared billing lock (both via
-- popug.xact_lock(1, ...), POPUG_LOCK_BILLING).  So once the payout of D has started, every payment
-- applied counts on D + 1 or later, and none in flight can still land on D.

-- Money never overflows.  A payment carries at most what
-- numeric(12,2) holds, and a balance is kept within the same bound, which
-- is what one payment can pay out: what an account is owed for a day is
-- its balance as that day ended, so a payout always fits in one payment.
-- An event that would take a balance beyond it fails and is set aside as
-- a dead letter instead.  Day totals (billing_day) are numeric(30,2): a
-- day pays each account at most that bound once, and no table holds the
-- 10^18 accounts or payments it would take to overflow.  NaN, which
-- compares above every number, is refused wherever money is stored;
-- numeric(p,s) already refuses Infinity.
CREATE TABLE popug.payment (
	id				uuid PRIMARY KEY,
	account_id		uuid NOT NULL,	-- checked by its writers, see below
	task_id			uuid,
	kind			text NOT NULL CHECK (kind IN ('assign_fee', 'complete_reward', 'payout')),
	debit			numeric(12,2) NOT NULL DEFAULT 0 CHECK (debit >= 0 AND debit <> 'NaN'),
	credit			numeric(12,2) NOT NULL DEFAULT 0 CHECK (credit >= 0 AND credit <> 'NaN'),
	description		text NOT NULL,
	occurred_at		timestamptz NOT NULL,
	applied_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	billing_day		date NOT NULL,
	event_id		uuid
);
CREATE INDEX payment_account_day_idx ON popug.payment (account_id, billing_day);
CREATE INDEX payment_day_idx ON popug.payment (billing_day);
COMMENT ON TABLE popug.payment IS 'Append-only audit log of money; id is md5(event_id|kind|account_id) of the source event, or md5(''payout''|account_id|day)';
-- account_id has no foreign key: a per-row RI check (a row lock on the
-- account) cost more than the payment itself.  Every payment moves its
-- account's balance in the same statement, and the balance does have its
-- foreign key: a batch naming an unknown account fails, and accounting
-- sets the event aside (see extension/accounting.c); the payout pays only
-- accounts that have a balance row.  Accounts are never deleted.

CREATE TABLE popug.balance (
	account_id		uuid PRIMARY KEY REFERENCES popug.account (id),
	amount			numeric(14,2) NOT NULL DEFAULT 0
					CHECK (amount BETWEEN -9999999999.99 AND 9999999999.99),
	updated_at		timestamptz NOT NULL DEFAULT pg_catalog.now()
) WITH (fillfactor = 70);
COMMENT ON TABLE popug.balance IS 'Each account''s balance: the sum of credit - debit of its payments';

-- Tasks as accounting knows them, from TaskCreated v1 and v2 events.
CREATE TABLE popug.ledger_task (
	task_id			uuid PRIMARY KEY,
	jira_id			text,
	title			text NOT NULL,
	complete_reward	numeric(12,2),
	created_at		timestamptz NOT NULL,
	billing_day		date NOT NULL	-- the day accounting learned of it, as for payments
);
COMMENT ON TABLE popug.ledger_task IS 'Accounting''s projection of tasks (titles for the audit log)';

CREATE TABLE popug.billing_day (
	day				date PRIMARY KEY,
	closed_at		timestamptz,
	accounts_paid	bigint NOT NULL DEFAULT 0,
	total_paid		numeric(30,2) NOT NULL DEFAULT 0,
	paid_upto		uuid,			-- the last account paid, while the payout runs
	-- the day's statistics, final once its payout has started:
	negative_workers bigint,		-- workers in debt at the end of the day (as batches walk)
	fees			numeric(30,2),	-- assignment fees charged (at the close)
	rewards			numeric(30,2),	-- completion rewards credited
	payouts			numeric(30,2),	-- paid out
	completed		bigint			-- tasks completed
);
COMMENT ON TABLE popug.billing_day IS 'Days whose payout has started; closed_at is set when every account is done';

CREATE TABLE popug.payout (
	account_id		uuid NOT NULL,	-- an account with a balance row, see below
	billing_day		date NOT NULL,
	amount			numeric(14,2) NOT NULL CHECK (amount > 0 AND amount <> 'NaN'),
	paid_at			timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (account_id, billing_day)
);
COMMENT ON TABLE popug.payout IS 'One row per account paid per day: a rerun skips who was paid';
-- No foreign key on account_id either: the payout pays only accounts that
-- have a balance row, whose foreign key vouches for them (a per-row RI
-- check would take about a tenth of the payout's time).


-- The billing day a payment applied now counts on (see the top of this file).
CREATE FUNCTION popug.billing_day_open()
RETURNS date
AS 'MODULE_PATHNAME', 'popug_billing_day_open'
LANGUAGE C STABLE
SET search_path = pg_catalog, pg_temp;
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

CREATE VIEW popug.my_balance WITH (security_barrier) AS
	SELECT a.id AS account_id, COALESCE(b.amount, 0::numeric(14,2)) AS amount, b.updated_at, a.login
	  FROM popug.account a LEFT JOIN popug.balance b ON b.account_id OPERATOR(pg_catalog.=) a.id
	 WHERE a.id OPERATOR(pg_catalog.=) (SELECT popug.caller_account_id());
COMMENT ON VIEW popug.my_balance IS 'The caller''s balance';
GRANT SELECT ON popug.my_balance TO PUBLIC;

CREATE VIEW popug.balances WITH (security_barrier) AS
	SELECT a.id AS account_id, a.login, a.full_name, a.role, a.active,
		   COALESCE(b.amount, 0::numeric(14,2)) AS amount, b.updated_at
	  FROM popug.account a LEFT JOIN popug.balance b ON b.account_id OPERATOR(pg_catalog.=) a.id
	 WHERE (SELECT popug.caller_role()) OPERATOR(pg_catalog.=) ANY ('{admin,accountant}'::popug.role[]);
COMMENT ON VIEW popug.balances IS 'Every account''s balance, with its login (admins and accountants; no rows for anyone else)';
GRANT SELECT ON popug.balances TO PUBLIC;

CREATE VIEW popug.my_audit_log WITH (security_barrier) AS
	SELECT p.id, p.applied_at, p.billing_day, p.kind, p.debit, p.credit, p.description,
		   p.task_id, t.jira_id, t.title AS task_title, p.occurred_at
	  FROM popug.payment p LEFT JOIN popug.ledger_task t ON t.task_id OPERATOR(pg_catalog.=) p.task_id
	 WHERE p.account_id OPERATOR(pg_catalog.=) (SELECT popug.caller_account_id())
	 ORDER BY p.applied_at DESC, p.occurred_at DESC;
COMMENT ON VIEW popug.my_audit_log IS 'The caller''s payments, newest first, with the task title';
GRANT SELECT ON popug.my_audit_log TO PUBLIC;

CREATE VIEW popug.audit_log WITH (security_barrier) AS
	SELECT p.id, p.applied_at, p.billing_day, p.account_id, a.login, p.kind, p.debit, p.credit,
		   p.description, p.task_id, t.jira_id, t.title AS task_title, p.occurred_at, p.event_id
	  FROM popug.payment p
	  JOIN popug.account a ON a.id OPERATOR(pg_catalog.=) p.account_id
	  LEFT JOIN popug.ledger_task t ON t.task_id OPERATOR(pg_catalog.=) p.task_id
	 WHERE (SELECT popug.caller_role()) OPERATOR(pg_catalog.=) ANY ('{admin,accountant}'::popug.role[]);
COMMENT ON VIEW popug.audit_log IS 'Every payment (admins and accountants; no rows for anyone else)';
GRANT SELECT ON popug.audit_log TO PUBLIC;
