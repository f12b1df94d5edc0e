/*-------------------------------------------------------------------------
 *
 * day.c
 *		Billing days: the time zone they are counted in (popug.timezone)
 *		and today in it.
 *
 * A billing day is a date in popug.timezone, whatever the session's
 * TimeZone: fees, rewards and payouts fall on it, statistics count by it,
 * and the scheduler pays out the day before it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "day.h"

#include "access/xact.h"
#include "pgtime.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

char	   *popug_timezone = NULL;

/* Check hook: popug.timezone must name a time zone PostgreSQL knows. */
static bool
check_timezone(char **newval, void **extra, GucSource source)
{
	if (*newval == NULL || pg_tzset(*newval) == NULL)
	{
		GUC_check_errdetail("\"%s\" is not a known time zone.",
							*newval ? *newval : "");
		return false;
	}
	return true;
}

/* Defines popug.timezone (called from _PG_init). */
void
DayInit(void)
{
	DefineCustomStringVariable("popug.timezone",
							   "Time zone of billing days and of popug.payout_at.",
							   NULL, &popug_timezone, "UTC",
							   PGC_SUSET, 0, check_timezone, NULL, NULL);
}

/*
 * Now, as the date and time of day it is in popug.timezone; "now" is the
 * transaction's start, as now() is.
 */
void
popug_local_now(DateADT *day, TimeADT *time)
{
	Datum		local = DirectFunctionCall2(timestamptz_zone,
											CStringGetTextDatum(popug_timezone),
											TimestampTzGetDatum(GetCurrentTransactionStartTimestamp()));

	*day = DatumGetDateADT(DirectFunctionCall1(timestamp_date, local));
	if (time != NULL)
		*time = DatumGetTimeADT(DirectFunctionCall1(timestamp_time, local));
}

/* Today in popug.timezone. */
DateADT
popug_today(void)
{
	DateADT		day;

	popug_local_now(&day, NULL);
	return day;
}
