/*-------------------------------------------------------------------------
 *
 * events.c
 *		The transactional outbox (SPEC 3): appending events and durable
 *		consumers that read them in batches.
 *
 * Appending is one INSERT in the caller's transaction; it never locks or
 * updates an existing row, and never NOTIFYs: the commit sets the notifier
 * and accounting workers' latches (popug_wake_at_commit), and the notifier
 * coalesces NOTIFY popug_events.
 *
 * A consumer's position is a snapshot, snap_lo: every event whose writing
 * transaction is visible in it has been consumed.  Reading opens a window up
 * to the current snapshot, snap_hi, and hands out the window's events (those
 * visible in snap_hi and not in snap_lo) in id order, max_events at a time;
 * last_id is the position inside the window.  Because the window is defined
 * by visibility, not by id, an event whose transaction commits after a
 * later-numbered one is never skipped, and events of one aggregate, written
 * under that aggregate's row lock, come in order.  The batch handed out is
 * remembered (batch_last_id) and handed out again until acknowledged.  The
 * consumer row is locked FOR UPDATE by read and ack, so readers of one
 * consumer queue up instead of sharing a batch.
 *
 * popug's own consumers (accounting, mailer) are read and acknowledged by
 * their C code only (popug_consumer_read/ack); events_read, events_ack and
 * consumer_create refuse them to everyone, superusers included, since
 * events taken from them by hand would never be applied.
 *
 * popug_try is the one subtransaction helper: it sets aside errors about
 * the data (a dead letter) and raises every other error as it came.
 *
 *-------------------------------------------------------------------------
 */
#include "popug.h"
#include "queries.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"
#include "utils/resowner.h"
#include "utils/typcache.h"

#define MAX_BATCH 1000000

/* ---- building a jsonb payload ---- */

/* Starts a JSON object. */
void
pj_begin(PopugJson *js)
{
	js->state = NULL;
	pushJsonbValue(&js->state, WJB_BEGIN_OBJECT, NULL);
}

/* Adds a key and a scalar value to the object. */
static void
pj_put(PopugJson *js, const char *key, JsonbValue *val)
{
	JsonbValue	k;

	k.type = jbvString;
	k.val.string.val = (char *) key;
	k.val.string.len = strlen(key);
	pushJsonbValue(&js->state, WJB_KEY, &k);
	pushJsonbValue(&js->state, WJB_VALUE, val);
}

/* Adds a string member; NULL becomes JSON null. */
void
pj_text(PopugJson *js, const char *key, const char *value)
{
	JsonbValue	v;

	if (value == NULL)
		v.type = jbvNull;
	else
	{
		v.type = jbvString;
		v.val.string.val = (char *) value;
		v.val.string.len = strlen(value);
	}
	pj_put(js, key, &v);
}

/* Adds a uuid as a string member; NULL becomes JSON null. */
void
pj_uuid(PopugJson *js, const char *key, const pg_uuid_t *value)
{
	pj_text(js, key, value == NULL ? NULL :
			DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(value))));
}

/* Adds a numeric member (money keeps its exact decimal value). */
void
pj_numeric(PopugJson *js, const char *key, Datum numeric)
{
	JsonbValue	v;

	v.type = jbvNumeric;
	v.val.numeric = DatumGetNumeric(numeric);
	pj_put(js, key, &v);
}

/* Adds an integer member. */
void
pj_int(PopugJson *js, const char *key, int64 value)
{
	pj_numeric(js, key, DirectFunctionCall1(int8_numeric, Int64GetDatum(value)));
}

/* Adds a date member as YYYY-MM-DD, whatever the session's DateStyle. */
void
pj_date(PopugJson *js, const char *key, Datum date)
{
	pj_text(js, key, JsonEncodeDateTime(NULL, date, DATEOID, NULL));
}

/* Ends the object and returns it as jsonb. */
Jsonb *
pj_end(PopugJson *js)
{
	return JsonbValueToJsonb(pushJsonbValue(&js->state, WJB_END_OBJECT, NULL));
}

/* How popug.payload() turns a value of one argument's type into JSON. */
typedef enum PayloadKind
{
	PK_STRING,					/* the type's output function, as a string */
	PK_NUMERIC,					/* numeric as itself */
	PK_INTEGER,					/* int2, int4, int8 as a number */
	PK_BOOL,
	PK_DATETIME					/* date, timestamp[tz] in ISO 8601 */
} PayloadKind;

/* popug.payload()'s per-call-site cache: each argument's type and kind. */
typedef struct PayloadArgs
{
	int			nargs;
	Oid			types[FUNC_MAX_ARGS];
	PayloadKind kinds[FUNC_MAX_ARGS];
	FmgrInfo	out[FUNC_MAX_ARGS];
} PayloadArgs;

/*
 * Resolves popug.payload()'s argument types once per call site: what
 * jsonb_build_object() looks up for every value of every row.
 */
static PayloadArgs *
payload_args(FunctionCallInfo fcinfo)
{
	PayloadArgs *pa = (PayloadArgs *) fcinfo->flinfo->fn_extra;
	int			nargs = PG_NARGS();

	if (pa != NULL)
		return pa;
	if (nargs % 2 != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("popug.payload() takes key, value pairs"),
				 errdetail("It was given %d arguments.", nargs)));
	pa = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(PayloadArgs));
	pa->nargs = nargs;
	for (int i = 0; i < nargs; i++)
	{
		Oid			type = getBaseType(get_fn_expr_argtype(fcinfo->flinfo, i));
		Oid			outfn;
		bool		varlena;

		if (!OidIsValid(type) || (i % 2 == 0 && type != TEXTOID && type != UNKNOWNOID))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("popug.payload() keys must be text")));
		if (type_is_array(type) || type_is_rowtype(type) ||
			type == JSONOID || type == JSONBOID)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("popug.payload() takes scalar values, not %s",
							format_type_be(type))));
		pa->types[i] = type;
		switch (type)
		{
			case NUMERICOID:
				pa->kinds[i] = PK_NUMERIC;
				break;
			case INT2OID:
			case INT4OID:
			case INT8OID:
				pa->kinds[i] = PK_INTEGER;
				break;
			case BOOLOID:
				pa->kinds[i] = PK_BOOL;
				break;
			case DATEOID:
			case TIMESTAMPOID:
			case TIMESTAMPTZOID:
				pa->kinds[i] = PK_DATETIME;
				break;
			default:
				pa->kinds[i] = PK_STRING;
				getTypeOutputInfo(type, &outfn, &varlena);
				fmgr_info_cxt(outfn, &pa->out[i], fcinfo->flinfo->fn_mcxt);
				break;
		}
	}
	fcinfo->flinfo->fn_extra = pa;
	return pa;
}

PG_FUNCTION_INFO_V1(popug_payload);

/*
 * SQL: popug.payload(VARIADIC "any") RETURNS jsonb: jsonb_build_object()
 * for scalar values, with the same output, made for event payloads built
 * row by row (argument types are resolved once, numerics go in as they
 * are instead of through their text form).
 */
Datum
popug_payload(PG_FUNCTION_ARGS)
{
	PayloadArgs *pa = payload_args(fcinfo);
	PopugJson	js;

	pj_begin(&js);
	for (int i = 0; i < pa->nargs; i += 2)
	{
		Datum		value = PG_GETARG_DATUM(i + 1);
		const char *key;
		JsonbValue	v;
		Numeric		num;

		if (PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("popug.payload() keys must not be null")));
		key = pa->types[i] == UNKNOWNOID ? DatumGetCString(PG_GETARG_DATUM(i))
			: text_to_cstring(PG_GETARG_TEXT_PP(i));
		if (PG_ARGISNULL(i + 1))
		{
			pj_text(&js, key, NULL);
			continue;
		}
		switch (pa->kinds[i + 1])
		{
			case PK_NUMERIC:
				num = DatumGetNumeric(value);
				/* NaN and infinities are strings, as jsonb_build_object has them */
				if (numeric_is_nan(num) || numeric_is_inf(num))
					pj_text(&js, key, DatumGetCString(DirectFunctionCall1(numeric_out,
																		  NumericGetDatum(num))));
				else
					pj_numeric(&js, key, NumericGetDatum(num));
				break;
			case PK_INTEGER:
				pj_int(&js, key, pa->types[i + 1] == INT8OID ? DatumGetInt64(value)
					   : pa->types[i + 1] == INT4OID ? DatumGetInt32(value)
					   : DatumGetInt16(value));
				break;
			case PK_BOOL:
				v.type = jbvBool;
				v.val.boolean = DatumGetBool(value);
				pj_put(&js, key, &v);
				break;
			case PK_DATETIME:
				pj_text(&js, key, JsonEncodeDateTime(NULL, value, pa->types[i + 1], NULL));
				break;
			case PK_STRING:
				pj_text(&js, key, OutputFunctionCall(&pa->out[i + 1], value));
				break;
		}
	}
	PG_RETURN_JSONB_P(pj_end(&js));
}

/* ---- appending ---- */

static PopugPlan append_plan = {
	POPUG_SQL_EVENT_APPEND,
	5, {TEXTOID, INT4OID, TEXTOID, UUIDOID, JSONBOID}
};

/*
 * Notes that the current transaction wrote events, so that the workers
 * that follow the stream are woken when it commits.  Set-based writers that
 * insert into popug.event themselves call this too.
 */
void
popug_events_written(void)
{
	popug_wake_at_commit(POPUG_WORKER_NOTIFIER);
	popug_wake_at_commit(POPUG_WORKER_ACCOUNTING);
}

/*
 * Appends one event in the current transaction and returns its id.  Must
 * run inside popug_begin/popug_end (SPI connected, as the owner).
 */
int64
popug_event_append(const char *name, int version, const char *producer,
				   const pg_uuid_t *aggregate_id, Jsonb *payload)
{
	Datum		args[5];
	char		nulls[5] = "     ";
	bool		isnull;

	args[0] = CStringGetTextDatum(name);
	args[1] = Int32GetDatum(version);
	args[2] = CStringGetTextDatum(producer);
	args[3] = aggregate_id ? UUIDPGetDatum(aggregate_id) : (Datum) 0;
	nulls[3] = aggregate_id ? ' ' : 'n';
	args[4] = JsonbPGetDatum(payload);
	popug_exec(&append_plan, args, nulls, false, 1);
	popug_events_written();
	return DatumGetInt64(popug_get(0, 1, &isnull));
}

PG_FUNCTION_INFO_V1(popug_event_append_sql);

/* SQL: popug.event_append(...), the same path for the extension owner. */
Datum
popug_event_append_sql(PG_FUNCTION_ARGS)
{
	PopugCall	call;
	int64		id;

	for (int i = 0; i < 5; i++)
		if (i != 3 && PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("only aggregate_id may be null in popug.event_append")));
	popug_begin(&call);
	id = popug_event_append(text_to_cstring(PG_GETARG_TEXT_PP(0)),
							PG_GETARG_INT32(1),
							text_to_cstring(PG_GETARG_TEXT_PP(2)),
							PG_ARGISNULL(3) ? NULL : PG_GETARG_UUID_P(3),
							PG_GETARG_JSONB_P(4));
	popug_end(&call);
	PG_RETURN_INT64(id);
}

/* ---- consumers ---- */

/*
 * The current snapshot as a pg_snapshot, with the current transaction's
 * own xid (if any) counted as running: events this transaction writes
 * after reading must not be taken as consumed when it commits.
 */
#define CURRENT_SNAPSHOT_SQL \
	"SELECT CASE WHEN x IS NULL OR NOT pg_visible_in_snapshot(x, s) THEN s " \
	"ELSE (least(pg_snapshot_xmin(s), x)::text || ':' || pg_snapshot_xmax(s)::text || ':' " \
	"   || (SELECT string_agg(v::text, ',' ORDER BY v) " \
	"         FROM (SELECT pg_snapshot_xip(s) AS v UNION SELECT x) q))::pg_snapshot END " \
	"AS s FROM (SELECT pg_current_snapshot() AS s, pg_current_xact_id_if_assigned() AS x) t"

static PopugPlan consumer_insert_plan = {
	"INSERT INTO popug.consumer (name, snap_lo) "
	"SELECT $1, CASE WHEN $2 THEN '1:1:'::pg_snapshot ELSE (" CURRENT_SNAPSHOT_SQL ") END "
	"ON CONFLICT (name) DO NOTHING",
	2, {TEXTOID, BOOLOID}
};
static PopugPlan consumer_lock_plan = {
	"SELECT snap_lo, snap_hi, last_id, win_max_id, batch_last_id, batch_size "
	"FROM popug.consumer WHERE name = $1 FOR UPDATE",
	1, {TEXTOID}
};
static PopugPlan window_open_plan = {
	"WITH h AS (" CURRENT_SNAPSHOT_SQL ") "
	"SELECT h.s, (SELECT min(e.id) FROM popug.event e WHERE "
	"             e.txid >= pg_snapshot_xmin($1) AND e.txid < pg_snapshot_xmax(h.s) "
	"             AND pg_visible_in_snapshot(e.txid, h.s) AND NOT pg_visible_in_snapshot(e.txid, $1)), "
	"       (SELECT max(e.id) FROM popug.event e WHERE "
	"             e.txid >= pg_snapshot_xmin($1) AND e.txid < pg_snapshot_xmax(h.s) "
	"             AND pg_visible_in_snapshot(e.txid, h.s) AND NOT pg_visible_in_snapshot(e.txid, $1)) "
	"FROM h",
	1, {PG_SNAPSHOTOID}
};
static PopugPlan window_set_plan = {
	"UPDATE popug.consumer SET snap_hi = $2, last_id = $3, win_max_id = $4 WHERE name = $1",
	4, {TEXTOID, PG_SNAPSHOTOID, INT8OID, INT8OID}
};
static PopugPlan window_skip_plan = {
	"UPDATE popug.consumer SET snap_lo = $2 WHERE name = $1",
	2, {TEXTOID, PG_SNAPSHOTOID}
};
static PopugPlan window_close_plan = {
	"UPDATE popug.consumer SET snap_lo = snap_hi, snap_hi = NULL, last_id = NULL, "
	"win_max_id = NULL WHERE name = $1",
	1, {TEXTOID}
};
/*
 * The next batch of the window (snap_lo $1, snap_hi $2], after id $3 up to
 * its last id $4.  Only the id range is indexable: the kept generic plan
 * then walks the primary key and stops at the limit, where a txid range
 * beside it (the whole rest of the window) made it collect and sort all of
 * the window's remaining events for every batch.
 */
static PopugPlan batch_plan = {
	"SELECT e.* FROM popug.event e WHERE e.id > $3 AND e.id <= $4"
	" AND pg_visible_in_snapshot(e.txid, $2) AND NOT pg_visible_in_snapshot(e.txid, $1)"
	" ORDER BY e.id LIMIT $5",
	5, {PG_SNAPSHOTOID, PG_SNAPSHOTOID, INT8OID, INT8OID, INT8OID}
};
static PopugPlan batch_set_plan = {
	"UPDATE popug.consumer SET batch_last_id = $2, batch_size = $3 WHERE name = $1",
	3, {TEXTOID, INT8OID, INT4OID}
};
static PopugPlan ack_plan = {
	"UPDATE popug.consumer SET acked_at = now(), batch_last_id = NULL, batch_size = NULL, "
	"  last_id = CASE WHEN batch_last_id >= win_max_id THEN NULL ELSE batch_last_id END, "
	"  snap_lo = CASE WHEN batch_last_id >= win_max_id THEN snap_hi ELSE snap_lo END, "
	"  snap_hi = CASE WHEN batch_last_id >= win_max_id THEN NULL ELSE snap_hi END, "
	"  win_max_id = CASE WHEN batch_last_id >= win_max_id THEN NULL ELSE win_max_id END "
	"WHERE name = $1",
	1, {TEXTOID}
};
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

/* Checks a consumer name: 1 to 63 characters, letters, digits, _ and -. */
static void
check_consumer_name(const char *name)
{
	size_t		len = strlen(name);

	if (len == 0 || len > 63 || strspn(name, "abcdefghijklmnopqrstuvwxyz"
									   "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") != len)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid consumer name \"%s\"", name),
				 errhint("Use 1 to 63 letters, digits, underscores or hyphens.")));
}

/*
 * The consumers popug runs itself: what drains each from SQL, and what
 * each does with one event when a dead letter is replayed.
 */
static const struct
{
	const char *consumer;
	const char *drained_by;
	bool		(*apply) (HeapTuple event, TupleDesc tupdesc);
}			own_consumers[] =
{
	{"accounting", "popug.payments_apply()", popug_payment_apply_event},
	{"mailer", "popug.mail_dispatch()", popug_mail_apply_event},
};

/*
 * Refuses SQL access to a consumer popug runs itself (SPEC 9): events read
 * or acknowledged from outside would never be applied by popug, and one
 * registered from outside could start after events it must apply.
 */
static void
refuse_own_consumer(const char *name, const char *action)
{
	for (int i = 0; i < lengthof(own_consumers); i++)
		if (strcmp(own_consumers[i].consumer, name) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("permission denied to %s popug's own event consumer \"%s\"", action, name),
					 errdetail("\"%s\" is popug's own consumer: only its worker and %s use it.",
							   name, own_consumers[i].drained_by),
					 errhint("Register a consumer of your own with popug.consumer_create().")));
}

/* The text argument argno of a call; 22004 when it is NULL. */
static char *
text_arg(FunctionCallInfo fcinfo, int argno, const char *name)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", name)));
	return text_to_cstring(PG_GETARG_TEXT_PP(argno));
}

/*
 * Registers one of popug's own consumers if missing, at the start of the
 * stream.  Runs inside popug_begin/popug_end.
 */
void
popug_consumer_ensure(const char *name)
{
	Datum		args[2] = {CStringGetTextDatum(name), BoolGetDatum(true)};

	popug_exec(&consumer_insert_plan, args, NULL, false, 0);
}

/*
 * Whether an error is about the data being processed, which a consumer
 * sets aside as a dead letter (SPEC 9): a data exception (class 22), an
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

PG_FUNCTION_INFO_V1(popug_consumer_create);

/* SQL: popug.consumer_create(name, from_start) */
Datum
popug_consumer_create(PG_FUNCTION_ARGS)
{
	PopugCall	call;
	char	   *name = text_arg(fcinfo, 0, "consumer name");
	Datum		args[2];

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("from_start must not be null")));
	check_consumer_name(name);
	refuse_own_consumer(name, "create");
	popug_begin(&call);
	popug_require(&call, POPUG_ADMIN, true, "create event consumers");
	args[0] = CStringGetTextDatum(name);
	args[1] = PG_GETARG_DATUM(1);
	if (popug_exec(&consumer_insert_plan, args, NULL, false, 0) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("event consumer \"%s\" already exists", name)));
	popug_end(&call);
	PG_RETURN_VOID();
}

/*
 * Locks the consumer's row and loads its position into pos[]: snap_lo,
 * snap_hi, last_id, win_max_id, batch_last_id, batch_size.
 */
static void
consumer_lock(Datum name, Datum *pos, bool *isnull)
{
	if (popug_exec(&consumer_lock_plan, &name, NULL, false, 1) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("event consumer \"%s\" does not exist",
						TextDatumGetCString(name)),
				 errhint("Register it with popug.consumer_create().")));
	for (int i = 0; i < 6; i++)
		pos[i] = popug_get(0, i + 1, &isnull[i]);
	if (isnull[0] || isnull[4] != isnull[5])
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("event consumer \"%s\" has an inconsistent position",
						TextDatumGetCString(name))));
}

/*
 * Hands out the consumer's next batch, the same one again until it is
 * acknowledged: up to max_events rows of popug.event in id order, left in
 * *batch; returns how many.  Runs inside a call; the caller decides who
 * may read which consumer.
 */
uint64
popug_consumer_read(const char *consumer, int32 max_events, SPITupleTable **batch)
{
	Datum		name = CStringGetTextDatum(consumer);
	Datum		pos[6];
	bool		isnull[6];
	Datum		args[5];
	int64		limit = max_events;
	uint64		n;

	if (max_events < 1 || max_events > MAX_BATCH)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_events must be between 1 and %d", MAX_BATCH)));
	*batch = NULL;
	consumer_lock(name, pos, isnull);

	if (!isnull[4])
	{
		/* an unacknowledged batch: hand it out again, whatever max_events */
		limit = DatumGetInt32(pos[5]);
		pos[3] = pos[4];
	}
	else if (isnull[1])
	{
		/* open a window up to the current snapshot */
		popug_exec(&window_open_plan, &pos[0], NULL, true, 1);
		pos[1] = popug_get(0, 1, &isnull[1]);
		pos[2] = popug_get(0, 2, &isnull[2]);
		pos[3] = popug_get(0, 3, &isnull[3]);
		if (isnull[2])
		{
			/* nothing committed since snap_lo: move snap_lo up, no batch */
			args[0] = name;
			args[1] = pos[1];
			popug_exec(&window_skip_plan, args, NULL, false, 0);
			return 0;
		}
		pos[2] = Int64GetDatum(DatumGetInt64(pos[2]) - 1);
		args[0] = name;
		args[1] = pos[1];
		args[2] = pos[2];
		args[3] = pos[3];
		popug_exec(&window_set_plan, args, NULL, false, 0);
	}
	else if (isnull[2] || isnull[3])
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("event consumer \"%s\" has an inconsistent position", consumer)));

	args[0] = pos[0];
	args[1] = pos[1];
	args[2] = pos[2];
	args[3] = pos[3];
	args[4] = Int64GetDatum(limit);
	n = popug_exec(&batch_plan, args, NULL, true, 0);
	*batch = SPI_tuptable;

	if (isnull[4] && n == 0)
	{
		/* the window's events are gone (truncated): close it */
		popug_exec(&window_close_plan, &name, NULL, false, 0);
	}
	else if (isnull[4])
	{
		args[0] = name;
		args[1] = popug_field((*batch)->vals[n - 1], (*batch)->tupdesc, 1);
		args[2] = Int32GetDatum((int32) n);
		popug_exec(&batch_set_plan, args, NULL, false, 0);
	}
	return n;
}

/*
 * Acknowledges the batch the consumer read last; returns its size (0 when
 * none is waiting).  Runs inside a call.
 */
int64
popug_consumer_ack(const char *consumer)
{
	Datum		name = CStringGetTextDatum(consumer);
	Datum		pos[6];
	bool		isnull[6];

	consumer_lock(name, pos, isnull);
	if (isnull[4])
		return 0;
	popug_exec(&ack_plan, &name, NULL, false, 0);
	return DatumGetInt32(pos[5]);
}

PG_FUNCTION_INFO_V1(popug_events_read);

/* SQL: popug.events_read(consumer, max_events) RETURNS SETOF popug.event */
Datum
popug_events_read(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	PopugCall	call;
	char	   *name = text_arg(fcinfo, 0, "consumer");
	SPITupleTable *batch;
	uint64		n;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("max_events must not be null")));
	refuse_own_consumer(name, "read");
	InitMaterializedSRF(fcinfo, 0);
	popug_begin(&call);
	popug_require(&call, POPUG_ADMIN, true, "read events");
	n = popug_consumer_read(name, PG_GETARG_INT32(1), &batch);
	for (uint64 i = 0; i < n; i++)
		tuplestore_puttuple(rsinfo->setResult, batch->vals[i]);
	popug_end(&call);
	PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(popug_events_ack);

/* SQL: popug.events_ack(consumer) RETURNS bigint, the batch's size */
Datum
popug_events_ack(PG_FUNCTION_ARGS)
{
	PopugCall	call;
	char	   *name = text_arg(fcinfo, 0, "consumer");
	int64		size;

	refuse_own_consumer(name, "acknowledge");
	popug_begin(&call);
	popug_require(&call, POPUG_ADMIN, true, "acknowledge events");
	size = popug_consumer_ack(name);
	popug_end(&call);
	PG_RETURN_INT64(size);
}

/* The composite type popug.event. */
Oid
popug_event_type(void)
{
	return get_rel_type_id(get_relname_relid("event", get_namespace_oid("popug", false)));
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
	popug_require(&call, POPUG_ADMIN, true, "replay dead letters");
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
		int			h;

		/* the event's columns follow the consumer's name */
		for (int c = 0; c < event_desc->natts; c++)
			values[c] = SPI_getbinval(tt->vals[i], tt->tupdesc, c + 2, &nulls[c]);
		for (h = 0; h < lengthof(own_consumers); h++)
			if (strcmp(own_consumers[h].consumer, consumer) == 0)
				break;
		if (h == lengthof(own_consumers))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("consumer \"%s\" has no replay handler", consumer)));
		own_consumers[h].apply(heap_form_tuple(event_desc, values, nulls), event_desc);
		args[0] = CStringGetTextDatum(consumer);
		args[1] = event_id;
		popug_exec(&retried_plan, args, NULL, false, 0);
	}
	ReleaseTupleDesc(event_desc);
	popug_end(&call);
	PG_RETURN_INT32((int32) n);
}
