/*-------------------------------------------------------------------------
 *
 * launcher.c
 *		The launcher: starts popug's workers once their database exists.
 *
 * A background worker that connects to a database that does not exist
 * ends FATAL, and the postmaster restarts it every few seconds, filling
 * the log.  So the postmaster starts only this launcher, which connects to
 * no database (it reads the shared catalog pg_database, as PostgreSQL's
 * own logical replication launcher does).  While popug.database is
 * missing the launcher waits quietly, polling now and then; once it
 * exists (and takes connections) it starts each worker as a dynamic background worker and
 * restarts any that stops, after a pause.  If the database goes away
 * (DROP DATABASE ... WITH (FORCE) ends its workers) it waits again.
 *
 * When the launcher exits it stops its workers, so that a launcher
 * restarted by the postmaster never runs beside a previous one's workers.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "process.h"

#include "access/heapam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

/* how often a missing database is looked for */
#define DATABASE_POLL_MS 5000L
/* pause before a stopped worker is started again */
#define RESTART_MS 5000L

PGDLLEXPORT void popug_launcher_main(Datum arg);

/* the workers this launcher started; NULL where none runs */
static BackgroundWorkerHandle *handles[POPUG_NUM_PROCESSES];
/* when each stopped worker may start again (0: at once) */
static TimestampTz restart_at[POPUG_NUM_PROCESSES];

/*
 * Whether popug.database exists and takes connections.  A process bound to
 * no database has no relcache entries for the shared catalogs' indexes
 * until another process has written the shared relcache init file, so
 * pg_database is read by a heap scan, as PostgreSQL's launchers do.
 */
static bool
database_exists(void)
{
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;
	bool		found = false;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while (!found && (tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);

		found = db->datallowconn &&
			strcmp(NameStr(db->datname), popug_database) == 0;
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	PopActiveSnapshot();
	CommitTransactionCommand();
	return found;
}

/* Exit callback: stops the workers this launcher started. */
static void
stop_workers(int code, Datum arg)
{
	for (int i = 0; i < POPUG_NUM_PROCESSES; i++)
		if (handles[i] != NULL)
			TerminateBackgroundWorker(handles[i]);
}

/*
 * Forgets the workers that stopped, noting when each may start again.
 * Returns whether any worker is running or starting.
 */
static bool
reap_workers(void)
{
	bool		any = false;

	for (int i = 0; i < POPUG_NUM_PROCESSES; i++)
	{
		pid_t		pid;

		if (handles[i] == NULL)
			continue;
		if (GetBackgroundWorkerPid(handles[i], &pid) == BGWH_STOPPED)
		{
			pfree(handles[i]);
			handles[i] = NULL;
			restart_at[i] = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
														RESTART_MS);
		}
		else
			any = true;
	}
	return any;
}

/*
 * Starts every worker that is not running and whose restart pause has
 * passed.  Returns the milliseconds until the next pause ends (-1: none).
 */
static long
start_workers(void)
{
	TimestampTz now = GetCurrentTimestamp();
	long		next = -1;

	for (int i = 0; i < POPUG_NUM_PROCESSES; i++)
	{
		BackgroundWorker worker;

		if (handles[i] != NULL || !popug_process_define((PopugProcess) i, &worker))
			continue;
		if (restart_at[i] > now)
		{
			long		ms = (long) ((restart_at[i] - now) / 1000) + 1;

			next = next < 0 ? ms : Min(next, ms);
			continue;
		}
		worker.bgw_notify_pid = MyProcPid;
		if (!RegisterDynamicBackgroundWorker(&worker, &handles[i]))
		{
			ereport(WARNING,
					(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
					 errmsg("could not start the popug %s worker",
							popug_process_names[i]),
					 errhint("Raise max_worker_processes.")));
			handles[i] = NULL;
			restart_at[i] = TimestampTzPlusMilliseconds(now, RESTART_MS);
			next = next < 0 ? RESTART_MS : Min(next, RESTART_MS);
		}
	}
	return next;
}

/* Entry point of the launcher background worker. */
void
popug_launcher_main(Datum arg)
{
	bool		waiting_noted = false;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	before_shmem_exit(stop_workers, (Datum) 0);
	pgstat_report_appname(MyBgworkerEntry->bgw_type);

	for (;;)
	{
		long		sleep_ms = DATABASE_POLL_MS;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		/* with workers running, the database is there: no need to look */
		if (reap_workers() || database_exists())
		{
			long		next = start_workers();

			if (next >= 0)
				sleep_ms = next;
			waiting_noted = false;
			pgstat_report_activity(STATE_IDLE, NULL);
		}
		else if (!waiting_noted)
		{
			ereport(LOG,
					(errmsg("popug workers wait for database \"%s\"", popug_database),
					 errdetail("It does not exist or does not allow connections; popug.database names the database they serve.")));
			popug_status_waiting(psprintf("waiting for database \"%s\"",
										  popug_database));
			pgstat_report_activity(STATE_RUNNING, "waiting for the database");
			waiting_noted = true;
		}

		/* a worker's start or stop sets the latch (bgw_notify_pid) */
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 sleep_ms, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
