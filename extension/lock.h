/*-------------------------------------------------------------------------
 *
 * lock.h
 *		popug's transaction-level advisory locks (lock.c), by name.
 *
 *-------------------------------------------------------------------------
 */
#ifndef POPUG_LOCK_H
#define POPUG_LOCK_H

#include "postgres.h"

/*
 * The keys of popug.xact_lock(key, exclusive); the SQL that takes one
 * names it in a comment.
 */
typedef enum PopugLock
{
	/* shared to apply payments, exclusive to start a day's payout */
	POPUG_LOCK_BILLING = 1,
	/* exclusive for each payout step, so runs never overlap */
	POPUG_LOCK_PAYOUT = 2,
	/* shared to assign tasks, exclusive to take a worker out of the pool */
	POPUG_LOCK_POOL = 3,
	/* exclusive for event log maintenance, so runs never overlap */
	POPUG_LOCK_RETENTION = 4
} PopugLock;

extern void popug_xact_lock(PopugLock key, bool exclusive);

#endif							/* POPUG_LOCK_H */
