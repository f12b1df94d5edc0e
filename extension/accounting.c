/*-------------------------------------------------------------------------
 *
 * accounting.c
 *		Accounting: applying task events to money, idempotently.
 *
 * TaskAssigned debits the assignee the task's fee, TaskCompleted credits
 * the reward, TaskCreated (v1 or v2) records the task's title for the audit
 * log.  Each payment's id is md5(event_id | kind | account) as a uuid,
 * inserted ON CONFLICT DO NOTHING: applying an event again, or a
 * redelivered copy of it with any other field changed, writes nothing.
 * Only payments actually inserted move a balance and produce a
 * TransactionApplied event, in the same statement.
 *
 * Before anything becomes money, each event is judged in C (judge()): a
 * name and version accounting knows, ids as strings, and amounts that are
 * JSON numbers within the task prices' ranges with no fraction of a cent.
 * A malformed event is set aside in popug.dead_letter without being tried;
 * payment_apply refuses it with 22023.  The money columns also refuse NaN
 * (see 40_accounting.sql), whatever writes them.
 *
 * Events are applied a batch at a time by one set-based statement over an
 * array of event rows.  A batch the consumer hands out for the first time
 * is applied by a plain INSERT: the consumer's position moves in the same
 * transaction, so its events were never applied by accounting before, and
 * the primary key still refuses a payment written by another path
 * (payment_apply, a dead letter's replay).  If that fails, the batch is
 * applied again ON CONFLICT DO NOTHING; if that fails too (an account
 * accounting never heard of, a balance beyond its bounds), each event is
 * retried alone in a subtransaction and the ones that still fail go to
 * popug.dead_letter, so a bad event never blocks the stream.  Only errors
 * about the data are set aside (popug_try): a cancel, a timeout, a
 * serialization failure or a deadlock fails the whole pass.
 *
 * Billing day: the statement runs after taking popug's billing lock in
 * shared mode and reading the open billing day (billing_day_open()) in a
 * statement of its own through the latest snapshot (see the top of 40_accounting.sql), so
 * a payout that has started day D never has a payment land on D behind
 * its back, even in a REPEATABLE READ or SERIALIZABLE transaction whose
 * snapshot predates the payout's start.  Balances are upserted in account
 * order, as the payout does, so the two never deadlock.
 *
 * payment_apply applies only a row equal to the popug.event row of its id,
 * and then the stored row, so no caller can make money of a row of their
 * own.  popug's internal callers (dead_letter_retry) hand over rows they
 * read from popug.event themselves.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "accounting.h"

#include "call.h"
#include "consumer.h"
#include "day.h"
#include "deadletter.h"
#include "events.h"
#include "lock.h"
#include "queries.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/typcache.h"

/* settings */
static int	popug_accounting_batch = 1000;

#define CONSUMER "accounting"

/* Applies events $1 on billing day $2, as a fresh batch when $3. */
static PopugPlan apply_plan = {
	POPUG_SQL_ACCOUNTING_APPLY, 3, {InvalidOid, DATEOID, BOOLOID}
};
static PopugPlan unknown_account_plan = {
	"SELECT e.payload->>'assignee_id' FROM unnest($1) e"
	" WHERE e.event_name IN ('TaskAssigned', 'TaskCompleted')"
	"   AND NOT EXISTS (SELECT FROM popug.account a WHERE a.id = (e.payload->>'assignee_id')::uuid)"
	" LIMIT 1",
	1, {InvalidOid}
};
/* The day after the last day whose payout has started (NULL: none has). */
static PopugPlan after_last_day_plan = {
	"SELECT max(day) + 1 FROM popug.billing_day", 0, {}
};
static PopugPlan stored_plan = {
	"SELECT e.* FROM popug.event e WHERE e.id = $1", 1, {INT8OID}
};

/* What accounting does with one event. */
typedef enum Verdict
{
	VERDICT_SKIP,				/* not about money or tasks */
	VERDICT_APPLY,
	VERDICT_REFUSE				/* malformed; the reason is given */
} Verdict;

/* Where an event row's columns are, in one result's tuple descriptor. */
typedef struct EventCols
{
	int			id;
	int			event_id;
	int			name;
	int			version;
	int			payload;
} EventCols;

/* The amounts accounting takes, bounds included. */
typedef struct AmountRule
{
	const char *key;
	const char *lo;
	const char *hi;
	Numeric		lo_num;			/* lo and hi parsed, on first use */
	Numeric		hi_num;
} AmountRule;

static AmountRule fee_rule = {"assign_fee", "10.00", "20.00"};
static AmountRule reward_rule = {"complete_reward", "20.00", "40.00"};

/* Looks up the event columns accounting reads in tupdesc. */
static void
event_cols(TupleDesc tupdesc, EventCols *cols)
{
	cols->id = SPI_fnumber(tupdesc, "id");
	cols->event_id = SPI_fnumber(tupdesc, "event_id");
	cols->name = SPI_fnumber(tupdesc, "event_name");
	cols->version = SPI_fnumber(tupdesc, "event_version");
	cols->payload = SPI_fnumber(tupdesc, "payload");
}

/* A numeric constant kept for the backend's life. */
static Numeric
kept_numeric(const char *text, Numeric *cache)
{
	if (*cache == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		*cache = DatumGetNumeric(DirectFunctionCall3(numeric_in, CStringGetDatum(text),
													 ObjectIdGetDatum(InvalidOid),
													 Int32GetDatum(-1)));
		MemoryContextSwitchTo(old);
	}
	return *cache;
}

/* What kind of JSON value v is, for messages. */
static const char *
json_kind(const JsonbValue *v)
{
	switch (v->type)
	{
		case jbvNull:
			return "null";
		case jbvString:
			return "a string";
		case jbvNumeric:
			return "a number";
		case jbvBool:
			return "a boolean";
		default:
			return "an object or array";
	}
}

/* Why payload's member key is not a string, or NULL when it is one. */
static char *
string_refusal(Jsonb *payload, const char *key)
{
	JsonbValue	v;

	if (getKeyJsonValueFromContainer(&payload->root, key, strlen(key), &v) == NULL)
		return psprintf("its payload has no %s", key);
	if (v.type != jbvString)
		return psprintf("its %s is %s, not a string", key, json_kind(&v));
	return NULL;
}

/*
 * Why payload's amount under rule->key is refused, or NULL when
 * it is a JSON number within the rule's bounds with no fraction of a cent
 * (12.5 and 12.50 are the same amount; 12.505 is refused, never rounded).
 * JSON has no NaN or Infinity; a producer that wrote one as a string is
 * refused as a string.
 */
static char *
amount_refusal(Jsonb *payload, AmountRule *rule)
{
	JsonbValue	v;
	Datum		n;

	if (getKeyJsonValueFromContainer(&payload->root, rule->key, strlen(rule->key), &v) == NULL)
		return psprintf("its payload has no %s", rule->key);
	if (v.type != jbvNumeric)
		return psprintf("its %s is %s, not a JSON number", rule->key, json_kind(&v));
	n = NumericGetDatum(v.val.numeric);
	if (numeric_is_nan(v.val.numeric) || numeric_is_inf(v.val.numeric) ||
		DatumGetInt32(DirectFunctionCall2(numeric_cmp, n,
										  NumericGetDatum(kept_numeric(rule->lo, &rule->lo_num)))) < 0 ||
		DatumGetInt32(DirectFunctionCall2(numeric_cmp, n,
										  NumericGetDatum(kept_numeric(rule->hi, &rule->hi_num)))) > 0 ||
		DatumGetInt32(DirectFunctionCall1(numeric_min_scale, n)) > 2)
		return psprintf("its %s %s is not an amount from %s to %s with at most two decimals",
						rule->key, DatumGetCString(DirectFunctionCall1(numeric_out, n)),
						rule->lo, rule->hi);
	return NULL;
}

/* Why an event's payload is malformed for accounting, or NULL. */
static char *
payload_refusal(const char *name, Jsonb *payload)
{
	char	   *why;

	if (!JB_ROOT_IS_OBJECT(payload))
		return "its payload is not a JSON object";
	if ((why = string_refusal(payload, "task_id")) != NULL)
		return why;
	if (strcmp(name, "TaskCreated") == 0)
	{
		if ((why = string_refusal(payload, "title")) != NULL)
			return why;
		return amount_refusal(payload, &reward_rule);
	}
	if ((why = string_refusal(payload, "assignee_id")) != NULL)
		return why;
	return amount_refusal(payload, strcmp(name, "TaskAssigned") == 0 ? &fee_rule : &reward_rule);
}

/*
 * Judges one event row: the names and versions accounting
 * reads, with payloads fit to become money.  Sets *why for a refusal.
 * Raises nothing for what a payload holds, so that a batch can set the
 * event aside and go on.
 */
static Verdict
judge(HeapTuple tuple, TupleDesc tupdesc, const EventCols *cols, char **why)
{
	char	   *name = TextDatumGetCString(popug_field(tuple, tupdesc, cols->name));
	int32		version = DatumGetInt32(popug_field(tuple, tupdesc, cols->version));
	bool		created = strcmp(name, "TaskCreated") == 0;

	if (!created && strcmp(name, "TaskAssigned") != 0 && strcmp(name, "TaskCompleted") != 0)
		return VERDICT_SKIP;
	if ((*why = popug_event_version_problem(name, version)) != NULL)
		return VERDICT_REFUSE;
	*why = payload_refusal(name, DatumGetJsonbP(popug_field(tuple, tupdesc, cols->payload)));
	return *why == NULL ? VERDICT_APPLY : VERDICT_REFUSE;
}

/*
 * The two plans that take popug.event[] are prepared for that type's OID;
 * after DROP and CREATE EXTENSION (the worker lives on) it is another
 * type, so prepare them again.
 */
static void
forget_stale_plans(Oid event_array)
{
	PopugPlan  *plans[] = {&apply_plan, &unknown_account_plan};

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
 * The billing day a payment applied now counts on: today in
 * popug.timezone, or the day after the last day whose payout has started,
 * if that is later (see the top of 40_accounting.sql).  The payouts
 * started are read through the latest snapshot.
 */
static DateADT
billing_day_open(void)
{
	DateADT		today = popug_today();
	Datum		after_last;
	bool		isnull;

	popug_exec_latest(&after_last_day_plan, NULL, NULL, 1);
	after_last = popug_get(0, 1, &isnull);
	if (!isnull && DatumGetDateADT(after_last) > today)
		return DatumGetDateADT(after_last);
	return today;
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
	Datum		args[3];

	/*
	 * The day is read after the lock is held, in a statement of its own,
	 * through the latest snapshot: a payout start committed before the lock
	 * was granted is seen even if the transaction's snapshot is older.
	 */
	popug_xact_lock(POPUG_LOCK_BILLING, false);
	args[1] = DateADTGetDatum(billing_day_open());
	args[0] = events;
	args[2] = BoolGetDatum(fresh);
	forget_stale_plans(get_array_type(popug_event_type()));

	/*
	 * Payments have no foreign key: an unknown account fails the balance's,
	 * which is all a fresh batch needs to fall back to applying again; then
	 * one anti-join names the account.
	 */
	if (!fresh && popug_exec(&unknown_account_plan, args, NULL, false, 1) > 0)
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

/*
 * A row of popug.event's columns as a popug.event datum.  A row of an SPI
 * result (an anonymous record type) is labelled popug.event; a row already
 * of that type keeps the header heap_copy_tuple_as_datum gives it (its
 * typmod field carries the row type's version).
 */
static Datum
event_datum(HeapTuple tuple, TupleDesc tupdesc, Oid rowtype)
{
	HeapTupleHeader td = DatumGetHeapTupleHeader(heap_copy_tuple_as_datum(tuple, tupdesc));

	if (tupdesc->tdtypeid != rowtype)
	{
		HeapTupleHeaderSetTypeId(td, rowtype);
		HeapTupleHeaderSetTypMod(td, -1);
	}
	return PointerGetDatum(td);
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
 * Applies events in a subtransaction.  On an error about the data, returns
 * false and sets *error; nothing of the events is left behind.  Any other
 * error is raised.
 */
static bool
apply_safely(Datum *rows, int n, bool fresh, uint64 *written, ErrorData **error)
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
	EventCols	cols;
	int			n;
	int			nrows = 0;
	Datum	   *rows;
	int64	   *ids;
	Datum	   *event_ids;
	Oid			rowtype = popug_event_type();
	ErrorData  *error;

	n = (int) popug_consumer_read(CONSUMER, max_events, &tt);
	if (n == 0)
		return 0;
	event_cols(tt->tupdesc, &cols);
	rows = palloc(sizeof(Datum) * n);
	ids = palloc(sizeof(int64) * n);
	event_ids = palloc(sizeof(Datum) * n);
	for (int i = 0; i < n; i++)
	{
		HeapTuple	tuple = tt->vals[i];
		char	   *why;
		Verdict		verdict = judge(tuple, tt->tupdesc, &cols, &why);

		if (verdict == VERDICT_REFUSE)
			popug_dead_letter(CONSUMER, popug_field(tuple, tt->tupdesc, cols.event_id),
							  DatumGetInt64(popug_field(tuple, tt->tupdesc, cols.id)), why);
		if (verdict != VERDICT_APPLY)
			continue;
		rows[nrows] = event_datum(tuple, tt->tupdesc, rowtype);
		ids[nrows] = DatumGetInt64(popug_field(tuple, tt->tupdesc, cols.id));
		event_ids[nrows] = datumCopy(popug_field(tuple, tt->tupdesc, cols.event_id),
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
				popug_dead_letter(CONSUMER, event_ids[i], ids[i], error->message);
	}
	popug_consumer_ack(CONSUMER);
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
 * Applies one row of popug.event's columns (as in tupdesc) that popug read
 * from its own tables (payment_apply's stored event, dead_letter_retry);
 * returns whether it changed money.  A malformed event, or one whose
 * payments fail for its data (an unknown account), is refused with 22023;
 * any other error (a cancel, a deadlock) is raised as it is.  Must run
 * inside a call.
 */
bool
popug_payment_apply_event(HeapTuple tuple, TupleDesc tupdesc)
{
	EventCols	cols;
	char	   *why;
	int64		id;
	Datum		row;
	uint64		written = 0;
	ErrorData  *error;

	event_cols(tupdesc, &cols);
	id = DatumGetInt64(popug_field(tuple, tupdesc, cols.id));
	switch (judge(tuple, tupdesc, &cols, &why))
	{
		case VERDICT_SKIP:
			return false;
		case VERDICT_REFUSE:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("cannot apply event " INT64_FORMAT ": %s", id, why),
					 errhint("Amounts are JSON numbers within the task prices' ranges, ids are strings.")));
			break;
		case VERDICT_APPLY:
			break;
	}
	row = event_datum(tuple, tupdesc, popug_event_type());
	if (!apply_safely(&row, 1, false, &written, &error))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cannot apply event " INT64_FORMAT ": %s", id, error->message),
				 errdetail("Applying it failed with SQLSTATE %s.",
						   unpack_sql_state(error->sqlerrcode)),
				 errhint("The event's payload must name a known account and carry valid amounts.")));
	return written > 0;
}

/*
 * The popug.event row a caller's event must be: the stored row of
 * its id, equal to it in every column; anything else is refused with
 * 22023, so that no caller can make money of a row of their own.  Returns
 * the stored row, as read (SPI_tuptable), and its descriptor.
 */
static HeapTuple
stored_event(Datum given, TupleDesc *tupdesc)
{
	Oid			rowtype = popug_event_type();
	TypeCacheEntry *tc = lookup_type_cache(rowtype, TYPECACHE_EQ_OPR_FINFO);
	bool		isnull;
	Datum		id = GetAttributeByName(DatumGetHeapTupleHeader(given), "id", &isnull);
	HeapTuple	stored;

	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("event is not stored in popug.event"),
				 errdetail("Its id is null."),
				 errhint("Only events popug stored are applied, unchanged.")));
	if (popug_exec(&stored_plan, &id, NULL, true, 1) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("event is not stored in popug.event"),
				 errdetail("No event has id " INT64_FORMAT ".", DatumGetInt64(id)),
				 errhint("Only events popug stored are applied, unchanged.")));
	stored = SPI_tuptable->vals[0];
	*tupdesc = SPI_tuptable->tupdesc;
	if (!OidIsValid(tc->eq_opr_finfo.fn_oid))
		elog(ERROR, "popug.event has no equality operator");
	if (!DatumGetBool(FunctionCall2(&tc->eq_opr_finfo, given,
									event_datum(stored, *tupdesc, rowtype))))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("event " INT64_FORMAT " differs from the one stored in popug.event",
						DatumGetInt64(id)),
				 errhint("Only events popug stored are applied, unchanged.")));
	return stored;
}

PG_FUNCTION_INFO_V1(popug_payment_apply);

/*
 * SQL: popug.payment_apply(e popug.event) RETURNS boolean.  In a read-only
 * transaction (a hot standby) it fails with 25006 before applying, even for
 * an event that is not about money.
 */
Datum
popug_payment_apply(PG_FUNCTION_ARGS)
{
	PopugCall	call;
	HeapTuple	stored;
	TupleDesc	tupdesc;
	bool		changed;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("event must not be null")));
	popug_begin(&call);
	popug_require(&call, POPUG_ROLE_ADMIN | POPUG_ROLE_ACCOUNTANT, true, "apply payments");
	PreventCommandIfReadOnly("popug.payment_apply()");
	stored = stored_event(PointerGetDatum(PG_DETOAST_DATUM_COPY(PG_GETARG_DATUM(0))), &tupdesc);
	changed = popug_payment_apply_event(stored, tupdesc);
	popug_end(&call);
	PG_RETURN_BOOL(changed);
}

PG_FUNCTION_INFO_V1(popug_billing_day_open);

/* SQL: popug.billing_day_open() RETURNS date. */
Datum
popug_billing_day_open(PG_FUNCTION_ARGS)
{
	PopugCall	call;
	DateADT		day;

	popug_begin(&call);
	day = billing_day_open();
	popug_end(&call);
	PG_RETURN_DATEADT(day);
}

PG_FUNCTION_INFO_V1(popug_payments_apply);

/* SQL: popug.payments_apply(max_events) RETURNS bigint: payments written. */
Datum
popug_payments_apply(PG_FUNCTION_ARGS)
{
	PopugCall	call;
	int64		max_events;
	int64		read;
	uint64		written;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("max_events must not be null")));
	max_events = PG_GETARG_INT32(0);
	if (max_events < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_events must not be negative")));
	popug_begin(&call);
	popug_require(&call, POPUG_ROLE_ADMIN | POPUG_ROLE_ACCOUNTANT, true, "apply payments");
	written = drain(max_events, &read);
	popug_end(&call);
	PG_RETURN_INT64((int64) written);
}

/*
 * Defines accounting's setting and registers its consumer with what it
 * does with a replayed dead letter (called from _PG_init).
 */
void
AccountingInit(void)
{
	DefineCustomIntVariable("popug.accounting_batch_size",
							"Events the accounting worker applies per transaction.",
							NULL, &popug_accounting_batch, 1000, 1, 1000000,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	popug_consumer_register(CONSUMER, "popug.payments_apply()",
							popug_payment_apply_event);
}
