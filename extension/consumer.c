/*-------------------------------------------------------------------------
 *
 * consumer.c
 *		Durable consumers of the outbox: reading popug.event in batches and
 *		acknowledging them.
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
 * popug's own consumers (accounting, mailer) register here at load time,
 * with what each does with one event when a dead letter is replayed.  They
 * are read and acknowledged by their C code only (popug_consumer_read/ack);
 * events_read, events_ack and consumer_create refuse them to everyone,
 * superusers included, since events taken from them by hand would never be
 * applied.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "consumer.h"

#include "call.h"

#include "catalog/pg_type.h"
#include "funcapi.h"
#include "utils/builtins.h"

#define MAX_BATCH 1000000
#define MAX_OWN_CONSUMERS 8

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
 * the window's remaining events for every batch.  Generic from the first
 * call: a custom plan on a partition never analyzed (a fresh install)
 * estimates the id range at 0.5% of its rows and scans and sorts the
 * whole rest of the window instead, for each batch.
 */
static PopugPlan batch_plan = {
	"SELECT e.* FROM popug.event e WHERE e.id > $3 AND e.id <= $4"
	" AND pg_visible_in_snapshot(e.txid, $2) AND NOT pg_visible_in_snapshot(e.txid, $1)"
	" ORDER BY e.id LIMIT $5",
	5, {PG_SNAPSHOTOID, PG_SNAPSHOTOID, INT8OID, INT8OID, INT8OID}, CURSOR_OPT_GENERIC_PLAN
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
 * The consumers popug runs itself, registered at load time: what drains
 * each from SQL, and what each does with one event when a dead letter is
 * replayed.
 */
static struct
{
	const char *name;
	const char *drained_by;
	PopugApplyFn apply;
}			own_consumers[MAX_OWN_CONSUMERS];
static int	n_own_consumers = 0;

/*
 * Registers one of popug's own consumers (called from _PG_init by the
 * module that runs it).  drained_by names the SQL function that drains it,
 * for the message that refuses it to others.
 */
void
popug_consumer_register(const char *name, const char *drained_by,
						PopugApplyFn apply)
{
	if (n_own_consumers == MAX_OWN_CONSUMERS)
		elog(ERROR, "too many popug consumers registered");
	own_consumers[n_own_consumers].name = name;
	own_consumers[n_own_consumers].drained_by = drained_by;
	own_consumers[n_own_consumers].apply = apply;
	n_own_consumers++;
}

/* What one of popug's own consumers does with an event; NULL for others. */
PopugApplyFn
popug_consumer_apply_fn(const char *name)
{
	for (int i = 0; i < n_own_consumers; i++)
		if (strcmp(own_consumers[i].name, name) == 0)
			return own_consumers[i].apply;
	return NULL;
}

/*
 * Refuses SQL access to a consumer popug runs itself: events read or
 * acknowledged from outside would never be applied by popug, and one
 * registered from outside could start after events it must apply.
 */
static void
refuse_own_consumer(const char *name, const char *action)
{
	for (int i = 0; i < n_own_consumers; i++)
		if (strcmp(own_consumers[i].name, name) == 0)
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
	popug_require(&call, POPUG_ROLE_ADMIN, true, "create event consumers");
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
	popug_require(&call, POPUG_ROLE_ADMIN, true, "read events");
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
	popug_require(&call, POPUG_ROLE_ADMIN, true, "acknowledge events");
	size = popug_consumer_ack(name);
	popug_end(&call);
	PG_RETURN_INT64(size);
}
