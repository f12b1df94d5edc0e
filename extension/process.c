/*-------------------------------------------------------------------------
 *
 * process.c
 *		popug's background processes as the rest of popug sees them: their
 *		definitions, shared memory slots, commit-time wakeups and status.
 *
 * Shared memory holds one slot per background process: its latch, so that
 * committing producers can wake it, and its status for
 * popug.worker_status.  Each slot is protected by its own spinlock; nothing
 * is held for longer than a few stores.  Without shared_preload_libraries
 * there is no shared memory: wakeups are no-ops and worker_status is
 * empty, and every SQL function still works.  What each process does, its
 * loop and its transactions, is in workers/.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "process.h"

#include "call.h"

#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

/* settings */
char	   *popug_database = NULL;
int			popug_notify_interval = 10;

const char *const popug_process_names[POPUG_NUM_PROCESSES] = {
	"notifier", "accounting", "mailer", "scheduler"
};

/* Entry points of the processes (workers/), NULL for one not built. */
static const char *const worker_functions[POPUG_NUM_PROCESSES] = {
	[POPUG_PROCESS_NOTIFIER] = "popug_notifier_main",
	[POPUG_PROCESS_ACCOUNTING] = "popug_accounting_main",
	[POPUG_PROCESS_MAILER] = "popug_mailer_main",
	[POPUG_PROCESS_SCHEDULER] = "popug_scheduler_main",
};

#define STATUS_STATE_LEN 64
#define STATUS_ERROR_LEN 512

typedef struct PopugProcessSlot
{
	slock_t		mutex;
	Latch	   *latch;
	Oid			dboid;			/* the database the running worker serves */
	bool		woken;			/* popug_wake since popug_take_wakeup */
	int			pid;
	TimestampTz last_run;
	int64		processed;
	int64		errors;			/* passes that failed */
	char		state[STATUS_STATE_LEN];
	char		last_error[STATUS_ERROR_LEN];
} PopugProcessSlot;

typedef struct PopugShared
{
	PopugProcessSlot procs[POPUG_NUM_PROCESSES];
} PopugShared;

static PopugShared *shared = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* workers to wake when the current transaction commits */
static int	wake_at_commit = 0;

/* Reserves our shared memory (PostgreSQL 15's shmem_request_hook). */
static void
popug_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(PopugShared)));
}

/* Creates or attaches the worker slots. */
static void
popug_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	shared = ShmemInitStruct("popug", sizeof(PopugShared), &found);
	if (!found)
	{
		memset(shared, 0, sizeof(PopugShared));
		for (int i = 0; i < POPUG_NUM_PROCESSES; i++)
		{
			SpinLockInit(&shared->procs[i].mutex);
			strlcpy(shared->procs[i].state, "not started", STATUS_STATE_LEN);
		}
	}
	LWLockRelease(AddinShmemInitLock);
}

/*
 * Wakes a worker now: notes the wakeup in its slot and sets its latch (if
 * it is running and serves this process's database).  The note survives
 * code in the worker's pass that consumes its latch (any wait that sleeps
 * on it resets it), see popug_take_wakeup.  While a note is pending the
 * latch has been set for it already, so later wakeups only find the note:
 * a burst of commits costs the sleeping worker one signal, not one each.
 */
void
popug_wake(PopugProcess proc)
{
	PopugProcessSlot *slot;
	Latch	   *latch = NULL;

	if (shared == NULL)
		return;
	slot = &shared->procs[proc];
	SpinLockAcquire(&slot->mutex);
	if (slot->latch != NULL && slot->dboid == MyDatabaseId && !slot->woken)
	{
		slot->woken = true;
		latch = slot->latch;
	}
	SpinLockRelease(&slot->mutex);
	if (latch)
		SetLatch(latch);
}

/* Called by a worker: whether it was woken since it last asked. */
bool
popug_take_wakeup(PopugProcess proc)
{
	PopugProcessSlot *slot = &shared->procs[proc];
	bool		woken;

	SpinLockAcquire(&slot->mutex);
	woken = slot->woken;
	slot->woken = false;
	SpinLockRelease(&slot->mutex);
	return woken;
}

/*
 * Wakes a worker when (and only if) the current transaction commits: the
 * worker must not look before the rows it is woken for are visible.
 */
void
popug_wake_at_commit(PopugProcess proc)
{
	wake_at_commit |= 1 << proc;
}

/* Transaction callback that delivers the wakeups noted during it. */
static void
popug_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			for (int i = 0; i < POPUG_NUM_PROCESSES; i++)
				if (wake_at_commit & (1 << i))
					popug_wake((PopugProcess) i);
			wake_at_commit = 0;
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			wake_at_commit = 0;
			break;
		default:
			break;
	}
}

/* Clears a worker's slot when its process exits. */
static void
popug_status_detach(int code, Datum arg)
{
	PopugProcessSlot *slot = &shared->procs[DatumGetInt32(arg)];

	SpinLockAcquire(&slot->mutex);
	slot->latch = NULL;
	slot->pid = 0;
	strlcpy(slot->state, code == 0 ? "stopped" : "exited", STATUS_STATE_LEN);
	SpinLockRelease(&slot->mutex);
}

/* Called by a worker at start: publishes its pid and latch. */
void
popug_status_attach(PopugProcess proc)
{
	PopugProcessSlot *slot;

	if (shared == NULL)
		elog(ERROR, "popug shared memory is not initialized");
	slot = &shared->procs[proc];
	SpinLockAcquire(&slot->mutex);
	slot->latch = MyLatch;
	slot->dboid = MyDatabaseId;
	slot->pid = MyProcPid;
	strlcpy(slot->state, "starting", STATUS_STATE_LEN);
	SpinLockRelease(&slot->mutex);
	on_shmem_exit(popug_status_detach, Int32GetDatum(proc));
}

/*
 * Records a worker's state.  processed is added to its counter; a non-NULL
 * error replaces the last error and an empty string clears it; a non-empty
 * one counts as a failed pass.
 */
void
popug_status_set(PopugProcess proc, const char *state, int64 processed,
				 const char *error)
{
	PopugProcessSlot *slot;

	if (shared == NULL)
		return;
	slot = &shared->procs[proc];
	SpinLockAcquire(&slot->mutex);
	strlcpy(slot->state, state, STATUS_STATE_LEN);
	slot->last_run = GetCurrentTimestamp();
	slot->processed += processed;
	if (error)
		strlcpy(slot->last_error, error, STATUS_ERROR_LEN);
	if (error && error[0] != '\0')
		slot->errors++;
	SpinLockRelease(&slot->mutex);
}

/* Sets the state of every worker that is not running (the launcher's note). */
void
popug_status_waiting(const char *state)
{
	if (shared == NULL)
		return;
	for (int i = 0; i < POPUG_NUM_PROCESSES; i++)
	{
		PopugProcessSlot *slot = &shared->procs[i];

		SpinLockAcquire(&slot->mutex);
		if (slot->pid == 0)
			strlcpy(slot->state, state, STATUS_STATE_LEN);
		SpinLockRelease(&slot->mutex);
	}
}

PG_FUNCTION_INFO_V1(popug_worker_status_rows);

/*
 * SQL: popug.worker_status_rows(), one row per worker popug registered;
 * no rows unless the caller is an admin, a superuser or a pg_monitor member.
 */
Datum
popug_worker_status_rows(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	PopugCall	call;
	bool		visible;

	InitMaterializedSRF(fcinfo, 0);
	popug_begin(&call);
	popug_caller_lookup(&call);
	visible = call.superuser || call.role == POPUG_ROLE_ADMIN ||
		has_privs_of_role(call.roleid, ROLE_PG_MONITOR);
	popug_end(&call);
	if (shared == NULL || !visible)
		PG_RETURN_VOID();

	for (int i = 0; i < POPUG_NUM_PROCESSES; i++)
	{
		PopugProcessSlot copy;
		Datum		values[7];
		bool		nulls[7] = {0};

		if (worker_functions[i] == NULL)
			continue;
		SpinLockAcquire(&shared->procs[i].mutex);
		memcpy(&copy, &shared->procs[i], sizeof(copy));
		SpinLockRelease(&shared->procs[i].mutex);

		values[0] = CStringGetTextDatum(popug_process_names[i]);
		values[1] = Int32GetDatum(copy.pid);
		nulls[1] = copy.pid == 0;
		values[2] = CStringGetTextDatum(copy.state);
		values[3] = TimestampTzGetDatum(copy.last_run);
		nulls[3] = copy.last_run == 0;
		values[4] = Int64GetDatum(copy.processed);
		values[5] = CStringGetTextDatum(copy.last_error);
		nulls[5] = copy.last_error[0] == '\0';
		values[6] = Int64GetDatum(copy.errors);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(popug_worker_status);

/* The C name version 0.1's SQL gives popug.worker_status_rows(). */
Datum
popug_worker_status(PG_FUNCTION_ARGS)
{
	return popug_worker_status_rows(fcinfo);
}

/*
 * Fills in what the launcher and the workers share: a database-connected
 * background worker of library popug, run by function and named name
 * (also its bgw_type), started once recovery is over.
 */
static void
define_bgworker(BackgroundWorker *worker, const char *function,
				const char *name)
{
	memset(worker, 0, sizeof(*worker));
	worker->bgw_flags = BGWORKER_SHMEM_ACCESS |
		BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker->bgw_start_time = BgWorkerStart_RecoveryFinished;
	strlcpy(worker->bgw_library_name, "popug", BGW_MAXLEN);
	strlcpy(worker->bgw_function_name, function, BGW_MAXLEN);
	strlcpy(worker->bgw_name, name, BGW_MAXLEN);
	strlcpy(worker->bgw_type, name, BGW_MAXLEN);
}

/*
 * Fills in the definition of one of popug's workers, started by the
 * launcher (workers/launcher.c) as a dynamic background worker; false for
 * a worker not built.
 */
bool
popug_process_define(PopugProcess proc, BackgroundWorker *worker)
{
	char		name[BGW_MAXLEN];

	if (worker_functions[proc] == NULL)
		return false;
	snprintf(name, BGW_MAXLEN, "popug %s", popug_process_names[proc]);
	define_bgworker(worker, worker_functions[proc], name);
	worker->bgw_restart_time = BGW_NEVER_RESTART;	/* the launcher does */
	worker->bgw_main_arg = Int32GetDatum(proc);
	return true;
}

/*
 * Registers the launcher with the postmaster: it connects to no database
 * and starts the workers once popug.database exists.
 */
static void
register_launcher(void)
{
	BackgroundWorker worker;

	define_bgworker(&worker, "popug_launcher_main", "popug launcher");
	worker.bgw_restart_time = 5;
	RegisterBackgroundWorker(&worker);
}

/*
 * Defines popug.database and popug.notify_interval and, when loaded by shared_preload_libraries,
 * reserves the shared memory and registers the launcher (called from
 * _PG_init).  Commit-time wakeups are delivered in every process.
 */
void
ProcessInit(void)
{
	/*
	 * Only the postmaster can define a PGC_POSTMASTER setting: a library
	 * loaded later (CREATE EXTENSION without preloading) has no workers and
	 * no use for it, and defining it then would end the session.
	 */
	if (process_shared_preload_libraries_in_progress)
		DefineCustomStringVariable("popug.database",
								   "Database the popug workers serve.",
								   NULL, &popug_database, "postgres",
								   PGC_POSTMASTER, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("popug.notify_interval",
							"Least time between two NOTIFY popug_events.",
							"Producers never NOTIFY; the notifier coalesces their commits.",
							&popug_notify_interval, 10, 1, 10000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);

	RegisterXactCallback(popug_xact_callback, NULL);

	if (!process_shared_preload_libraries_in_progress)
		return;

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = popug_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = popug_shmem_startup;

	/*
	 * pg_upgrade's servers (binary upgrade mode) run no workers: the
	 * database is being rebuilt under them, and nothing may write to it.
	 */
	if (!IsBinaryUpgrade)
		register_launcher();
}
