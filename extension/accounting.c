/*-------------------------------------------------------------------------
 *
 * accounting.c
 *		Accounting (SPEC 4): applying task events to money, idempotently.
 *
 * TaskAssigned debits the assignee the task's fee, TaskCompleted credits
 * the reward, TaskCreated (v1 or v2) records the task's title for the audit
 * log.  Each payment's id is an MD5 of its source event's id, kind,
 * account, amount and timestamp, inserted ON CONFLICT DO NOTHING: applying
 * an event again writes nothing.  Only payments actually inserted move a
 * balance and produce a TransactionApplied event, in the same statement.
 *
 * Events are applied a batch at a time by one set-based statement over an
 * array of event rows.  A batch the consumer hands out for the first time
 * is applied by a plain INSERT: the consumer's position moves in the same
 * transaction, so its events were never applied by accounting before, and
 * the primary key still refuses a payment written by another path
 * (payment_apply, a dead letter's replay).  If that fails, the batch is
 * applied again ON CONFLICT DO NOTHING; if that fails too (a malformed
 * payload, an account accounting never heard of), each event is retried
 * alone in a subtransaction and the ones that still fail go to
 * popug.dead_letter, so a bad event never blocks the stream.
 *
 * Billing day: the statement runs after taking popug's billing lock in
 * shared mode and reading popug.billing_day_open() in a statement of its
 * own (see the top of 40_accounting.sql), so a payout that has started day
 * D never has a payment land on D behind its back.  Balances are upserted
 * in account order, as the payout does, so the two never deadlock.
 *
 *-------------------------------------------------------------------------
 */
#include "popug.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/typcache.h"

#define CONSUMER "accounting"

/*
 * Applies the events in $1 (popug.event[]): ledger_task rows, payments,
 * balances and TransactionApplied events; returns one row per payment
 * inserted.  $2 is the billing day.  Each part unnests $1 itself: a CTE of
 * the events read twice would be materialized, payloads and all.
 * on_conflict is what to do with a payment already written: nothing (an
 * event applied again), or fail the statement (a fresh batch).
 */
#define APPLY_SQL(on_conflict) \
	"WITH tasks AS (" \
	"  INSERT INTO popug.ledger_task (task_id, jira_id, title, complete_reward, created_at)" \
	"  SELECT (payload->>'task_id')::uuid," \
	"         CASE event_version WHEN 2 THEN payload->>'jira_id'" \
	"              ELSE substring(payload->>'title' FROM '^\\s*\\[([^]]*)\\]') END," \
	"         CASE event_version WHEN 2 THEN payload->>'title'" \
	"              ELSE btrim(regexp_replace(payload->>'title', '^\\s*\\[[^]]*\\]', '')) END," \
	"         (payload->>'complete_reward')::numeric(12,2), occurred_at" \
	"    FROM unnest($1) WHERE event_name = 'TaskCreated'" \
	"  ON CONFLICT (task_id) DO NOTHING)," \
	" money AS (" \
	"  SELECT e.event_id, e.occurred_at, x.kind, x.account_id," \
	"         (e.payload->>'task_id')::uuid AS task_id, x.debit, x.credit" \
	"    FROM unnest($1) e, LATERAL (SELECT" \
	"         CASE e.event_name WHEN 'TaskAssigned' THEN 'assign_fee' ELSE 'complete_reward' END AS kind," \
	"         (e.payload->>'assignee_id')::uuid AS account_id," \
	"         CASE e.event_name WHEN 'TaskAssigned' THEN (e.payload->>'assign_fee')::numeric(12,2) ELSE 0 END AS debit," \
	"         CASE e.event_name WHEN 'TaskCompleted' THEN (e.payload->>'complete_reward')::numeric(12,2) ELSE 0 END AS credit) x" \
	"   WHERE e.event_name IN ('TaskAssigned', 'TaskCompleted'))," \
	" paid AS (" \
	"  INSERT INTO popug.payment (id, account_id, task_id, kind, debit, credit," \
	"                             description, occurred_at, billing_day, event_id)" \
	"  SELECT md5(concat_ws('|', event_id, kind, account_id, debit + credit," \
	"                       extract(epoch FROM occurred_at)))::uuid," \
	"         account_id, task_id, kind, debit, credit," \
	"         CASE kind WHEN 'assign_fee' THEN 'assignment fee' ELSE 'completion reward' END," \
	"         occurred_at, $2, event_id" \
	"    FROM money" \
	on_conflict \
	"  RETURNING id, account_id, task_id, kind, debit, credit, billing_day)," \
	" moved AS (" \
	"  INSERT INTO popug.balance AS b (account_id, amount)" \
	"  SELECT account_id, sum(credit - debit) FROM paid GROUP BY account_id ORDER BY account_id" \
	"  ON CONFLICT (account_id) DO UPDATE" \
	"  SET amount = b.amount + excluded.amount, updated_at = now())" \
	"INSERT INTO popug.event (event_name, event_version, producer, aggregate_id, payload) " \
	"SELECT 'TransactionApplied', 1, 'accounting', account_id, popug.payload(" \
	"  'payment_id', id, 'account_id', account_id, 'task_id', task_id, 'kind', kind," \
	"  'debit', debit, 'credit', credit, 'billing_day', billing_day)" \
	"  FROM paid"

/* Applies events again: a payment already written is skipped. */
static PopugPlan apply_plan = {
	APPLY_SQL("  ON CONFLICT (id) DO NOTHING"), 2, {InvalidOid, DATEOID}
};

/* Applies a fresh batch: a payment already written fails the statement. */
static PopugPlan apply_fresh_plan = {
	APPLY_SQL(""), 2, {InvalidOid, DATEOID}
};
static PopugPlan unknown_account_plan = {
	"SELECT e.payload->>'assignee_id' FROM unnest($1) e"
	" WHERE e.event_name IN ('TaskAssigned', 'TaskCompleted')"
	"   AND NOT EXISTS (SELECT FROM popug.account a WHERE a.id = (e.payload->>'assignee_id')::uuid)"
	" LIMIT 1",
	1, {InvalidOid}
};
static PopugPlan shared_lock_plan = {
	"SELECT popug.xact_lock(1, false)", 0, {}
};
static PopugPlan open_day_plan = {
	"SELECT popug.billing_day_open()", 0, {}
};
static PopugPlan read_plan = {
	"SELECT * FROM popug.events_read('" CONSUMER "', $1)", 1, {INT4OID}
};
static PopugPlan ack_plan = {
	"SELECT popug.events_ack('" CONSUMER "')", 0, {}
};

/*
 * Whether accounting reads this event: the names and versions it knows.
 * Sets *unknown_version for a known name in a version it does not know.
 */
static bool
wanted(const char *name, int version, bool *unknown_version)
{
	bool		known = strcmp(name, "TaskCreated") == 0 ||
		strcmp(name, "TaskAssigned") == 0 ||
		strcmp(name, "TaskCompleted") == 0;
	bool		ok = strcmp(name, "TaskCreated") == 0 ? (version == 1 || version == 2)
		: version == 1;

	*unknown_version = known && !ok;
	return known && ok;
}

/*
 * The two plans that take popug.event[] are prepared for that type's OID;
 * after DROP and CREATE EXTENSION (the worker lives on) it is another
 * type, so prepare them again.
 */
static void
forget_stale_plans(Oid event_array)
{
	PopugPlan  *plans[] = {&apply_plan, &apply_fresh_plan, &unknown_account_plan};

	for (int i = 0; i < lengthof(plans); i++)
	{
		if (plans[i]->plan != NULL && plans[i]->argtypes[0] != event_array)
		{
			SPI_freeplan(plans[i]->plan);
			plans[i]->plan = NULL;
		}
		plans[i]->argtypes[0] = event_array;
	}
}

/*
 * Applies an array of events (popug.event[]) in one statement, under the
 * shared billing lock; returns the number of payments written.  fresh: a
 * batch the consumer hands out for the first time (see the top of this
 * file); otherwise payments already written are skipped.
 */
static uint64
apply_events(Datum events, bool fresh)
{
	Datum		args[2];
	bool		isnull;

	/* the day is read in a statement of its own, after the lock is held */
	popug_exec(&shared_lock_plan, NULL, NULL, false, 1);
	popug_exec(&open_day_plan, NULL, NULL, false, 1);
	args[1] = popug_get(0, 1, &isnull);
	args[0] = events;
	forget_stale_plans(get_array_type(popug_event_type()));
	if (fresh)
		return popug_exec(&apply_fresh_plan, args, NULL, false, 0);

	/*
	 * Payments have no foreign key: an unknown account fails the balance's,
	 * which is all a fresh batch needs to fall back to this path; here one
	 * anti-join names the account.
	 */
	if (popug_exec(&unknown_account_plan, args, NULL, false, 1) > 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("account %s does not exist", popug_get_text(0, 1))));
	return popug_exec(&apply_plan, args, NULL, false, 0);
}

/* An array of one or more event rows. */
static Datum
event_array(Datum *rows, int n)
{
	return PointerGetDatum(construct_array(rows, n, popug_event_type(), -1, false,
										   TYPALIGN_DOUBLE));
}

/* Arguments of apply_events_fn, run through popug_try. */
typedef struct ApplyArgs
{
	Datum	   *rows;
	int			n;
	bool		fresh;
	uint64	   *written;
} ApplyArgs;

/* popug_try callback: applies a->rows. */
static void
apply_events_fn(void *arg)
{
	ApplyArgs  *a = (ApplyArgs *) arg;

	*a->written += apply_events(event_array(a->rows, a->n), a->fresh);
}

/*
 * Applies events in a subtransaction.  On error, returns false and sets
 * *error to the message; nothing of the events is left behind.
 */
static bool
apply_safely(Datum *rows, int n, bool fresh, uint64 *written, char **error)
{
	ApplyArgs	a = {rows, n, fresh, written};

	return popug_try(apply_events_fn, &a, error);
}

/*
 * Reads, applies and acknowledges one batch of the accounting consumer.
 * Returns the number of events read; adds payments written to *written.
 */
static int
apply_batch(int max_events, uint64 *written)
{
	SPITupleTable *tt;
	TupleDesc	tupdesc;
	int			n;
	int			nrows = 0;
	Datum	   *rows;
	int64	   *ids;
	Datum	   *event_ids;
	Oid			rowtype = popug_event_type();
	Datum		arg = Int32GetDatum(max_events);
	char	   *error;
	int			att_id,
				att_event_id,
				att_name,
				att_version;

	n = (int) popug_exec(&read_plan, &arg, NULL, false, 0);
	if (n == 0)
		return 0;
	tt = SPI_tuptable;
	tupdesc = tt->tupdesc;
	att_id = SPI_fnumber(tupdesc, "id");
	att_event_id = SPI_fnumber(tupdesc, "event_id");
	att_name = SPI_fnumber(tupdesc, "event_name");
	att_version = SPI_fnumber(tupdesc, "event_version");
	rows = palloc(sizeof(Datum) * n);
	ids = palloc(sizeof(int64) * n);
	event_ids = palloc(sizeof(Datum) * n);
	for (int i = 0; i < n; i++)
	{
		HeapTuple	tuple = tt->vals[i];
		bool		isnull;
		char	   *name = TextDatumGetCString(SPI_getbinval(tuple, tupdesc, att_name, &isnull));
		int			version = DatumGetInt32(SPI_getbinval(tuple, tupdesc, att_version, &isnull));
		bool		unknown_version;
		HeapTupleHeader td;

		if (!wanted(name, version, &unknown_version))
		{
			if (unknown_version)
				popug_dead_letter(CONSUMER,
								  SPI_getbinval(tuple, tupdesc, att_event_id, &isnull),
								  DatumGetInt64(SPI_getbinval(tuple, tupdesc, att_id, &isnull)),
								  psprintf("%s version %d is not supported", name, version));
			continue;
		}
		td = DatumGetHeapTupleHeader(heap_copy_tuple_as_datum(tuple, tupdesc));
		HeapTupleHeaderSetTypeId(td, rowtype);
		HeapTupleHeaderSetTypMod(td, -1);
		rows[nrows] = PointerGetDatum(td);
		ids[nrows] = DatumGetInt64(SPI_getbinval(tuple, tupdesc, att_id, &isnull));
		event_ids[nrows] = datumCopy(SPI_getbinval(tuple, tupdesc, att_event_id, &isnull),
									 false, UUID_LEN);
		nrows++;
	}

	SPI_freetuptable(tt);

	/* the whole batch, fresh and then again; if that fails, one at a time */
	if (nrows > 0 && !apply_safely(rows, nrows, true, written, &error) &&
		!apply_safely(rows, nrows, false, written, &error))
	{
		for (int i = 0; i < nrows; i++)
			if (!apply_safely(&rows[i], 1, false, written, &error))
				popug_dead_letter(CONSUMER, event_ids[i], ids[i], error);
	}
	popug_exec(&ack_plan, NULL, NULL, false, 1);
	return n;
}

/*
 * Drains the accounting consumer: batches of popug.accounting_batch_size
 * until max_events have been read or none are left.  Returns the number
 * of payments written; *read gets the number of events read.
 */
static uint64
drain(int64 max_events, int64 *read)
{
	MemoryContext batch_cxt,
				old;
	uint64		written = 0;

	*read = 0;
	popug_consumer_ensure(CONSUMER);
	batch_cxt = AllocSetContextCreate(CurrentMemoryContext, "popug accounting batch",
									  ALLOCSET_DEFAULT_SIZES);
	while (*read < max_events)
	{
		int			want = (int) Min(max_events - *read, (int64) popug_accounting_batch);
		int			got;

		old = MemoryContextSwitchTo(batch_cxt);
		got = apply_batch(want, &written);
		MemoryContextSwitchTo(old);
		MemoryContextReset(batch_cxt);
		*read += got;
		if (got < want)
			break;
	}
	MemoryContextDelete(batch_cxt);
	return written;
}

/* One pass of the accounting worker: one batch; *more when it was full. */
int64
popug_accounting_step(bool *more)
{
	PopugCall	call;
	int64		read;

	popug_begin(&call);
	drain(popug_accounting_batch, &read);
	popug_end(&call);
	*more = read >= popug_accounting_batch;
	return read;
}

/*
 * Applies one event row (a Datum of type popug.event) for popug's own
 * callers (dead_letter_retry); returns whether it changed money.  Must run
 * inside a call.
 */
bool
popug_payment_apply_event(Datum event)
{
	HeapTupleHeader td = DatumGetHeapTupleHeader(event);
	TupleDesc	tupdesc = lookup_rowtype_tupdesc(popug_event_type(), -1);
	HeapTupleData tuple;
	bool		isnull;
	bool		unknown_version;
	char	   *name;
	int			version;
	bool		ok;

	/* a fresh datum of the current row type, as the batch path makes */
	tuple.t_len = HeapTupleHeaderGetDatumLength(td);
	ItemPointerSetInvalid(&tuple.t_self);
	tuple.t_tableOid = InvalidOid;
	tuple.t_data = td;
	name = TextDatumGetCString(heap_getattr(&tuple, SPI_fnumber(tupdesc, "event_name"), tupdesc, &isnull));
	version = DatumGetInt32(heap_getattr(&tuple, SPI_fnumber(tupdesc, "event_version"), tupdesc, &isnull));
	event = heap_copy_tuple_as_datum(&tuple, tupdesc);
	ReleaseTupleDesc(tupdesc);

	if (!wanted(name, version, &unknown_version))
	{
		if (unknown_version)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s version %d is not supported", name, version)));
		return false;
	}
	PG_TRY();
	{
		ok = apply_events(event_array(&event, 1), false) > 0;
	}
	PG_CATCH();
	{
		ErrorData  *edata = CopyErrorData();

		FlushErrorState();
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cannot apply %s event: %s", name, edata->message),
				 errhint("The event's payload must name a known account and carry valid amounts.")));
	}
	PG_END_TRY();
	return ok;
}

PG_FUNCTION_INFO_V1(popug_payment_apply);

/*
 * SQL: popug.payment_apply(e popug.event) RETURNS boolean.  In a read-only
 * transaction (a hot standby) it fails with 25006 before applying, which
 * would report the refused write as a bad event (22023), and even for an
 * event that is not about money.
 */
Datum
popug_payment_apply(PG_FUNCTION_ARGS)
{
	PopugCall	call;
	bool		changed;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("event must not be null")));
	popug_begin(&call);
	popug_require(&call, POPUG_ADMIN | POPUG_ACCOUNTANT, true, "apply payments");
	PreventCommandIfReadOnly("popug.payment_apply()");
	changed = popug_payment_apply_event(PointerGetDatum(PG_DETOAST_DATUM_COPY(PG_GETARG_DATUM(0))));
	popug_end(&call);
	PG_RETURN_BOOL(changed);
}

PG_FUNCTION_INFO_V1(popug_payments_apply);

/* SQL: popug.payments_apply(max_events) RETURNS bigint: payments written. */
Datum
popug_payments_apply(PG_FUNCTION_ARGS)
{
	PopugCall	call;
	int64		max_events = PG_ARGISNULL(0) ? 10000 : PG_GETARG_INT32(0);
	int64		read;
	uint64		written;

	if (max_events < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_events must not be negative")));
	popug_begin(&call);
	popug_require(&call, POPUG_ADMIN | POPUG_ACCOUNTANT, true, "apply payments");
	written = drain(max_events, &read);
	popug_end(&call);
	PG_RETURN_INT64((int64) written);
}
