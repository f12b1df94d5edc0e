/*-------------------------------------------------------------------------
 *
 * worker.h
 *		The loop every popug background worker runs (worker.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef POPUG_WORKER_H
#define POPUG_WORKER_H

#include "postgres.h"

#include "process.h"

/*
 * One pass of a worker's work, run inside a transaction with a snapshot
 * pushed.  Returns how many items it processed; sets *more when it should
 * run again at once instead of sleeping.
 */
typedef int64 (*PopugWorkerStep) (bool *more);

/*
 * The loop every popug worker runs: a pass at start, then one whenever its
 * latch is set or idle_ms (if > 0) passes; after a pass that did something
 * it waits min_gap_ms, so that wakeups arriving meanwhile coalesce.
 */
extern void popug_worker_xact_begin(void);
extern void popug_worker_xact_commit(void);

extern void popug_worker_main(PopugProcess proc, PopugWorkerStep step,
							  long idle_ms, long min_gap_ms) pg_attribute_noreturn();

#endif							/* POPUG_WORKER_H */
