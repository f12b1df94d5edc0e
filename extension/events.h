/*-------------------------------------------------------------------------
 *
 * events.h
 *		Appending events to the outbox, popug.event (events.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef POPUG_EVENTS_H
#define POPUG_EVENTS_H

#include "postgres.h"

#include "utils/jsonb.h"
#include "utils/uuid.h"

extern int64 popug_event_append(const char *name, int version,
								const char *producer,
								const pg_uuid_t *aggregate_id, Jsonb *payload);
extern void popug_events_written(void);
extern Oid	popug_event_type(void);
extern char *popug_event_version_problem(const char *name, int version);

#endif							/* POPUG_EVENTS_H */
