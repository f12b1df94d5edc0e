/*-------------------------------------------------------------------------
 *
 * consumer.h
 *		Durable consumers of the outbox and the registry of popug's own
 *		consumers (consumer.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef POPUG_CONSUMER_H
#define POPUG_CONSUMER_H

#include "postgres.h"

#include "access/htup.h"
#include "access/tupdesc.h"
#include "executor/spi.h"

/*
 * What one of popug's own consumers does with one row of popug.event's
 * columns (as in tupdesc) when a dead letter is replayed; returns whether
 * it changed anything.  Runs inside a call.
 */
typedef bool (*PopugApplyFn) (HeapTuple event, TupleDesc tupdesc);

extern void popug_consumer_register(const char *name, const char *drained_by,
									PopugApplyFn apply);
extern PopugApplyFn popug_consumer_apply_fn(const char *name);

extern void popug_consumer_ensure(const char *name);
extern uint64 popug_consumer_read(const char *name, int32 max_events,
								  SPITupleTable **batch);
extern int64 popug_consumer_ack(const char *name);

#endif							/* POPUG_CONSUMER_H */
