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

#include "scheduler.h"

#include "call.h"
#include "day.h"
#include "payout.h"
#include "retention.h"
#include "worker.h"

#include "postmaster/bgworker.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

#define CHECK_EVERY_MS 60000L

PGDLLEXPORT void popug_scheduler_main(Datum arg);

/* settings */
static char *popug_payout_at = NULL;

/* Whether c is an ASCII digit, whatever the locale. */
static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/*
 * Check hook: popug.payout_at is empty (disabled) or exactly HH:MM, 00:00
 * to 23:59, as the scheduler compares it with the time of day on every
 * pass.
 */
static bool
check_payout_at(char **newval, void **extra, GucSource source)
{
	const char *v = *newval;

	if (v == NULL || v[0] == '\0')
		return true;
	if (strlen(v) == 5 && is_digit(v[0]) && is_digit(v[1]) && v[2] == ':' &&
		is_digit(v[3]) && is_digit(v[4]) &&
		(v[0] - '0') * 10 + (v[1] - '0') <= 23 && v[3] <= '5')
		return true;
	GUC_check_errdetail("popug.payout_at must be a time of day as HH:MM, from 00:00 to 23:59, or empty to disable the scheduled payout.");
	return false;
}

/* Defines popug.payout_at (called from _PG_init). */
void
SchedulerInit(void)
{
	DefineCustomStringVariable("popug.payout_at",
							   "Time of day (HH:MM in popug.timezone) the scheduler pays the previous day out; empty disables it.",
							   NULL, &popug_payout_at, "00:00",
							   PGC_SIGHUP, 0, check_payout_at, NULL, NULL);
}

/*
 * A step of the due payout, if any: day D is due once D + 1 has reached
 * popug.payout_at in popug.timezone.  Returns 1 and sets *more while the
 * day is not closed.
 */
static int64
payout_pass(bool *more)
{
	PopugCall	call;
	DateADT		today;
	TimeADT		time;
	TimeADT		at;
	bool		done;

	*more = false;
	if (popug_payout_at == NULL || popug_payout_at[0] == '\0')
		return 0;
	/* HH:MM, as check_payout_at accepts it */
	at = ((popug_payout_at[0] - '0') * 600 + (popug_payout_at[1] - '0') * 60 +
		  (popug_payout_at[3] - '0') * 10 + (popug_payout_at[4] - '0')) *
		SECS_PER_MINUTE * USECS_PER_SEC;
	popug_local_now(&today, &time);
	popug_begin(&call);
	done = popug_payout_step(today - (time >= at ? 1 : 2),
							 popug_payout_batch_size);
	popug_end(&call);
	*more = !done;
	return done ? 0 : 1;
}


/* One pass: the due payout's next step, and the maintenance once a minute. */
static int64
scheduler_step(bool *more)
{
	static TimestampTz last_maintenance = 0;
	int64		done = payout_pass(more);
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
