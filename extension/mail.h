/*-------------------------------------------------------------------------
 *
 * mail.h
 *		Payout mail: queueing and sending over SMTP (mail.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef POPUG_MAIL_H
#define POPUG_MAIL_H

#include "postgres.h"

#include "access/htup.h"
#include "access/tupdesc.h"
#include "utils/palloc.h"

extern void MailInit(void);

/* A claimed mail, kept across the transactions of a worker pass. */
typedef struct Mail PopugMail;

extern void popug_mail_queue(void);
extern PopugMail *popug_mail_claim(MemoryContext cxt);
extern void popug_mail_send(PopugMail *mail);
extern bool popug_mail_record(PopugMail *mail);
extern bool popug_mail_apply_event(HeapTuple event, TupleDesc tupdesc);

#endif							/* POPUG_MAIL_H */
