/*-------------------------------------------------------------------------
 *
 * scheduler.h
 *		The scheduler worker's setting, popug.payout_at (scheduler.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef POPUG_SCHEDULER_H
#define POPUG_SCHEDULER_H

extern void SchedulerInit(void);

#endif							/* POPUG_SCHEDULER_H */
