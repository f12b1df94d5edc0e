/*-------------------------------------------------------------------------
 *
 * worker.c
 *		The main loop shared by popug's background workers.
 *
 * Each worker is thin: a step function in core code does the work, this
 * loop provides the rest.  SIGTERM is die(), SIGHUP reloads the config, the
 * latch is waited on with WL_EXIT_ON_PM_DEATH.  Each pass is one
 * transaction; its memory lives in a context reset every pass.  An error
 * in a pass is logged and recorded in popug.worker_status, the transaction
 * is rolled back and the pass retried after a growing pause (up to a
 * minute), so a bad event or a down server never crash-loops the worker.
 *
 *-------------------------------------------------------------------------
 */
#include "popug.h"

#include "access/xact.h"
#include "commands/extension.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#define MAX_BACKOFF_MS 60000L
#define NO_EXTENSION_POLL_MS 10000L

/* Waits for the latch (if wanted) or a timeout; ms <= 0 waits for the latch only. */
static void
wait_for(long ms, bool latch)
{
	int			events = WL_EXIT_ON_PM_DEATH;

	if (latch)
		events |= WL_LATCH_SET;
	if (ms > 0)
		events |= WL_TIMEOUT;
	(void) WaitLatch(MyLatch, events, ms, PG_WAIT_EXTENSION);
	if (latch)
		ResetLatch(MyLatch);
}

/* One pass: a transaction around the step, unless the extension is absent. */
static int64
run_pass(PopugWorkerKind kind, PopugWorkerStep step, bool *more, bool *present)
{
	int64		n = 0;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	*present = OidIsValid(get_extension_oid("popug", true));
	if (*present)
	{
		pgstat_report_activity(STATE_RUNNING, popug_worker_names[kind]);
		n = step(more);
	}
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
	return n;
}

void
popug_worker_main(PopugWorkerKind kind, PopugWorkerStep step, long idle_ms,
				  long min_gap_ms)
{
	MemoryContext loop_cxt;
	volatile long backoff = 0;
	volatile bool more = true;	/* a first pass at start */

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(popug_database, NULL, 0);
	popug_status_attach(kind);
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);
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
			wait_for(backoff, false);
		else if (!more)
			wait_for(idle_ms, true);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		MemoryContextReset(loop_cxt);
		MemoryContextSwitchTo(loop_cxt);
		more = false;
		PG_TRY();
		{
			n = run_pass(kind, step, &again, &present);
			more = again;
			if (present)
				popug_status_set(kind, "idle", n, backoff > 0 ? "" : NULL);
			else
				popug_status_set(kind, "waiting for extension popug", 0, NULL);
			backoff = 0;
			if (!present && idle_ms <= 0)
				wait_for(NO_EXTENSION_POLL_MS, true);
			else if (n > 0 && min_gap_ms > 0)
				wait_for(min_gap_ms, false);
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
			popug_status_set(kind, "retrying after error", 0,
							 edata->message ? edata->message : "unknown error");
			more = false;
			RESUME_INTERRUPTS();
		}
		PG_END_TRY();
	}
}
