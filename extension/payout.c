/*-------------------------------------------------------------------------
 *
 * payout.c
 *		The daily payout (SPEC 5): crash-safe, batched, once per account
 *		and day.
 *
 * Closing day D goes through steps, each one transaction:
 *
 * 1. Start: under popug's billing lock in exclusive mode (every payment
 *	  being applied holds it shared), insert D into popug.billing_day.  From
 *	  then on payments count on D + 1 or later, so what each account is owed
 *	  for D is fixed: its balance minus its payments of later days, whenever
 *	  it is read (a payment applied meanwhile moves both by the same amount).
 * 2. Batches: walk the next popug.payout_batch_size balances, in account
 *	  order after billing_day.paid_upto, and in one statement pay each
 *	  account owed a positive amount: a payout row (primary key account and
 *	  day), a 'payout' payment, the balance, a PayoutMade event; count the
 *	  workers owing instead, for D's statistics; move paid_upto past the
 *	  batch.
 * 3. Close: when no balance is left after paid_upto, set closed_at, the
 *	  totals and D's money figures for statistics, and write
 *	  BillingCycleClosed.
 *
 * A crash loses at most the batch in flight, which the next run redoes;
 * nobody is paid twice because paid_upto moves in the transaction that
 * pays, and the payout row's primary key would refuse a second payment
 * (failing the batch) anyway.  Steps of concurrent runs (pg_cron and the
 * scheduler worker, say) serialize on a transaction-level advisory lock.
 * A step reads what the run before it committed; under REPEATABLE READ or
 * SERIALIZABLE a step whose snapshot predates another run's last committed
 * step would redo that step, so it fails with a serialization failure
 * instead, which the caller retries (specs/payout_run_run.spec).
 * Balances are updated in account order, as accounting does, so the two
 * never deadlock.
 *
 * popug.payout_run is a procedure that calls popug.payout_step and commits
 * after each step; the scheduler worker runs one step per pass.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "payout.h"

#include "call.h"
#include "day.h"
#include "events.h"
#include "json.h"
#include "lock.h"
#include "popug.h"
#include "process.h"

#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/guc.h"

/* settings */
int			popug_payout_batch_size = 5000;

/* The state of the last day begun: what each committed step changes. */
static PopugPlan last_day_plan = {
	"SELECT (SELECT ROW(day, paid_upto, closed_at)::text FROM popug.billing_day"
	"         ORDER BY day DESC LIMIT 1)",
	0, {}
};
static PopugPlan running_plan = {
	"SELECT day FROM popug.billing_day WHERE closed_at IS NULL ORDER BY day LIMIT 1",
	0, {}
};

/* The next day to close: after the last one closed, else the first paid. */
static PopugPlan next_day_plan = {
	"SELECT COALESCE((SELECT max(day) + 1 FROM popug.billing_day),"
	"                (SELECT min(billing_day) FROM popug.payment))",
	0, {}
};
/* Starts day $1: from now on no payment lands on it. */
static PopugPlan start_plan = {
	"INSERT INTO popug.billing_day (day, negative_workers) VALUES ($1, 0)",
	1, {DATEOID}
};
/* The balances not walked yet for day $1: after paid_upto. */
#define WALK_LEFT \
	" account_id > (SELECT COALESCE(paid_upto, '00000000-0000-0000-0000-000000000000')" \
	"                FROM popug.billing_day WHERE day = $1)"

/*
 * Pays the next $2 accounts for day $1.  The account row is looked up per
 * account walked (a LATERAL subquery that cannot be flattened), so no plan
 * ever scans every account for a batch.
 */
static PopugPlan batch_plan = {
	"WITH walk AS ("
	"  SELECT b.account_id, b.amount - COALESCE((SELECT sum(p.credit - p.debit) FROM popug.payment p"
	"          WHERE p.account_id = b.account_id AND p.billing_day > $1), 0) AS owed"
	"    FROM popug.balance b WHERE" WALK_LEFT
	"   ORDER BY b.account_id LIMIT $2),"
	" due AS ("
	"  SELECT w.account_id, w.owed, a.email, a.role FROM walk w CROSS JOIN LATERAL"
	"         (SELECT email, role FROM popug.account a WHERE a.id = w.account_id OFFSET 0) a"
	"   WHERE w.owed <> 0),"
	" paid AS ("
	"  INSERT INTO popug.payout (account_id, billing_day, amount)"
	"  SELECT account_id, $1, owed FROM due WHERE owed > 0"
	"  RETURNING account_id, amount),"
	" payments AS ("
	"  INSERT INTO popug.payment (id, account_id, kind, debit, description,"
	"                             occurred_at, billing_day)"
	"  SELECT md5(concat_ws('|', 'payout', account_id, $1))::uuid, account_id, 'payout',"
	"         amount, 'payout for ' || $1, now(), $1 FROM paid),"
	" balances AS ("
	"  INSERT INTO popug.balance AS b (account_id, amount)"
	"  SELECT account_id, -amount FROM paid ORDER BY account_id"
	"  ON CONFLICT (account_id) DO UPDATE SET amount = b.amount + excluded.amount,"
	"  updated_at = now()),"
	" totals AS ("
	"  UPDATE popug.billing_day SET accounts_paid = accounts_paid + (SELECT count(*) FROM paid),"
	"         total_paid = total_paid + COALESCE((SELECT sum(amount) FROM paid), 0),"
	"         negative_workers = negative_workers"
	"                            + (SELECT count(*) FROM due WHERE owed < 0 AND role = 'worker'),"
	"         paid_upto = COALESCE((SELECT account_id FROM walk ORDER BY account_id DESC LIMIT 1), paid_upto)"
	"   WHERE day = $1)"
	"INSERT INTO popug.event (event_name, event_version, producer, aggregate_id, payload) "
	"SELECT 'PayoutMade', 1, 'payout', account_id, popug.payload("
	"  'account_id', account_id, 'email', email, 'billing_day', $1, 'amount', owed)"
	"  FROM due WHERE owed > 0",
	2, {DATEOID, INT4OID}
};
static PopugPlan batch_left_plan = {
	"SELECT EXISTS (SELECT FROM popug.balance WHERE" WALK_LEFT ")",
	1, {DATEOID}
};
/* Closes day $1, keeping its money figures: nothing can land on it now. */
static PopugPlan close_plan = {
	"UPDATE popug.billing_day d SET closed_at = now(), fees = COALESCE(m.fees, 0),"
	"       rewards = COALESCE(m.rewards, 0), payouts = COALESCE(m.payouts, 0),"
	"       completed = m.completed"
	"  FROM (SELECT" POPUG_DAY_MONEY_SQL " FROM popug.payment WHERE billing_day = $1) m"
	" WHERE d.day = $1 RETURNING d.accounts_paid, d.total_paid",
	1, {DATEOID}
};

static PopugPlan step_plan = {
	"SELECT popug.payout_step($1, $2)", 2, {DATEOID, INT4OID}
};

/* Closes day: its totals, closed_at and BillingCycleClosed. */
static void
close_day(DateADT day)
{
	Datum		arg = DateADTGetDatum(day);
	bool		isnull;
	PopugJson	js;

	popug_exec(&close_plan, &arg, NULL, false, 1);
	popug_json_begin(&js);
	popug_json_date(&js, "billing_day", arg);
	popug_json_int(&js, "accounts_paid", DatumGetInt64(popug_get(0, 1, &isnull)));
	popug_json_numeric(&js, "total_paid", popug_get(0, 2, &isnull));
	popug_event_append("BillingCycleClosed", 1, "payout", NULL, popug_json_end(&js));
}

/*
 * One step of closing every day up to upto (see the top of this file).
 * Returns true when there is nothing left to do.  Runs inside a call.
 */
bool
popug_payout_step(DateADT upto, int batch)
{
	bool		isnull;
	Datum		args[2];
	DateADT		day;

	popug_xact_lock(POPUG_LOCK_PAYOUT, true);
	popug_require_fresh(&last_day_plan, "payout step");

	if (popug_exec(&running_plan, NULL, NULL, false, 1) == 1)
	{
		/* a day in progress: its next batch, or its close */
		day = DatumGetDateADT(popug_get(0, 1, &isnull));
		args[0] = DateADTGetDatum(day);
		args[1] = Int32GetDatum(batch);
		popug_exec(&batch_left_plan, args, NULL, false, 1);
		if (!DatumGetBool(popug_get(0, 1, &isnull)))
			close_day(day);
		else if (popug_exec(&batch_plan, args, NULL, false, 0) > 0)
		{
			popug_events_written();
			popug_wake_at_commit(POPUG_PROCESS_MAILER);
		}
		return false;
	}

	popug_exec(&next_day_plan, NULL, NULL, false, 1);
	args[0] = popug_get(0, 1, &isnull);
	if (isnull || DatumGetDateADT(args[0]) > upto)
		return true;

	/* start the day: no payment can land on it after this commits */
	popug_xact_lock(POPUG_LOCK_BILLING, true);
	popug_exec(&start_plan, args, NULL, false, 0);
	return false;
}

PG_FUNCTION_INFO_V1(popug_payout_step_sql);

/*
 * SQL: popug.payout_step(upto date, batch int) RETURNS boolean (done).
 * upto NULL is yesterday in popug.timezone.  In a read-only transaction (a
 * hot standby) it fails with 25006 even when there is nothing to close, as
 * PostgreSQL's own writing commands do, so that CALL popug.payout_run on a
 * standby never reports a payout that did not run.
 */
Datum
popug_payout_step_sql(PG_FUNCTION_ARGS)
{
	PopugCall	call;
	DateADT		upto;
	bool		done;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("payout batch size must not be null")));
	if (PG_GETARG_INT32(1) < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("payout batch size must be positive")));
	popug_begin(&call);
	popug_require(&call, POPUG_ROLE_ADMIN | POPUG_ROLE_ACCOUNTANT, true, "run payouts");
	PreventCommandIfReadOnly("popug.payout_step()");
	upto = PG_ARGISNULL(0) ? popug_today() - 1 : PG_GETARG_DATEADT(0);
	if (upto > popug_today())
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cannot pay out %s: it has not begun yet in popug.timezone (%s)",
						DatumGetCString(DirectFunctionCall1(date_out, DateADTGetDatum(upto))),
						popug_timezone)));
	done = popug_payout_step(upto, PG_GETARG_INT32(1));
	popug_end(&call);
	PG_RETURN_BOOL(done);
}

PG_FUNCTION_INFO_V1(popug_payout_run);

/*
 * SQL: CALL popug.payout_run(day).  Steps until every day up to day (NULL:
 * yesterday in popug.timezone) is closed, committing after each step when
 * called outside a transaction block.
 */
Datum
popug_payout_run(PG_FUNCTION_ARGS)
{
	bool		nonatomic = fcinfo->context && IsA(fcinfo->context, CallContext) &&
		!castNode(CallContext, fcinfo->context)->atomic;
	Datum		args[2];
	char		nulls[2] = "  ";
	bool		isnull;

	/* payout_step checks the caller and the day; this runs nothing else */
	args[0] = PG_GETARG_DATUM(0);
	nulls[0] = PG_ARGISNULL(0) ? 'n' : ' ';
	args[1] = Int32GetDatum(popug_payout_batch_size);

	if (SPI_connect_ext(nonatomic ? SPI_OPT_NONATOMIC : 0) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect_ext failed");
	for (;;)
	{
		popug_exec(&step_plan, args, nulls, false, 1);
		if (DatumGetBool(popug_get(0, 1, &isnull)))
			break;
		if (nonatomic)
			SPI_commit();
	}
	SPI_finish();
	PG_RETURN_VOID();
}

/* Defines the payout settings (called from _PG_init). */
void
PayoutInit(void)
{
	DefineCustomIntVariable("popug.payout_batch_size",
							"Accounts paid per committed batch of popug.payout_run.",
							NULL, &popug_payout_batch_size, 5000, 1, 10000000,
							PGC_SUSET, 0, NULL, NULL, NULL);
}
