/*-------------------------------------------------------------------------
 *
 * payout.c
 *		The daily payout: crash-safe, batched, once per account
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
#include "process.h"
#include "queries.h"

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
/* Pays the next $2 accounts for day $1 (the file says how). */
static PopugPlan batch_plan = {
	POPUG_SQL_PAYOUT_BATCH, 2, {DATEOID, INT4OID}
};
static PopugPlan batch_left_plan = {
	POPUG_SQL_PAYOUT_LEFT, 1, {DATEOID}
};
/* Closes day $1, keeping its money figures: nothing can land on it now. */
static PopugPlan close_plan = {
	POPUG_SQL_PAYOUT_CLOSE, 1, {DATEOID}
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
