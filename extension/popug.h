/*-------------------------------------------------------------------------
 *
 * popug.h
 *		What stats.c and payout.c share: a day's money figures.  Every
 *		module has its own header besides (call.h, events.h, ...).
 *
 *-------------------------------------------------------------------------
 */
#ifndef POPUG_H
#define POPUG_H

/*
 * A day's money figures as aggregates over its popug.payment rows:
 * computed by stats.c for open days and kept by payout.c when it closes
 * one, so both agree by construction.  NULL where no row counts.
 */
#define POPUG_DAY_MONEY_SQL \
	" sum(debit) FILTER (WHERE kind = 'assign_fee') AS fees," \
	" sum(credit) FILTER (WHERE kind = 'complete_reward') AS rewards," \
	" sum(debit) FILTER (WHERE kind = 'payout') AS payouts," \
	" count(*) FILTER (WHERE kind = 'complete_reward') AS completed"

#endif							/* POPUG_H */
