/*-------------------------------------------------------------------------
 *
 * lock.c
 *		Taking one of popug's transaction-level advisory locks.
 *
 * popug_xact_lock is the one place that maps a key to an advisory lock in
 * popug's own lock space: the lock pg_advisory_xact_lock(1886351207, key)
 * takes, so that a session can take it from SQL too.  C callers name the
 * key with PopugLock; SQL calls popug.xact_lock().  Locks are held to the
 * end of the transaction.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "lock.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "storage/lock.h"

/* The first key of every popug advisory lock. */
#define POPUG_LOCK_SPACE 1886351207

/* Takes lock key, exclusive or shared, until the end of the transaction. */
void
popug_xact_lock(PopugLock key, bool exclusive)
{
	LOCKTAG		tag;

	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, POPUG_LOCK_SPACE, (uint32) key, 2);
	(void) LockAcquire(&tag, exclusive ? ExclusiveLock : ShareLock, false, false);
}

PG_FUNCTION_INFO_V1(popug_xact_lock_sql);

/* SQL: popug.xact_lock(key, exclusive). */
Datum
popug_xact_lock_sql(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("popug.xact_lock takes a key and whether to lock exclusively, neither null")));
	popug_xact_lock((PopugLock) PG_GETARG_INT32(0), PG_GETARG_BOOL(1));
	PG_RETURN_VOID();
}
