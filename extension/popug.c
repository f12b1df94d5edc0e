/*-------------------------------------------------------------------------
 *
 * popug.c
 *		Module start-up: each module defines its settings and registers
 *		what it runs.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "accounting.h"
#include "day.h"
#include "mail.h"
#include "payout.h"
#include "process.h"
#include "retention.h"
#include "scheduler.h"

#include "fmgr.h"
#include "utils/guc.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

/*
 * Module load: settings in every process; shared memory and the launcher
 * only when loaded by shared_preload_libraries (ProcessInit).
 */
void
_PG_init(void)
{
	DayInit();
	ProcessInit();
	AccountingInit();
	PayoutInit();
	SchedulerInit();
	MailInit();
	RetentionInit();

	MarkGUCPrefixReserved("popug");
}
