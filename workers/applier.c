/*-------------------------------------------------------------------------
 *
 * applier.c
 *		The accounting worker ("popug accounting"): applies events to money
 *		as they commit.
 *
 * Producers set its latch when they commit events (popug_events_written);
 * each pass applies one batch of the accounting consumer and runs again at
 * once while batches come back full.  After a pass it waits
 * popug.notify_interval, so that a stream of small commits costs one pass
 * per interval instead of one per commit.  The consumer position is durable, so
 * a worker killed mid-batch resumes where the last committed pass ended,
 * and payment ids make re-applying that batch write nothing.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "accounting.h"
#include "process.h"
#include "worker.h"

#include "postmaster/bgworker.h"

#define SAFETY_POLL_MS 1000L

PGDLLEXPORT void popug_accounting_main(Datum arg);

/* Entry point of the accounting background worker. */
void
popug_accounting_main(Datum arg)
{
	popug_worker_main(POPUG_PROCESS_ACCOUNTING, popug_accounting_step,
					  SAFETY_POLL_MS, popug_notify_interval);
}
