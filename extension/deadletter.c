/*-------------------------------------------------------------------------
 *
 * deadletter.c
 *		What a consumer cannot process: the subtransaction helper that sets
 *		it aside, dead letters, and replaying them.
 *
 * popug_try is the one subtransaction helper: it sets aside errors about
 * the data (a dead letter) and raises every other error as it came, with
 * its SQLSTATE.  Replaying a dead letter hands the event to the apply
 * function its consumer registered (popug_consumer_register); this module
 * names no consumer.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "deadletter.h"

#include "call.h"
#include "consumer.h"
#include "events.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/typcache.h"

/* A dead letter with its copy of the event (stored, so still there). */
static PopugPlan dead_letter_plan = {
	"INSERT INTO popug.dead_letter (consumer, event_id, event, error, event_name, event_version, "
	"  producer, aggregate_id, occurred_at, payload) "
	"SELECT $1, $2, e.id, $4, e.event_name, e.event_version, e.producer, e.aggregate_id, "
	"  e.occurred_at, e.payload FROM popug.event e WHERE e.id = $3 "
	"ON CONFLICT (consumer, event_id) DO UPDATE SET error = EXCLUDED.error, "
	"  failed_at = now(), retried_at = NULL",
	4, {TEXTOID, UUIDOID, INT8OID, TEXTOID}
};

/*
 * Whether an error is about the data being processed, which a consumer
 * sets aside as a dead letter: a data exception (class 22), an
 * integrity constraint violation (23), or a row naming something unknown
 * (P0002).  Anything else (a cancel, a timeout, a serialization failure or
 * deadlock, a lock not available, running out of resources, an internal
 * error) is about the run, not the event, and must reach the caller.
 */
bool
popug_is_data_error(int sqlerrcode)
{
	int			class = ERRCODE_TO_CATEGORY(sqlerrcode);

	return class == ERRCODE_DATA_EXCEPTION ||
		class == ERRCODE_INTEGRITY_CONSTRAINT_VIOLATION ||
		sqlerrcode == ERRCODE_NO_DATA_FOUND;
}

/*
 * Runs fn(arg) in a subtransaction.  On an error set_aside(sqlstate)
 * accepts, rolls it back, sets *error to the error, SQLSTATE and all, and
 * returns false: nothing fn did is left behind.  Any other error is rolled
 * back and raised again as it was.  The SPI connection and kept plans of
 * the caller survive.
 */
bool
popug_try_if(PopugTryFn fn, void *arg, ErrorData **error,
			 bool (*set_aside) (int sqlerrcode))
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	volatile bool ok = true;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		fn(arg);
		ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
		if (!set_aside(edata->sqlerrcode))
			ReThrowError(edata);
		*error = edata;
		ok = false;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	CurrentResourceOwner = owner;
	return ok;
}

/* popug_try_if setting aside the errors about the data (dead letters). */
bool
popug_try(PopugTryFn fn, void *arg, ErrorData **error)
{
	return popug_try_if(fn, arg, error, popug_is_data_error);
}

/* Records an event a consumer could not process.  Runs inside a call. */
void
popug_dead_letter(const char *consumer, Datum event_id, int64 event,
				  const char *error)
{
	Datum		args[4];

	args[0] = CStringGetTextDatum(consumer);
	args[1] = event_id;
	args[2] = Int64GetDatum(event);
	args[3] = CStringGetTextDatum(error);
	popug_exec(&dead_letter_plan, args, NULL, false, 0);
}

/* ---- replaying dead letters ---- */

/*
 * The dead letters of an event, each with its copy of the event in
 * popug.event's columns (txid NULL: it only places an event in the stream).
 */
static PopugPlan dead_letters_plan = {
	"SELECT d.consumer, d.event, d.event_id, d.event_name, d.event_version, d.producer, "
	"  d.aggregate_id, d.occurred_at, d.payload, NULL::xid8 "
	"FROM popug.dead_letter d "
	"WHERE d.event_id = $1 AND d.retried_at IS NULL ORDER BY d.consumer FOR UPDATE",
	1, {UUIDOID}
};
static PopugPlan retried_plan = {
	"UPDATE popug.dead_letter SET retried_at = now() WHERE consumer = $1 AND event_id = $2",
	2, {TEXTOID, UUIDOID}
};

PG_FUNCTION_INFO_V1(popug_dead_letter_retry);

/*
 * SQL: popug.dead_letter_retry(event_id) RETURNS integer: replays a dead
 * event to each consumer that set it aside; returns how many did.  If it
 * fails again, the error is raised and nothing changes.
 */
Datum
popug_dead_letter_retry(PG_FUNCTION_ARGS)
{
	PopugCall	call;
	Datum		event_id;
	uint64		n;
	SPITupleTable *tt;
	TupleDesc	event_desc;
	Datum	   *values;
	bool	   *nulls;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("event_id must not be null")));
	event_id = PG_GETARG_DATUM(0);
	popug_begin(&call);
	popug_require(&call, POPUG_ROLE_ADMIN, true, "replay dead letters");
	n = popug_exec(&dead_letters_plan, &event_id, NULL, false, 0);
	if (n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("no dead letter waits for event %s",
						DatumGetCString(DirectFunctionCall1(uuid_out, event_id)))));
	tt = SPI_tuptable;
	event_desc = lookup_rowtype_tupdesc(popug_event_type(), -1);
	values = palloc(sizeof(Datum) * event_desc->natts);
	nulls = palloc(sizeof(bool) * event_desc->natts);
	for (uint64 i = 0; i < n; i++)
	{
		char	   *consumer = TextDatumGetCString(popug_field(tt->vals[i], tt->tupdesc, 1));
		Datum		args[2];
		PopugApplyFn apply;

		/* the event's columns follow the consumer's name */
		for (int c = 0; c < event_desc->natts; c++)
			values[c] = SPI_getbinval(tt->vals[i], tt->tupdesc, c + 2, &nulls[c]);
		apply = popug_consumer_apply_fn(consumer);
		if (apply == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("consumer \"%s\" has no replay handler", consumer)));
		apply(heap_form_tuple(event_desc, values, nulls), event_desc);
		args[0] = CStringGetTextDatum(consumer);
		args[1] = event_id;
		popug_exec(&retried_plan, args, NULL, false, 0);
	}
	ReleaseTupleDesc(event_desc);
	popug_end(&call);
	PG_RETURN_INT32((int32) n);
}
