/*-------------------------------------------------------------------------
 *
 * notifier.c
 *		The notifier worker: NOTIFY popug_events, coalesced.
 *
 * PostgreSQL serializes every committing transaction that has queued a
 * NOTIFY on one cluster-wide lock, so producers never NOTIFY themselves.
 * Their commits set this worker's latch; it sends one NOTIFY per wakeup and
 * then waits popug.notify_interval, so any number of commits in that time
 * cost one notification.
 *
 * Its commits do not wait for their WAL to be flushed: a notification is
 * not kept across a crash in any case (listeners connect again and read
 * from their position), and a flush per notification would compete with
 * the producers' own commits for the disk.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "process.h"
#include "worker.h"

#include "commands/async.h"
#include "postmaster/bgworker.h"
#include "utils/guc.h"

PGDLLEXPORT void popug_notifier_main(Datum arg);

/* One NOTIFY, delivered when the worker loop commits the pass. */
static int64
notify_step(bool *more)
{
	Async_Notify("popug_events", NULL);
	return 1;
}

/* Entry point of the notifier background worker. */
void
popug_notifier_main(Datum arg)
{
	SetConfigOption("synchronous_commit", "off", PGC_SUSET, PGC_S_OVERRIDE);
	popug_worker_main(POPUG_PROCESS_NOTIFIER, notify_step, 0,
					  popug_notify_interval);
}
