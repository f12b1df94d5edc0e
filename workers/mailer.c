/*-------------------------------------------------------------------------
 *
 * mailer.c
 *		The mailer worker: queues and sends payout mail.
 *
 * Payouts set its latch when they commit; it also wakes every second for
 * mail whose retry has come due.  Each pass queues new PayoutMade mail,
 * then sends a batch of due mail with no transaction open while it talks
 * to the SMTP server (see extension/mail.c).
 *
 *-------------------------------------------------------------------------
 */
#include "popug.h"

#include "postmaster/bgworker.h"

#define RETRY_POLL_MS 1000L

PGDLLEXPORT void popug_mailer_main(Datum arg);

/* Entry point of the mailer background worker. */
void
popug_mailer_main(Datum arg)
{
	popug_worker_main(POPUG_WORKER_MAILER, popug_mailer_step, RETRY_POLL_MS, 0);
}
