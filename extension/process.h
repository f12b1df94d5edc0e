/*-------------------------------------------------------------------------
 *
 * process.h
 *		popug's background processes as the rest of popug sees them
 *		(process.c): their shared memory slots, wakeups and status.
 *
 *-------------------------------------------------------------------------
 */
#ifndef POPUG_PROCESS_H
#define POPUG_PROCESS_H

#include "postgres.h"

/* The background processes the launcher starts, one slot each. */
typedef enum PopugProcess
{
	POPUG_PROCESS_NOTIFIER = 0,
	POPUG_PROCESS_ACCOUNTING,
	POPUG_PROCESS_MAILER,
	POPUG_PROCESS_SCHEDULER,
	POPUG_NUM_PROCESSES
} PopugProcess;

extern const char *const popug_process_names[POPUG_NUM_PROCESSES];

/*
 * Settings: the database the processes serve; the least gap between two
 * notifications (and between two passes of the accounting worker).
 */
extern char *popug_database;
extern int	popug_notify_interval;

extern void ProcessInit(void);

extern void popug_wake(PopugProcess proc);
extern void popug_wake_at_commit(PopugProcess proc);
extern bool popug_take_wakeup(PopugProcess proc);
extern void popug_status_set(PopugProcess proc, const char *state,
							 int64 processed, const char *error);
extern void popug_status_attach(PopugProcess proc);
extern void popug_status_waiting(const char *state);

/* forward declaration: postmaster/bgworker.h */
struct BackgroundWorker;
extern bool popug_process_define(PopugProcess proc,
								 struct BackgroundWorker *worker);

#endif							/* POPUG_PROCESS_H */
