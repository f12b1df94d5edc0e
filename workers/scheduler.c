/*-------------------------------------------------------------------------
 *
 * scheduler.c
 *		The scheduler worker: pays out each day at popug.payout_at.
 *
 * At start, every minute and on a configuration reload it checks whether a
 * day is due (popug.payout_at has passed on the next day, in
 * popug.timezone) and still open; then it runs the payout one committed
 * step per pass until the day is closed.  A failing step is logged and
 * retried by the worker loop with a growing pause.  pg_cron may run the
 * same payout too: the steps serialize and pay nobody twice.
 *
 *-------------------------------------------------------------------------
 */
#include "popug.h"

#include "postmaster/bgworker.h"

#define CHECK_EVERY_MS 60000L

PGDLLEXPORT void popug_scheduler_main(Datum arg);

/* Entry point of the scheduler background worker. */
void
popug_scheduler_main(Datum arg)
{
	popug_worker_main(POPUG_WORKER_SCHEDULER, popug_scheduler_step,
					  CHECK_EVERY_MS, 0);
}
