/*-------------------------------------------------------------------------
 *
 * scheduler.c
 *		The scheduler worker: pays out each day at popug.payout_at, and
 *		keeps the event log within popug.event_retention.
 *
 * At start, every minute and on a configuration reload it checks whether a
 * day is due (popug.payout_at has passed on the next day, in
 * popug.timezone) and still open; then it runs the payout one committed
 * step per pass until the day is closed.  A failing step is logged and
 * retried by the worker loop with a growing pause.  pg_cron may run the
 * same payout too: the steps serialize and pay nobody twice.
 *
 * After its payout step, once a minute, a pass runs the event log's
 * maintenance (extension/retention.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "payout.h"
#include "retention.h"
#include "worker.h"

#include "postmaster/bgworker.h"
#include "utils/timestamp.h"

#define CHECK_EVERY_MS 60000L

PGDLLEXPORT void popug_scheduler_main(Datum arg);

/* One pass: the due payout's next step, and the maintenance once a minute. */
static int64
scheduler_step(bool *more)
{
	static TimestampTz last_maintenance = 0;
	int64		done = popug_scheduler_step(more);
	TimestampTz now = GetCurrentTimestamp();

	if (TimestampDifferenceExceeds(last_maintenance, now, CHECK_EVERY_MS))
	{
		popug_retention_step();
		last_maintenance = now;
	}
	return done;
}

/* Entry point of the scheduler background worker. */
void
popug_scheduler_main(Datum arg)
{
	popug_worker_main(POPUG_PROCESS_SCHEDULER, scheduler_step,
					  CHECK_EVERY_MS, 0);
}
