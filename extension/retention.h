/*-------------------------------------------------------------------------
 *
 * retention.h
 *		Event retention: partitions of popug.event (retention.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef POPUG_RETENTION_H
#define POPUG_RETENTION_H

#include "postgres.h"

extern int	popug_event_retention;
extern void RetentionInit(void);
extern void popug_event_maintain(int *created, int *dropped);
extern void popug_retention_step(void);

#endif							/* POPUG_RETENTION_H */
