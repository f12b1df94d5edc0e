/*-------------------------------------------------------------------------
 *
 * plan.c
 *		Statements prepared once per backend and kept (PopugPlan), run
 *		through SPI, and reading their results.
 *
 * A plan is prepared on first use and kept with SPI_keepplan for the life
 * of the backend; the caller has SPI connected (popug_begin does it).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "plan.h"

#include "utils/builtins.h"
#include "utils/snapmgr.h"

/* The plan's SPI plan, prepared and kept on first use. */
static SPIPlanPtr
popug_prepare(PopugPlan *plan)
{
	if (plan->plan == NULL)
	{
		SPIPlanPtr	p = SPI_prepare_cursor(plan->sql, plan->nargs, plan->argtypes,
											   plan->cursor_options);

		if (p == NULL)
			elog(ERROR, "SPI_prepare failed for \"%s\": %s", plan->sql,
				 SPI_result_code_string(SPI_result));
		SPI_keepplan(p);
		plan->plan = p;
	}
	return plan->plan;
}

/* Raises the error of a failed SPI execution of plan. */
static void
popug_check_rc(PopugPlan *plan, int rc)
{
	if (rc < 0)
		elog(ERROR, "SPI_execute_plan failed (%s) for \"%s\"",
			 SPI_result_code_string(rc), plan->sql);
}

/*
 * Executes a kept plan, preparing it on first use.  Returns the number of
 * rows processed; SPI_tuptable holds the result.
 */
uint64
popug_exec(PopugPlan *plan, Datum *values, const char *nulls, bool read_only,
		   long count)
{
	popug_check_rc(plan, SPI_execute_plan(popug_prepare(plan), values, nulls,
										  read_only, count));
	return SPI_processed;
}

/*
 * popug_exec reading through the latest snapshot instead of the
 * transaction's: what committed before a lock just taken was granted,
 * even under REPEATABLE READ or SERIALIZABLE, whose transaction snapshot
 * may be older than the lock.
 */
uint64
popug_exec_latest(PopugPlan *plan, Datum *values, const char *nulls, long count)
{
	popug_check_rc(plan, SPI_execute_snapshot(popug_prepare(plan), values, nulls,
											  GetLatestSnapshot(), InvalidSnapshot,
											  false, false, count));
	return SPI_processed;
}

/*
 * Under REPEATABLE READ or SERIALIZABLE, fails with 40001 when plan (one
 * text value, the version of what a lock just taken protects) reads
 * differently through the transaction's snapshot and the latest one: a
 * transaction that committed after the snapshot was taken changed it, and
 * acting on the older view would undo or repeat that change.  Read
 * committed statements read the latest anyway.
 */
void
popug_require_fresh(PopugPlan *plan, const char *what)
{
	char	   *seen;
	char	   *latest;

	if (!IsolationUsesXactSnapshot())
		return;
	popug_exec(plan, NULL, NULL, false, 1);
	seen = popug_get_text(0, 1);
	popug_exec_latest(plan, NULL, NULL, 1);
	latest = popug_get_text(0, 1);
	if ((seen == NULL) != (latest == NULL) ||
		(seen != NULL && strcmp(seen, latest) != 0))
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("could not serialize access due to a concurrent %s", what),
				 errdetail("It committed after this transaction's snapshot was taken."),
				 errhint("The transaction might succeed if retried.")));
}

/* Column col (1-based) of row of the last result. */
Datum
popug_get(int row, int col, bool *isnull)
{
	return SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col,
						 isnull);
}

/*
 * Column col (1-based) of a row that must not be NULL there: a NULL is
 * 22004, naming the column, where reading on would dereference it.
 */
Datum
popug_field(HeapTuple tuple, TupleDesc tupdesc, int col)
{
	bool		isnull;
	Datum		value = SPI_getbinval(tuple, tupdesc, col, &isnull);

	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("column \"%s\" must not be null",
						SPI_fname(tupdesc, col))));
	return value;
}

/* Column col of row of the last result as a C string, NULL for NULL. */
char *
popug_get_text(int row, int col)
{
	return SPI_getvalue(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col);
}

/* A random (version 4) UUID. */
void
popug_make_uuid(pg_uuid_t *out)
{
	if (!pg_strong_random(out->data, UUID_LEN))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate random values")));
	out->data[6] = (out->data[6] & 0x0f) | 0x40;
	out->data[8] = (out->data[8] & 0x3f) | 0x80;
}
