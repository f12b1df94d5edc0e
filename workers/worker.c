/*-------------------------------------------------------------------------
 *
 * worker.c
 *		The main loop shared by popug's background workers.
 *
 * Each worker's file in workers/ gives this loop a step function that
 * does its pass with the core modules' functions; the loop provides the
 * rest, transactions included: extension/ code never commits on a
 * worker's behalf.  SIGTERM is die(), SIGHUP reloads the config, the latch
 * is waited on with WL_EXIT_ON_PM_DEATH.  Each pass is one transaction
 * (the mailer's step commits and starts more, see
 * popug_worker_xact_begin); its memory lives in a context reset every
 * pass.  An error in a pass is logged and recorded in popug.worker_status,
 * the transaction is rolled back and the pass retried after a growing
 * pause (up to a minute), so a bad event or a down server never
 * crash-loops the worker.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "origin.h"
#include "process.h"
#include "worker.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#define MAX_BACKOFF_MS 60000L
#define NO_EXTENSION_POLL_MS 10000L

/*
 * The longest a worker sleeps without looking at its interrupts and its
 * wakeup note.  Code run by a pass can consume the latch (any wait inside
 * PostgreSQL that sleeps on it resets it), taking with it the wakeup of an
 * interrupt such as the ProcSignalBarrier DROP DATABASE waits for (seen
 * once: the notifier asleep with an interrupt pending and its latch clear);
 * this bounds how long one can go unserved.
 */
#define LOOK_MS 1000L

/* Serves pending interrupts and config reloads; true after a reload. */
static bool
serve_interrupts(void)
{
	CHECK_FOR_INTERRUPTS();
	if (!ConfigReloadPending)
		return false;
	ConfigReloadPending = false;
	ProcessConfigFile(PGC_SIGHUP);
	return true;
}

/* Waits for the latch up to ms, then serves interrupts; true after a reload. */
static bool
wait_latch(long ms)
{
	(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
					 ms, PG_WAIT_EXTENSION);
	ResetLatch(MyLatch);
	return serve_interrupts();
}

/* Milliseconds from now until end (0 when it has passed). */
static long
ms_until(TimestampTz end)
{
	return Max(0, (long) ((end - GetCurrentTimestamp()) / 1000));
}

/* Sleeps ms whatever sets the latch, serving interrupts meanwhile. */
static void
pause_for(long ms)
{
	TimestampTz end = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), ms);
	long		left;

	while ((left = ms_until(end)) > 0)
		(void) wait_latch(Min(left, LOOK_MS));
}

/*
 * Waits until a producer wakes this worker (popug_wake), the configuration
 * is reloaded, or idle_ms passes (idle_ms <= 0: no timeout).  A wakeup that
 * came while the last pass ran returns at once.
 */
static void
wait_for_work(PopugProcess proc, long idle_ms)
{
	TimestampTz end = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), idle_ms);

	while (!popug_take_wakeup(proc))
	{
		long		left = idle_ms > 0 ? ms_until(end) : LOOK_MS;

		if (left == 0)
			break;
		if (wait_latch(Min(left, LOOK_MS)))
			break;				/* new settings: a pass now */
	}
}

/*
 * Starts a worker's transaction with a snapshot pushed, as a step runs in.
 * A step that must not hold a transaction open for a while (the mailer
 * talking to its server) commits with popug_worker_xact_commit and starts
 * again with this.
 */
void
popug_worker_xact_begin(void)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
}

/* Commits a transaction started by popug_worker_xact_begin. */
void
popug_worker_xact_commit(void)
{
	PopActiveSnapshot();
	CommitTransactionCommand();
}

/*
 * One pass: a transaction around the step, unless the extension is absent
 * or at another version than this library (until ALTER EXTENSION UPDATE).
 */
static int64
run_pass(PopugProcess proc, PopugWorkerStep step, bool *more, bool *present)
{
	int64		n = 0;
	char	   *version;

	popug_worker_xact_begin();
	version = popug_installed_version();
	*present = version != NULL && strcmp(version, POPUG_VERSION) == 0;
	if (*present)
	{
		pgstat_report_activity(STATE_RUNNING, popug_process_names[proc]);
		n = step(more);
	}
	popug_worker_xact_commit();
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
	return n;
}

void
popug_worker_main(PopugProcess proc, PopugWorkerStep step, long idle_ms,
				  long min_gap_ms)
{
	MemoryContext loop_cxt;
	volatile long backoff = 0;
	volatile bool more = true;	/* a first pass at start */

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(popug_database, NULL, 0);
	popug_status_attach(proc);
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);

	/*
	 * Each pass reads what committed before the locks it takes were
	 * granted, whatever default_transaction_isolation the cluster has.
	 */
	SetConfigOption("default_transaction_isolation", "read committed",
					PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("application_name", MyBgworkerEntry->bgw_type,
					PGC_USERSET, PGC_S_SESSION);
	pgstat_report_appname(MyBgworkerEntry->bgw_type);

	loop_cxt = AllocSetContextCreate(TopMemoryContext, "popug worker loop",
									 ALLOCSET_DEFAULT_SIZES);
	for (;;)
	{
		bool		present = true;
		bool		again = false;
		int64		n;

		if (backoff > 0)
			pause_for(backoff);
		else if (!more)
			wait_for_work(proc, idle_ms);

		/*
		 * New settings are read before every pass: a worker woken again
		 * and again returns from wait_for_work without sleeping, and would
		 * otherwise keep the old ones (popug.timezone, the billing day)
		 * for as long as commits keep coming.
		 */
		(void) serve_interrupts();

		MemoryContextReset(loop_cxt);
		MemoryContextSwitchTo(loop_cxt);
		more = false;

		/*
		 * The worker's top-level error handler, not popug_try: an error
		 * here ends the whole pass (the transaction is aborted, not a
		 * subtransaction rolled back), is logged and recorded, and the pass
		 * is retried after a pause.  Nothing is set aside or raised again.
		 */
		PG_TRY();
		{
			n = run_pass(proc, step, &again, &present);
			more = again;
			if (present)
				popug_status_set(proc, "idle", n, backoff > 0 ? "" : NULL);
			else
				popug_status_set(proc, "waiting for extension popug " POPUG_VERSION, 0, NULL);
			backoff = 0;
			if (!present)
			{
				/* look again after the poll (or sooner), woken or not */
				wait_for_work(proc, idle_ms > 0 ? Min(idle_ms, NO_EXTENSION_POLL_MS)
							  : NO_EXTENSION_POLL_MS);
				more = true;
			}
			else if (n > 0 && min_gap_ms > 0)
				pause_for(min_gap_ms);
		}
		PG_CATCH();
		{
			ErrorData  *edata;

			HOLD_INTERRUPTS();
			MemoryContextSwitchTo(loop_cxt);
			edata = CopyErrorData();
			EmitErrorReport();
			AbortCurrentTransaction();
			FlushErrorState();
			pgstat_report_activity(STATE_IDLE, NULL);
			backoff = backoff == 0 ? 1000 : Min(backoff * 2, MAX_BACKOFF_MS);
			popug_status_set(proc, "retrying after error", 0,
							 edata->message ? edata->message : "unknown error");
			more = false;
			RESUME_INTERRUPTS();
		}
		PG_END_TRY();
	}
}
