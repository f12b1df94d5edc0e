/*-------------------------------------------------------------------------
 *
 * retention.c
 *		Bounded storage of popug.event: partitions by id range,
 *		made ahead of the ids handed out and dropped whole once old and
 *		consumed, as PgQ rotates its tables.
 *
 * popug.event is partitioned by RANGE (id); event_default holds the ids no
 * partition covers.  Each run of the maintenance (popug.event_maintenance(),
 * and the scheduler worker once a minute):
 *
 *	- makes the next partition, from the end of the last one (or a little
 *	  past the ids handed out, when they have outrun the partitions), unless
 *	  it already lies ahead.  Its width is what the current partition's rate
 *	  fills in the period, a quarter of popug.event_retention (a day when it
 *	  is 0, two minutes at least, so that the scheduler's run a minute apart
 *	  never lets the ids outrun it), within [MIN_WIDTH, MAX_WIDTH], so
 *	  partitions age out in steps of about a quarter of the retention;
 *	- moves the ids on to the partition ahead (setval of the sequence, under
 *	  popug.event's SHARE lock, so that no id is being drawn meanwhile) once
 *	  the partition they fill has held events for the period, and at once
 *	  when they fill event_default: no partition takes events for longer,
 *	  so a quiet database, whose partition would take days to fill, ages
 *	  out too.  Event ids then skip the rest of that partition;
 *	- empties (TRUNCATE) and drops each partition that lies wholly below
 *	  the ids handed out, whose newest event (by id) is older than
 *	  popug.event_retention, and whose events every consumer has consumed:
 *	  its newest txid precedes the xmin of every consumer's acknowledged
 *	  position (snap_lo, the snapshot events_read cuts batches by), so a
 *	  consumer that lags keeps its events; event_default is emptied on the
 *	  same terms.
 *
 * Nothing is deleted row by row, so nothing is left for vacuum.  Logical
 * replication clients of popug_events need no rows: a slot keeps the WAL
 * of what it has not confirmed, and drops and truncations are not
 * published.
 *
 * Locking: runs serialize on popug's lock 4.  Each change (see change())
 * is tried under a short lock_timeout, so that producers queued behind it
 * wait no longer than that, and left for the next run when it times out (a
 * long transaction, a report or a pg_dump holds it off).  Whether a
 * partition is consumed is checked again under its lock.  An event is
 * written under popug.event's lock, which its transaction keeps, and its
 * id is drawn before its partition is locked: one drawn in a partition
 * being emptied is written after the TRUNCATE, into the emptied partition,
 * whose drop then waits for that transaction; the next run finds it there.
 * No partition is attached under a transaction that has written events
 * (see change()).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "retention.h"

#include "call.h"
#include "deadletter.h"
#include "lock.h"

#include <limits.h>
#include <math.h>

#include "access/htup_details.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/snapmgr.h"

#define MIN_WIDTH	10000
#define MAX_WIDTH	100000000
#define ID_SLACK	1000		/* ids a new partition leaves to the default */
#define LOCK_TIMEOUT "100ms"
#define DEFAULT_PERIOD_S (24 * 3600)	/* partition period when nothing expires */
#define MIN_PERIOD_S 120		/* two scheduler runs: a partition made half
								 * way through its predecessor is not outrun */

int			popug_event_retention = 7 * 24 * 3600;

/* Defines popug.event_retention. */
void
RetentionInit(void)
{
	DefineCustomIntVariable("popug.event_retention",
							"How long events are kept; 0 keeps every event.",
							"An event is removed, with its partition, once it is older than this and every consumer has acknowledged it.",
							&popug_event_retention, 7 * 24 * 3600, 0, INT_MAX,
							PGC_SUSET, GUC_UNIT_S, NULL, NULL, NULL);
}


/* Waits for the transactions that have written events; holds off new ones. */
static PopugPlan writers_plan = {"LOCK TABLE popug.event IN SHARE MODE", 0, {}};

/* The next id to $1 if it is below: ids drawn after are $1 and on. */
static PopugPlan move_plan = {
	"SELECT pg_catalog.setval('popug.event_id_seq', $1 - 1)"
	"  FROM popug.event_id_seq WHERE last_value < $1 - 1",
	1, {INT8OID}
};

/* Whether the oldest event of ids [$1, $2) is older than $3 seconds. */
static PopugPlan aged_plan = {
	"SELECT occurred_at < pg_catalog.now() - pg_catalog.make_interval(secs => $3)"
	"  FROM popug.event WHERE id >= $1 AND id < $2 ORDER BY id LIMIT 1",
	3, {INT8OID, INT8OID, FLOAT8OID}
};

/* The partitions of popug.event with their bounds [lo, hi), in id order. */
static PopugPlan partitions_plan = {
	"SELECT c.relname::text, b[1]::bigint, b[2]::bigint"
	"  FROM pg_catalog.pg_inherits i JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid,"
	"       LATERAL pg_catalog.regexp_match(pg_catalog.pg_get_expr(c.relpartbound, c.oid),"
	"               'FROM \\(''?(-?[0-9]+)''?\\) TO \\(''?(-?[0-9]+)''?\\)') b"
	" WHERE i.inhparent = 'popug.event'::pg_catalog.regclass AND b IS NOT NULL"
	" ORDER BY 2",
	0, {}
};

/*
 * The next id to be handed out, and the ids per second since the first
 * event at or after $1 (NULL if none, or no time passed).
 */
static PopugPlan rate_plan = {
	"SELECT n.next, (n.next - f.id) / NULLIF(EXTRACT(EPOCH FROM pg_catalog.now() - f.occurred_at), 0)::float8"
	"  FROM (SELECT last_value + CASE WHEN is_called THEN 1 ELSE 0 END AS next"
	"          FROM popug.event_id_seq) n"
	"  LEFT JOIN LATERAL (SELECT id, occurred_at FROM popug.event WHERE id >= $1"
	"                      ORDER BY id LIMIT 1) f ON true",
	1, {INT8OID}
};

/*
 * Whether the events of partition %s may go: every one consumed by every
 * consumer ($1 false skips the age test), and the newest older than $2
 * seconds; $3 when it has none.
 */
#define EXPIRED_SQL \
	"SELECT COALESCE((SELECT max(txid) FROM popug.%1$s)" \
	"                < (SELECT min(pg_catalog.pg_snapshot_xmin(snap_lo)) FROM popug.consumer), true)" \
	"   AND (NOT $1 OR COALESCE((SELECT occurred_at FROM popug.%1$s ORDER BY id DESC LIMIT 1)" \
	"                          < pg_catalog.now() - pg_catalog.make_interval(secs => $2), $3))"

/* Runs a statement built from SQL text (DDL); raises its error. */
static void
run(const char *sql)
{
	int			rc = SPI_execute(sql, false, 0);

	if (rc < 0)
		elog(ERROR, "SPI_execute failed for \"%s\": %s", sql, SPI_result_code_string(rc));
}

/*
 * Whether partition (or event_default) name may go, see EXPIRED_SQL;
 * through the latest snapshot, so that what committed before a lock just
 * taken counts whatever the caller's isolation level.
 */
static bool
expired(const char *name, bool check_age)
{
	Oid			types[3] = {BOOLOID, FLOAT8OID, BOOLOID};
	Datum		values[3];
	SPIPlanPtr	plan;
	int			rc;
	bool		isnull;

	values[0] = BoolGetDatum(check_age);
	values[1] = Float8GetDatum((double) popug_event_retention);
	/* an empty partition below the ids goes; an empty event_default stays */
	values[2] = BoolGetDatum(strcmp(name, "event_default") != 0);
	plan = SPI_prepare(psprintf(EXPIRED_SQL, quote_identifier(name)), 3, types);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	rc = SPI_execute_snapshot(plan, values, NULL, GetLatestSnapshot(), InvalidSnapshot,
							  true, false, 1);
	if (rc < 0)
		elog(ERROR, "SPI_execute_snapshot failed: %s", SPI_result_code_string(rc));
	SPI_freeplan(plan);
	return DatumGetBool(popug_get(0, 1, &isnull));
}

typedef enum ChangeKind
{
	MAKE,						/* a new partition [lo, hi) */
	EMPTY,						/* TRUNCATE a partition or event_default */
	DROP,						/* DROP an emptied partition */
	MOVE						/* the next id to lo, when it is below */
} ChangeKind;

typedef struct Change
{
	ChangeKind	kind;
	const char *name;
	int64		lo;
	int64		hi;
	bool		done;
} Change;

/*
 * Makes, empties or drops a partition (see the top of this file).  A new
 * partition is made apart, with the primary key and txid index every
 * partition has (see extension/sql/20_events.sql), and attached under
 * popug.event's SHARE lock, which waits for the transactions that have
 * written events: such a transaction routes its later events by the
 * partitions it knew, so one attached under it would send an event of the
 * new range to event_default and fail its partition constraint.  Readers
 * go on meanwhile (those that read event_default hold the attach off, as
 * it takes that partition's lock to check it holds none of its ids).
 * Moving the ids on takes the same SHARE lock, so that no id is being
 * drawn meanwhile.  Emptying takes the partition's lock only; dropping
 * takes popug.event's ACCESS EXCLUSIVE lock, which every transaction that
 * wrote or read events holds off.
 */
static void
change(void *arg)
{
	Change	   *c = arg;
	const char *name = quote_identifier(c->name);

	switch (c->kind)
	{
		case MAKE:
			run(psprintf("CREATE TABLE popug.%s (LIKE popug.event, PRIMARY KEY (id))", name));
			run(psprintf("CREATE INDEX ON popug.%s (txid)", name));
			popug_exec(&writers_plan, NULL, NULL, false, 0);
			run(psprintf("ALTER TABLE popug.event ATTACH PARTITION popug.%s"
						 " FOR VALUES FROM (" INT64_FORMAT ") TO (" INT64_FORMAT ")",
						 name, c->lo, c->hi));
			break;
		case EMPTY:
			run(psprintf("LOCK TABLE popug.%s IN ACCESS EXCLUSIVE MODE", name));
			if (!expired(c->name, false))
				return;
			run(psprintf("TRUNCATE popug.%s", name));
			break;
		case DROP:
			run(psprintf("DROP TABLE popug.%s", name));
			break;
		case MOVE:
			{
				Datum		arg = Int64GetDatum(c->lo);

				popug_exec(&writers_plan, NULL, NULL, false, 0);
				popug_exec(&move_plan, &arg, NULL, false, 0);
			}
			break;
	}
	c->done = true;
}

/* Whether an error leaves a change for the next run instead of failing it. */
static bool
retry_later(int sqlerrcode)
{
	/* the lock timed out; ids reached a new partition's range meanwhile */
	return sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE ||
		sqlerrcode == ERRCODE_CHECK_VIOLATION;
}

/* Tries one change in a subtransaction; true when it was made. */
static bool
try_change(Change *c)
{
	ErrorData  *error = NULL;

	if (!popug_try_if(change, c, &error, retry_later))
	{
		ereport(LOG,
				(errmsg("popug: event partition %s left for the next maintenance: %s",
						c->name, error->message)));
		return false;
	}
	return c->done;
}

/* The period of a partition, in seconds (see the top of this file). */
static double
period(void)
{
	return popug_event_retention > 0 ?
		Max(popug_event_retention / 4.0, MIN_PERIOD_S) : DEFAULT_PERIOD_S;
}

/* Whether the oldest event of ids [lo, hi) is older than the period. */
static bool
aged(int64 lo, int64 hi)
{
	Datum		args[3];
	bool		isnull;

	args[0] = Int64GetDatum(lo);
	args[1] = Int64GetDatum(hi);
	args[2] = Float8GetDatum(period());
	return popug_exec(&aged_plan, args, NULL, false, 1) == 1 &&
		DatumGetBool(popug_get(0, 1, &isnull));
}

/* The width of the next partition, from the rate of ids per second. */
static int64
next_width(double rate)
{
	double		width = rate * period();

	if (isnan(width) || width < MIN_WIDTH)
		return MIN_WIDTH;
	return width > MAX_WIDTH ? MAX_WIDTH : (int64) width;
}

/*
 * One maintenance run (see the top of this file), inside a call: counts
 * the partitions made and dropped (an emptied event_default counts).
 */
void
popug_event_maintain(int *created, int *dropped)
{
	uint64		n;
	SPITupleTable *parts;
	int64		next;
	int64		last_lo = 1;
	int64		top = 0;
	int64		cur_lo = 0;		/* the partition the ids fill: [cur_lo, cur_hi) */
	int64		cur_hi = 0;		/* 0: they fill event_default */
	int64		ahead = 0;		/* the first partition past the ids, if any */
	bool		move_on;
	Datum		arg;
	double		rate;
	bool		isnull;
	bool		rate_null;
	int			nest;

	*created = *dropped = 0;
	popug_xact_lock(POPUG_LOCK_RETENTION, true);
	nest = NewGUCNestLevel();
	(void) set_config_option("lock_timeout", LOCK_TIMEOUT, PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);

	n = popug_exec(&partitions_plan, NULL, NULL, false, 0);
	parts = SPI_tuptable;
	if (n > 0)
	{
		last_lo = DatumGetInt64(popug_field(parts->vals[n - 1], parts->tupdesc, 2));
		top = DatumGetInt64(popug_field(parts->vals[n - 1], parts->tupdesc, 3));
	}
	arg = Int64GetDatum(last_lo);
	popug_exec(&rate_plan, &arg, NULL, false, 1);
	next = DatumGetInt64(popug_get(0, 1, &isnull));
	rate = DatumGetFloat8(popug_get(0, 2, &rate_null));
	if (rate_null)
		rate = 0;
	for (uint64 i = 0; i < n; i++)
	{
		int64		lo = DatumGetInt64(popug_field(parts->vals[i], parts->tupdesc, 2));
		int64		hi = DatumGetInt64(popug_field(parts->vals[i], parts->tupdesc, 3));

		if (lo <= next && next < hi)
		{
			cur_lo = lo;
			cur_hi = hi;
		}
		else if (lo > next && ahead == 0)
			ahead = lo;
	}
	move_on = popug_event_retention > 0 && (cur_hi == 0 || aged(cur_lo, cur_hi));

	/*
	 * Oldest first, each partition the ids have left is emptied once
	 * expired, then dropped when popug.event's lock can be had; an emptied
	 * partition left behind goes on a later run.
	 */
	for (uint64 i = 0; i < n && popug_event_retention > 0; i++)
	{
		Change		c = {EMPTY};

		c.name = TextDatumGetCString(popug_field(parts->vals[i], parts->tupdesc, 1));
		c.hi = DatumGetInt64(popug_field(parts->vals[i], parts->tupdesc, 3));
		if (c.hi > next || !expired(c.name, true) || !try_change(&c))
			break;
		c.kind = DROP;
		c.done = false;
		if (try_change(&c))
			(*dropped)++;
	}
	if (popug_event_retention > 0 && expired("event_default", true))
	{
		Change		c = {EMPTY, "event_default"};

		if (try_change(&c))
			(*dropped)++;
	}

	/*
	 * The next partition once the last one is half used, or the ids are to
	 * move on, or past the ids handed out when they have outrun the
	 * partitions.
	 */
	if (n == 0 || top <= next || next - last_lo >= (top - last_lo) / 2 ||
		(move_on && ahead == 0))
	{
		Change		c = {MAKE};

		c.lo = (n > 0 && top > next) ? top : next + ID_SLACK;
		c.hi = c.lo + next_width(rate);
		c.name = psprintf("event_" INT64_FORMAT, c.lo);
		if (try_change(&c))
		{
			(*created)++;
			if (ahead == 0)
				ahead = c.lo;
		}
	}
	if (move_on && ahead > 0)
	{
		Change		c = {MOVE};

		c.lo = ahead;
		c.name = psprintf("event_" INT64_FORMAT, ahead);
		try_change(&c);
	}
	AtEOXact_GUC(true, nest);
}

/* A maintenance run for the scheduler worker, as a call of its own. */
void
popug_retention_step(void)
{
	PopugCall	call;
	int			created;
	int			dropped;

	popug_begin(&call);
	popug_event_maintain(&created, &dropped);
	popug_end(&call);
}

PG_FUNCTION_INFO_V1(popug_event_maintenance);

/*
 * SQL: popug.event_maintenance(OUT created, OUT dropped): one maintenance
 * run now, as the scheduler worker makes every minute (admins).
 */
Datum
popug_event_maintenance(PG_FUNCTION_ARGS)
{
	PopugCall	call;
	TupleDesc	tupdesc;
	Datum		values[2];
	bool		nulls[2] = {false, false};
	int			created;
	int			dropped;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "popug.event_maintenance must return a row");
	popug_begin(&call);
	popug_require(&call, POPUG_ROLE_ADMIN, true, "maintain the event log");
	popug_event_maintain(&created, &dropped);
	popug_end(&call);
	values[0] = Int32GetDatum(created);
	values[1] = Int32GetDatum(dropped);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), values, nulls)));
}
