/*-------------------------------------------------------------------------
 *
 * accounting.h
 *		Applying events to balances and payments (accounting.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef POPUG_ACCOUNTING_H
#define POPUG_ACCOUNTING_H

#include "postgres.h"

#include "access/htup.h"
#include "access/tupdesc.h"

extern void AccountingInit(void);
extern int64 popug_accounting_step(bool *more);
extern bool popug_payment_apply_event(HeapTuple event, TupleDesc tupdesc);

#endif							/* POPUG_ACCOUNTING_H */
