/*-------------------------------------------------------------------------
 *
 * plan.h
 *		Kept SPI plans and reading their results (plan.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef POPUG_PLAN_H
#define POPUG_PLAN_H

#include "postgres.h"

#include "executor/spi.h"
#include "utils/uuid.h"

/*
 * A statement prepared once per backend and kept (SPI_keepplan).  Declare
 * them static in the file that uses them.  cursor_options are
 * SPI_prepare_cursor's (CURSOR_OPT_GENERIC_PLAN for a statement whose
 * custom plans go wrong on tables without statistics).
 */
typedef struct PopugPlan
{
	const char *sql;
	int			nargs;
	Oid			argtypes[12];
	int			cursor_options;
	SPIPlanPtr	plan;
} PopugPlan;

extern uint64 popug_exec(PopugPlan *plan, Datum *values, const char *nulls,
						 bool read_only, long count);
extern uint64 popug_exec_latest(PopugPlan *plan, Datum *values,
								const char *nulls, long count);
extern void popug_require_fresh(PopugPlan *plan, const char *what);
extern Datum popug_get(int row, int col, bool *isnull);
extern Datum popug_field(HeapTuple tuple, TupleDesc tupdesc, int col);
extern char *popug_get_text(int row, int col);
extern void popug_make_uuid(pg_uuid_t *out);

#endif							/* POPUG_PLAN_H */
