/*-------------------------------------------------------------------------
 *
 * mailer.c
 *		The mailer worker: queues and sends payout mail.
 *
 * Payouts set its latch when they commit; it also wakes every second for
 * mail whose retry has come due.  Each pass queues new PayoutMade mail,
 * then up to BATCH times claims one due mail and commits, sends it with no
 * transaction open, records the outcome and commits: a mail the server
 * confirmed is re-sent only if the worker dies between sending and
 * recording (see extension/mail.c for the lease that makes that safe).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "mail.h"
#include "worker.h"

#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "utils/memutils.h"

#define RETRY_POLL_MS 1000L
#define BATCH 20

PGDLLEXPORT void popug_mailer_main(Datum arg);

/*
 * One pass of the mailer worker; returns how many mails were delivered.
 * Called by the worker loop inside a transaction; returns inside one.
 */
static int64
mailer_step(bool *more)
{
	static MemoryContext cxt = NULL;
	int			sent = 0;
	int			claimed = 0;

	if (cxt == NULL)
		cxt = AllocSetContextCreate(TopMemoryContext, "popug mailer",
									ALLOCSET_DEFAULT_SIZES);
	popug_mail_queue();
	for (; claimed < BATCH; claimed++)
	{
		PopugMail  *mail;
		MemoryContext old;

		MemoryContextReset(cxt);
		mail = popug_mail_claim(cxt);
		if (mail == NULL)
			break;

		popug_worker_xact_commit();
		old = MemoryContextSwitchTo(cxt);
		popug_mail_send(mail);
		MemoryContextSwitchTo(old);
		popug_worker_xact_begin();
		CHECK_FOR_INTERRUPTS();

		if (popug_mail_record(mail))
			sent++;
	}
	*more = claimed == BATCH;
	return sent;
}

/* Entry point of the mailer background worker. */
void
popug_mailer_main(Datum arg)
{
	popug_worker_main(POPUG_PROCESS_MAILER, mailer_step, RETRY_POLL_MS, 0);
}
