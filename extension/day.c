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

#include "call.h"

#include "catalog/pg_type.h"
#include "pgtime.h"
#include "utils/builtins.h"
#include "utils/guc.h"

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

static PopugPlan today_plan = {
	"SELECT (now() AT TIME ZONE $1)::date", 1, {TEXTOID}
};

/* Today in popug.timezone.  Runs inside a call. */
DateADT
popug_today(void)
{
	Datum		tz = CStringGetTextDatum(popug_timezone);
	bool		isnull;

	popug_exec(&today_plan, &tz, NULL, true, 1);
	return DatumGetDateADT(popug_get(0, 1, &isnull));
}
