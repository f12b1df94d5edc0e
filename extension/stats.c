/*-------------------------------------------------------------------------
 *
 * stats.c
 *		Statistics for management (SPEC 7), from accounting's data.
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
 *						 day, by its timestamp in popug.timezone
 *	 tasks_completed	 complete_reward payments of the day
 *	 negative_workers	 accounts with role worker whose payments up to the
 *						 end of the day sum below zero (today: now)
 *
 * The balance at the end of day D is the current balance minus the
 * payments of later days, so a range costs a scan of the payments from its
 * first day on, however long the history before it.
 *
 *-------------------------------------------------------------------------
 */
#include "popug.h"

#include "catalog/pg_type.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/tuplestore.h"

#define MAX_RANGE_DAYS 3660

static PopugPlan days_plan = {
	"WITH days AS (SELECT d::date AS day FROM generate_series($1::date, $2::date, interval '1 day') d),"
	" money AS ("
	"  SELECT billing_day AS day,"
	"         sum(debit) FILTER (WHERE kind = 'assign_fee') AS fees,"
	"         sum(credit) FILTER (WHERE kind = 'complete_reward') AS rewards,"
	"         sum(debit) FILTER (WHERE kind = 'payout') AS payouts,"
	"         count(*) FILTER (WHERE kind = 'complete_reward') AS completed"
	"    FROM popug.payment WHERE billing_day BETWEEN $1 AND $2 GROUP BY billing_day),"
	" created AS ("
	"  SELECT (created_at AT TIME ZONE $3)::date AS day, count(*) AS n FROM popug.ledger_task"
	"   WHERE created_at >= ($1::timestamp AT TIME ZONE $3)"
	"     AND created_at < (($2 + 1)::timestamp AT TIME ZONE $3) GROUP BY 1),"
	" later AS ("
	"  SELECT p.account_id, p.billing_day AS day, sum(p.credit - p.debit) AS net"
	"    FROM popug.payment p WHERE p.billing_day >= $1 GROUP BY 1, 2),"
	" workers AS ("
	"  SELECT b.account_id, b.amount FROM popug.balance b"
	"    JOIN popug.account a ON a.id = b.account_id WHERE a.role = 'worker'),"
	" points AS ("
	"  SELECT w.account_id, $1 - 1 AS day,"
	"         w.amount - COALESCE((SELECT sum(net) FROM later l WHERE l.account_id = w.account_id), 0) AS bal"
	"    FROM workers w"
	"  UNION ALL"
	"  SELECT l.account_id, l.day, w.amount - COALESCE(sum(l.net) OVER (PARTITION BY l.account_id"
	"         ORDER BY l.day DESC ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)"
	"    FROM later l JOIN workers w USING (account_id)),"
	" spans AS ("
	"  SELECT day, lead(day) OVER (PARTITION BY account_id ORDER BY day) AS until, bal FROM points),"
	" negative AS ("
	"  SELECT d.day, count(*) AS n FROM spans s JOIN days d"
	"      ON d.day >= s.day AND (s.until IS NULL OR d.day < s.until)"
	"   WHERE s.bal < 0 GROUP BY d.day)"
	"SELECT d.day, COALESCE(m.fees, 0) - COALESCE(m.rewards, 0), COALESCE(n.n, 0),"
	"       COALESCE(m.fees, 0), COALESCE(m.rewards, 0), COALESCE(m.payouts, 0),"
	"       COALESCE(c.n, 0), COALESCE(m.completed, 0)"
	"  FROM days d LEFT JOIN money m USING (day) LEFT JOIN created c USING (day)"
	"  LEFT JOIN negative n USING (day) ORDER BY d.day",
	3, {DATEOID, DATEOID, TEXTOID}
};
static PopugPlan expensive_plan = {
	"SELECT p.task_id, t.jira_id, t.title, p.credit, p.occurred_at"
	"  FROM popug.payment p LEFT JOIN popug.ledger_task t ON t.task_id = p.task_id"
	" WHERE p.kind = 'complete_reward' AND p.billing_day BETWEEN $1 AND $2"
	" ORDER BY p.credit DESC, p.occurred_at, p.task_id LIMIT 1",
	2, {DATEOID, DATEOID}
};
static PopugPlan today_plan = {
	"SELECT (now() AT TIME ZONE $1)::date", 1, {TEXTOID}
};

/* Checks a range of days: both given, in order, not too long. */
static void
check_range(FunctionCallInfo fcinfo)
{
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("from_day and to_day must not be null")));
	if (PG_GETARG_DATEADT(0) > PG_GETARG_DATEADT(1))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("from_day is after to_day")));
	if (PG_GETARG_DATEADT(1) - PG_GETARG_DATEADT(0) >= MAX_RANGE_DAYS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a range of statistics may span at most %d days", MAX_RANGE_DAYS)));
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
	Datum		args[3] = {from, to, CStringGetTextDatum(popug_timezone)};

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
	popug_require(&call, POPUG_ADMIN | POPUG_ACCOUNTANT, true, "read statistics");
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
	bool		isnull;

	InitMaterializedSRF(fcinfo, 0);
	popug_begin(&call);
	popug_require(&call, POPUG_ADMIN | POPUG_ACCOUNTANT, true, "read statistics");
	if (PG_ARGISNULL(0))
	{
		Datum		tz = CStringGetTextDatum(popug_timezone);

		popug_exec(&today_plan, &tz, NULL, true, 1);
		day = popug_get(0, 1, &isnull);
	}
	else
		day = PG_GETARG_DATUM(0);
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
	popug_require(&call, POPUG_ADMIN, true, "read task analytics");
	args[0] = PG_GETARG_DATUM(0);
	args[1] = PG_GETARG_DATUM(1);
	return_rows(fcinfo, popug_exec(&expensive_plan, args, NULL, true, 1));
	popug_end(&call);
	PG_RETURN_VOID();
}
