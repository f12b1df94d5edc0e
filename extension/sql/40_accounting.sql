-- Accounting (SPEC 4): the append-only audit log, balances, billing days.
--
-- Billing days.  A payment counts on popug.billing_day_open(): today in
-- popug.timezone, or the day after the last day whose payout has started,
-- if that is later.  A payout of day D inserts D into popug.billing_day
-- (closed_at NULL while it runs) under the exclusive billing lock; payment
-- application computes its day under the shared billing lock (both via
-- popug.billing_lock).  So once the payout of D has started, every payment
-- applied counts on D + 1 or later, and none in flight can still land on D.

CREATE TABLE popug.payment (
	id				uuid PRIMARY KEY,
	account_id		uuid NOT NULL REFERENCES popug.account (id),
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

CREATE TABLE popug.balance (
	account_id		uuid PRIMARY KEY REFERENCES popug.account (id),
	amount			numeric(14,2) NOT NULL DEFAULT 0,
	updated_at		timestamptz NOT NULL DEFAULT pg_catalog.now()
);
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
	total_paid		numeric(14,2) NOT NULL DEFAULT 0
);
COMMENT ON TABLE popug.billing_day IS 'Days whose payout has started; closed_at is set when every account is done';

CREATE TABLE popug.payout (
	account_id		uuid NOT NULL REFERENCES popug.account (id),
	billing_day		date NOT NULL,
	amount			numeric(14,2) NOT NULL CHECK (amount > 0),
	paid_at			timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (account_id, billing_day)
);
COMMENT ON TABLE popug.payout IS 'One row per account paid per day: a rerun skips who was paid';

-- Takes popug's billing lock for the rest of the transaction: shared for
-- applying payments, exclusive for starting a day's payout.
CREATE FUNCTION popug.billing_lock(exclusive boolean)
RETURNS void
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT CASE WHEN exclusive
		THEN pg_catalog.pg_advisory_xact_lock(1886351207, 1)
		ELSE pg_catalog.pg_advisory_xact_lock_shared(1886351207, 1) END;
$$;
REVOKE ALL ON FUNCTION popug.billing_lock(boolean) FROM PUBLIC;
COMMENT ON FUNCTION popug.billing_lock(boolean) IS
	'popug''s billing lock (advisory, transaction-scoped): shared to apply payments, exclusive to start a payout';

-- The billing day a payment applied now counts on (see the top of this file).
CREATE FUNCTION popug.billing_day_open()
RETURNS date
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT pg_catalog.greatest(
		(pg_catalog.now() AT TIME ZONE
		 pg_catalog.coalesce(pg_catalog.current_setting('popug.timezone', true), 'UTC'))::date,
		(SELECT max(day) OPERATOR(pg_catalog.+) 1 FROM popug.billing_day));
$$;
COMMENT ON FUNCTION popug.billing_day_open() IS
	'The billing day a payment applied now counts on: today in popug.timezone, or the day after the last paid-out day';
