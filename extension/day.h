/*-------------------------------------------------------------------------
 *
 * day.h
 *		Billing days: popug.timezone and today in it (day.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef POPUG_DAY_H
#define POPUG_DAY_H

#include "postgres.h"

#include "utils/date.h"

extern char *popug_timezone;

extern void DayInit(void);
extern void popug_local_now(DateADT *day, TimeADT *time);
extern DateADT popug_today(void);

#endif							/* POPUG_DAY_H */
