/*-------------------------------------------------------------------------
 *
 * stats.c
 *		Statistics for management, from accounting's data.
 *
 * A day is a billing day, as for balances and payouts: money counts on the
 * day its payment was applied to, so late events land on the next open
 * day and every figure agrees with the audit log.
 *
 *	 fees_charged		 sum of assign_fee debits of the day
 *	 rewards_paid		 sum of complete_reward credits of the day
 *	 management_earnings fees_charged - rewards_paid
 *	 payouts			 sum of payout debits of the day
 *	 tasks_created		 tasks accounting learned of (TaskCreated) that
 *						 billing day (popug.ledger_task.billing_day)
 *	 tasks_completed	 complete_reward payments of the day
 *	 negative_workers	 accounts with role worker whose payments up to the
 *						 end of the day sum below zero (today: now)
 *
 * Once the payout of day D has started no payment can land on D or before
 * it any more (see 40_accounting.sql), so D's figures are final: the
 * payout counts D's workers in debt when it starts (it computes what every
 * account is owed for D anyway) and sums D's money when it closes, into
 * popug.billing_day.  A range reads closed days from there and computes
 * only the days after the last closed one (today, usually) from payments:
 * the balance at the end of day D is the current balance minus the
 * payments of later days.  No payment has a billing day before the first
 * day ever paid out, so days before it are all zero.  tasks_created is
 * counted from popug.ledger_task by billing day, which is just as final,
 * for closed days and open ones alike.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "call.h"
#include "day.h"
#include "input.h"
#include "queries.h"

#include "catalog/pg_type.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/tuplestore.h"

#define MAX_RANGE_DAYS 3660

/* Figures of [$1, $2], computed from payments from day $3 on. */
static PopugPlan days_plan = {
	POPUG_SQL_STATS_DAYS, 3, {DATEOID, DATEOID, DATEOID}
};

/*
 * The first day of [$1, $2] to compute from payments: not closed with its
 * figures kept, and not before the first day ever paid out.
 */
static PopugPlan first_open_plan = {
	"SELECT COALESCE(min(d)::date, $2 + 1) FROM generate_series($1::date, $2::date, interval '1 day') d"
	" WHERE d >= COALESCE((SELECT min(day) FROM popug.billing_day), '-infinity')"
	"   AND NOT EXISTS (SELECT FROM popug.billing_day c WHERE c.day = d::date"
	"                    AND c.closed_at IS NOT NULL AND c.negative_workers IS NOT NULL)",
	2, {DATEOID, DATEOID}
};
static PopugPlan expensive_plan = {
	"SELECT p.task_id, t.jira_id, t.title, p.credit, p.occurred_at"
	"  FROM popug.payment p LEFT JOIN popug.ledger_task t ON t.task_id = p.task_id"
	" WHERE p.kind = 'complete_reward' AND p.billing_day BETWEEN $1 AND $2"
	" ORDER BY p.credit DESC, p.occurred_at, p.task_id LIMIT 1",
	2, {DATEOID, DATEOID}
};

/*
 * Checks a range of days: both given, finite and within popug's days (see
 * input.c), in order, not too long.
 */
static void
check_range(FunctionCallInfo fcinfo)
{
	DateADT		from,
				to;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("from_day and to_day must not be null")));
	from = PG_GETARG_DATEADT(0);
	to = PG_GETARG_DATEADT(1);
	popug_check_day(from, "from_day");
	popug_check_day(to, "to_day");
	if (from > to)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("from_day is after to_day")));
	if ((int64) to - from >= MAX_RANGE_DAYS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a range of statistics may span at most %d days", MAX_RANGE_DAYS),
				 errhint("Ask for several shorter ranges.")));
}

/* Copies the rows of the last SPI result into the SRF's tuplestore. */
static void
return_rows(FunctionCallInfo fcinfo, uint64 n)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int			natts = rsinfo->setDesc->natts;

	for (uint64 i = 0; i < n; i++)
	{
		Datum		values[8];
		bool		nulls[8];

		for (int c = 0; c < natts; c++)
			values[c] = popug_get((int) i, c + 1, &nulls[c]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
}

/* Runs stats_days over [from, to] into the SRF result. */
static void
stats_range(FunctionCallInfo fcinfo, Datum from, Datum to)
{
	Datum		args[3] = {from, to};
	bool		isnull;

	popug_exec(&first_open_plan, args, NULL, true, 1);
	args[2] = popug_get(0, 1, &isnull);
	return_rows(fcinfo, popug_exec(&days_plan, args, NULL, true, 0));
}

PG_FUNCTION_INFO_V1(popug_stats_days);

/* SQL: popug.stats_days(from_day, to_day): one row per day. */
Datum
popug_stats_days(PG_FUNCTION_ARGS)
{
	PopugCall	call;

	check_range(fcinfo);
	InitMaterializedSRF(fcinfo, 0);
	popug_begin(&call);
	popug_require(&call, POPUG_ROLE_ADMIN | POPUG_ROLE_ACCOUNTANT, true, "read statistics");
	stats_range(fcinfo, PG_GETARG_DATUM(0), PG_GETARG_DATUM(1));
	popug_end(&call);
	PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(popug_stats_day);

/* SQL: popug.stats_day(day): the row of one day (NULL: today). */
Datum
popug_stats_day(PG_FUNCTION_ARGS)
{
	PopugCall	call;
	Datum		day;

	if (!PG_ARGISNULL(0))
		popug_check_day(PG_GETARG_DATEADT(0), "day");
	InitMaterializedSRF(fcinfo, 0);
	popug_begin(&call);
	popug_require(&call, POPUG_ROLE_ADMIN | POPUG_ROLE_ACCOUNTANT, true, "read statistics");
	day = PG_ARGISNULL(0) ? DateADTGetDatum(popug_today()) : PG_GETARG_DATUM(0);
	stats_range(fcinfo, day, day);
	popug_end(&call);
	PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(popug_stats_most_expensive_task);

/* SQL: popug.stats_most_expensive_task(from_day, to_day) */
Datum
popug_stats_most_expensive_task(PG_FUNCTION_ARGS)
{
	PopugCall	call;
	Datum		args[2];

	check_range(fcinfo);
	InitMaterializedSRF(fcinfo, 0);
	popug_begin(&call);
	popug_require(&call, POPUG_ROLE_ADMIN, true, "read task analytics");
	args[0] = PG_GETARG_DATUM(0);
	args[1] = PG_GETARG_DATUM(1);
	return_rows(fcinfo, popug_exec(&expensive_plan, args, NULL, true, 1));
	popug_end(&call);
	PG_RETURN_VOID();
}
