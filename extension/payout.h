/*-------------------------------------------------------------------------
 *
 * payout.h
 *		The daily payout and the time it is due (payout.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef POPUG_PAYOUT_H
#define POPUG_PAYOUT_H

#include "postgres.h"

#include "utils/date.h"

extern int	popug_payout_batch_size;

extern void PayoutInit(void);
extern bool popug_payout_step(DateADT upto, int batch);

#endif							/* POPUG_PAYOUT_H */
