/*-------------------------------------------------------------------------
 *
 * deadletter.h
 *		Setting aside what a consumer cannot process: the subtransaction
 *		helper and dead letters (deadletter.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef POPUG_DEADLETTER_H
#define POPUG_DEADLETTER_H

#include "postgres.h"

typedef void (*PopugTryFn) (void *arg);

extern bool popug_is_data_error(int sqlerrcode);
extern bool popug_try(PopugTryFn fn, void *arg, ErrorData **error);
extern bool popug_try_if(PopugTryFn fn, void *arg, ErrorData **error,
						 bool (*set_aside) (int sqlerrcode));
extern void popug_dead_letter(const char *consumer, Datum event_id,
							  int64 event, const char *error);

#endif							/* POPUG_DEADLETTER_H */
