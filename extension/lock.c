/*-------------------------------------------------------------------------
 *
 * lock.c
 *		Taking one of popug's transaction-level advisory locks.
 *
 * popug.xact_lock() is the one place that maps a key to an advisory lock
 * (in popug's own lock space); C callers name the key with PopugLock.
 * Locks are held to the end of the transaction.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "lock.h"

#include "plan.h"

#include "catalog/pg_type.h"

static PopugPlan lock_plan = {
	"SELECT popug.xact_lock($1, $2)", 2, {INT4OID, BOOLOID}
};

/* Takes lock key, exclusive or shared, until the end of the transaction. */
void
popug_xact_lock(PopugLock key, bool exclusive)
{
	Datum		args[2] = {Int32GetDatum((int32) key), BoolGetDatum(exclusive)};

	popug_exec(&lock_plan, args, NULL, false, 0);
}
