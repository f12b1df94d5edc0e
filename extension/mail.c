/*-------------------------------------------------------------------------
 *
 * mail.c
 *		Payout mail: PayoutMade events become popug.mail rows, sent
 *		over SMTP with libcurl, retried with exponential backoff.
 *
 * The durable consumer "mailer" turns each PayoutMade event into one mail
 * (unique by event id, so a redelivered event queues nothing new).  A mail
 * whose recipient cannot be put in a header safely is queued as 'failed'
 * with the reason, never sent.
 *
 * Sending claims due mails (FOR UPDATE SKIP LOCKED), counts the attempt and
 * sets next_attempt_at a lease ahead (the SMTP timeout and a second), so
 * that a sender that dies mid-send leaves the mail to be retried once the
 * lease runs out.  The mailer worker (workers/mailer.c) commits the claim
 * before talking to the server and records each result in a transaction
 * of its own right after, so a mail the server confirmed is re-sent only
 * if the worker dies in between (SMTP itself cannot do better).
 * mail_dispatch() does all of it in the caller's transaction.  Nothing
 * here commits.
 *
 * Results: 2xx sent; 5xx failed at once; 4xx or no answer (connection
 * refused, timeout) retried after popug.mail_retry_base * 2^(attempts-1)
 * seconds, with jitter of +-50%, until popug.mail_max_attempts.
 * mail_resend() puts a failed mail back to pending, attempts reset.
 *
 * Every time the mailer writes or compares is clock_timestamp(), never
 * now(): a pass (and mail_dispatch()) sends one mail after another in
 * transactions whose start may lie long behind, and a lease counted from
 * there could have run out before it is taken, letting another sender
 * claim a mail still being sent.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "mail.h"

#include "call.h"
#include "consumer.h"
#include "deadletter.h"
#include "events.h"
#include "input.h"
#include "process.h"

#include <curl/curl.h>
#include <time.h>

#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

#define CONSUMER "mailer"

/* settings */
char	   *popug_smtp_url = NULL;
char	   *popug_smtp_from = NULL;
char	   *popug_smtp_user = NULL;
char	   *popug_smtp_password = NULL;
bool		popug_smtp_starttls = false;
int			popug_smtp_timeout = 10000;
int			popug_mail_max_attempts = 5;
int			popug_mail_retry_base = 30;
int			popug_mail_retention = 30;

/* A claimed mail, kept across the transactions of a worker pass. */
typedef struct Mail
{
	int64		id;
	char	   *to_addr;
	char	   *subject;
	char	   *body;
	char	   *event_id;
	int			attempts;
	/* the outcome */
	bool		sent;
	bool		permanent;		/* failed for good (5xx) */
	char	   *error;
} Mail;

static PopugPlan queue_plan = {
	"INSERT INTO popug.mail (account_id, event_id, to_addr, subject, body, status, last_error,"
	"                        created_at, next_attempt_at) "
	"SELECT ($2->>'account_id')::uuid, $1, $2->>'email',"
	"       'popug payout for ' || ($2->>'billing_day')::date,"
	"       concat('Hello,', E'\\n\\n', 'popug paid you ', ($2->>'amount')::numeric(14,2),"
	"              ' for ', ($2->>'billing_day')::date, '.', E'\\n\\n',"
	"              'Your audit log: SELECT * FROM popug.my_audit_log;', E'\\n\\n', '-- popug', E'\\n'),"
	"       CASE WHEN $3 IS NULL THEN 'pending' ELSE 'failed' END, $3,"
	"       clock_timestamp(), clock_timestamp() "
	"ON CONFLICT (event_id) DO NOTHING",
	3, {UUIDOID, JSONBOID, TEXTOID}
};
static PopugPlan claim_plan = {
	"UPDATE popug.mail m SET attempts = attempts + 1,"
	"       next_attempt_at = clock_timestamp() + make_interval(secs => $2) "
	" WHERE id IN (SELECT id FROM popug.mail WHERE status = 'pending' AND next_attempt_at <= clock_timestamp()"
	"              ORDER BY next_attempt_at, id LIMIT $1 FOR UPDATE SKIP LOCKED) "
	"RETURNING id, to_addr, subject, body, event_id::text, attempts",
	2, {INT4OID, INT4OID}
};
static PopugPlan sent_plan = {
	"UPDATE popug.mail SET status = 'sent', sent_at = clock_timestamp(), last_error = NULL WHERE id = $1",
	1, {INT8OID}
};
static PopugPlan failed_plan = {
	"UPDATE popug.mail SET status = CASE WHEN $3 OR attempts >= $4 THEN 'failed' ELSE 'pending' END,"
	"       next_attempt_at = clock_timestamp() + make_interval(secs => $5 * 2 ^ (attempts - 1) * (0.5 + random())),"
	"       last_error = $2 WHERE id = $1",
	5, {INT8OID, TEXTOID, BOOLOID, INT4OID, INT4OID}
};
static PopugPlan resend_plan = {
	"UPDATE popug.mail SET status = 'pending', attempts = 0, next_attempt_at = clock_timestamp()"
	" WHERE id = $1 AND status = 'failed'",
	1, {INT8OID}
};
static PopugPlan mail_plan = {
	"SELECT status, to_addr FROM popug.mail WHERE id = $1 FOR UPDATE", 1, {INT8OID}
};
static PopugPlan prune_plan = {
	"DELETE FROM popug.mail WHERE status = 'sent' AND sent_at < clock_timestamp() - make_interval(days => $1)",
	1, {INT4OID}
};

/*
 * Check hook: popug.smtp_url is empty, or an smtp:// or smtps:// URL with
 * no spaces, control characters or credentials: every role can read it in
 * pg_settings.
 */
static bool
check_smtp_url(char **newval, void **extra, GucSource source)
{
	const char *url = *newval;

	if (url == NULL || url[0] == '\0')
		return true;
	if (pg_strncasecmp(url, "smtp://", 7) != 0 && pg_strncasecmp(url, "smtps://", 8) != 0)
	{
		GUC_check_errdetail("Only smtp:// and smtps:// URLs are accepted.");
		return false;
	}
	for (const char *p = url; *p; p++)
		if ((unsigned char) *p <= ' ' || *p == 0x7f)
		{
			GUC_check_errdetail("The URL must not contain spaces or control characters.");
			return false;
		}
	if (strchr(url, '@') != NULL)
	{
		GUC_check_errdetail("The URL must not contain credentials (user:password@): every role can read popug.smtp_url.");
		GUC_check_errhint("Set popug.smtp_user and popug.smtp_password instead; only superusers can read the password.");
		return false;
	}
	return true;
}

/*
 * Check hook: popug.smtp_password is not stored where every role can read
 * it.  ALTER ROLE ... SET and ALTER DATABASE ... SET (pg_db_role_setting)
 * and a function's SET clause (pg_proc) validate it with source
 * PGC_S_TEST; postgresql.conf, ALTER SYSTEM and SET do not.
 */
static bool
check_smtp_password(char **newval, void **extra, GucSource source)
{
	if (source != PGC_S_TEST || *newval == NULL || (*newval)[0] == '\0')
		return true;
	GUC_check_errcode(ERRCODE_INSUFFICIENT_PRIVILEGE);
	GUC_check_errmsg("popug.smtp_password cannot be stored for a role, a database or a function");
	GUC_check_errdetail("Those settings are readable by every role.");
	GUC_check_errhint("Set it in postgresql.conf or with ALTER SYSTEM.");
	return false;
}

/* Check hook: popug.smtp_from is empty or a plain address. */
static bool
check_smtp_from(char **newval, void **extra, GucSource source)
{
	const char *problem;

	if (*newval == NULL || (*newval)[0] == '\0')
		return true;
	problem = popug_email_problem(*newval, false);
	if (problem == NULL)
		return true;
	GUC_check_errdetail("popug.smtp_from must be a plain address such as popug@example.com. %s", problem);
	return false;
}

/*
 * Defines the mail settings and registers the mailer consumer with what it
 * does with a replayed dead letter (called from _PG_init).
 */
void
MailInit(void)
{
	DefineCustomStringVariable("popug.smtp_url",
							   "SMTP server payout mail is sent to: smtp://host:port or smtps://host:port.",
							   "Empty: mail is queued but not sent.",
							   &popug_smtp_url, "", PGC_SUSET, 0,
							   check_smtp_url, NULL, NULL);
	DefineCustomStringVariable("popug.smtp_from", "Sender address of payout mail.", NULL,
							   &popug_smtp_from, "popug@localhost", PGC_SUSET, 0,
							   check_smtp_from, NULL, NULL);
	DefineCustomStringVariable("popug.smtp_user", "SMTP user name (empty: no authentication).", NULL,
							   &popug_smtp_user, "", PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("popug.smtp_password", "SMTP password.", NULL,
							   &popug_smtp_password, "", PGC_SUSET,
							   GUC_SUPERUSER_ONLY | GUC_NO_SHOW_ALL, check_smtp_password,
							   NULL, NULL);
	DefineCustomBoolVariable("popug.smtp_starttls",
							 "Require STARTTLS on smtp:// URLs (smtps:// is TLS from the start).", NULL,
							 &popug_smtp_starttls, false, PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("popug.smtp_timeout", "Timeout of one SMTP delivery.", NULL,
							&popug_smtp_timeout, 10000, 100, 600000, PGC_SUSET,
							GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("popug.mail_max_attempts", "Attempts before a mail is failed.", NULL,
							&popug_mail_max_attempts, 5, 1, 100, PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("popug.mail_retry_base",
							"First retry delay of a mail; it doubles with each attempt, with jitter.", NULL,
							&popug_mail_retry_base, 30, 0, 86400, PGC_SUSET, GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomIntVariable("popug.mail_retention", "Days sent mail is kept.", NULL,
							&popug_mail_retention, 30, 1, 3650, PGC_SUSET, 0, NULL, NULL, NULL);
	popug_consumer_register(CONSUMER, "popug.mail_dispatch()",
							popug_mail_apply_event);
}

/* ---- queueing ---- */

/* Queues the mail of one PayoutMade payload; a bad address queues it failed. */
static void
queue_mail(Datum event_id, Datum payload)
{
	Datum		args[3];
	char		nulls[3] = "  n";
	Jsonb	   *jb = DatumGetJsonbP(payload);
	JsonbValue	key;
	JsonbValue *email;
	const char *problem = "The payload has no email.";

	key.type = jbvString;
	key.val.string.val = "email";
	key.val.string.len = 5;
	email = findJsonbValueFromContainer(&jb->root, JB_FOBJECT, &key);
	if (email != NULL && email->type == jbvString)
		problem = popug_email_problem(pnstrdup(email->val.string.val, email->val.string.len),
									  true);
	if (problem != NULL)
	{
		args[2] = CStringGetTextDatum(psprintf("invalid recipient address, not sent: %s", problem));
		nulls[2] = ' ';
	}
	args[0] = event_id;
	args[1] = payload;
	popug_exec(&queue_plan, args, nulls, false, 0);
}

/* Whether an event row (columns as in tupdesc) is a PayoutMade. */
static bool
is_payout(HeapTuple tuple, TupleDesc tupdesc)
{
	return strcmp(TextDatumGetCString(popug_field(tuple, tupdesc,
												  SPI_fnumber(tupdesc, "event_name"))),
				  "PayoutMade") == 0;
}

/*
 * Queues the mail of one PayoutMade event row (columns as in tupdesc).
 * Raises only what queueing raises, so a consumer can set a bad event
 * aside.
 */
static void
queue_event(HeapTuple tuple, TupleDesc tupdesc)
{
	int32		version = DatumGetInt32(popug_field(tuple, tupdesc,
													SPI_fnumber(tupdesc, "event_version")));
	char	   *problem = popug_event_version_problem("PayoutMade", version);

	if (problem != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg_internal("%s", problem)));
	queue_mail(popug_field(tuple, tupdesc, SPI_fnumber(tupdesc, "event_id")),
			   popug_field(tuple, tupdesc, SPI_fnumber(tupdesc, "payload")));
}

/* Arguments of queue_event_fn, run through popug_try. */
typedef struct QueueArgs
{
	HeapTuple	tuple;
	TupleDesc	tupdesc;
} QueueArgs;

/* popug_try callback: queue_event. */
static void
queue_event_fn(void *arg)
{
	QueueArgs  *a = (QueueArgs *) arg;

	queue_event(a->tuple, a->tupdesc);
}

/*
 * Applies one row of popug.event's columns (as in tupdesc) for popug's own
 * callers (dead_letter_retry): queues its mail if it is a PayoutMade.
 * Returns whether it queued one.  Must run inside a call.
 */
bool
popug_mail_apply_event(HeapTuple event, TupleDesc tupdesc)
{
	if (!is_payout(event, tupdesc))
		return false;
	queue_event(event, tupdesc);
	return SPI_processed > 0;
}

/*
 * Drains the mailer consumer into popug.mail; an event that cannot be
 * queued for its data is set aside as a dead letter.  Runs inside a call.
 */
static void
consume(void)
{
	uint64		n;

	popug_consumer_ensure(CONSUMER);
	do
	{
		SPITupleTable *tt;

		n = popug_consumer_read(CONSUMER, 1000, &tt);
		for (uint64 i = 0; i < n; i++)
		{
			QueueArgs	a = {tt->vals[i], tt->tupdesc};
			ErrorData  *error;

			if (is_payout(a.tuple, a.tupdesc) && !popug_try(queue_event_fn, &a, &error))
				popug_dead_letter(CONSUMER,
								  popug_field(a.tuple, a.tupdesc, SPI_fnumber(a.tupdesc, "event_id")),
								  DatumGetInt64(popug_field(a.tuple, a.tupdesc,
															SPI_fnumber(a.tupdesc, "id"))),
								  error->message);
		}
		if (tt != NULL)
			SPI_freetuptable(tt);
		popug_consumer_ack(CONSUMER);
	} while (n > 0);
}

/* ---- sending ---- */

typedef struct Upload
{
	const char *data;
	size_t		left;
} Upload;

/* libcurl read callback: hands out the message. */
static size_t
read_message(char *buf, size_t size, size_t nitems, void *userdata)
{
	Upload	   *u = (Upload *) userdata;
	size_t		n = Min(size * nitems, u->left);

	memcpy(buf, u->data, n);
	u->data += n;
	u->left -= n;
	return n;
}

/* The RFC 5322 message of a mail, CRLF line endings. */
static char *
build_message(const Mail *m)
{
	StringInfoData s;
	char		date[64];
	time_t		now = time(NULL);
	struct tm	tm;

	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	initStringInfo(&s);
	appendStringInfo(&s, "Date: %s\r\n", date);
	appendStringInfo(&s, "Message-ID: <%s@popug>\r\n", m->event_id);
	appendStringInfo(&s, "From: <%s>\r\n", popug_smtp_from);
	appendStringInfo(&s, "To: <%s>\r\n", m->to_addr);
	appendStringInfo(&s, "Subject: %s\r\n", m->subject);
	appendStringInfoString(&s, "MIME-Version: 1.0\r\n"
						   "Content-Type: text/plain; charset=utf-8\r\n"
						   "Content-Transfer-Encoding: 8bit\r\n\r\n");
	for (const char *p = m->body; *p; p++)
	{
		if (*p == '\n' && (p == m->body || p[-1] != '\r'))
			appendStringInfoChar(&s, '\r');
		appendStringInfoChar(&s, *p);
	}
	return s.data;
}

/*
 * Sends one mail; fills in its outcome.  Makes no database calls and
 * raises no errors, so it can run outside a transaction.
 */
static void
send_mail(Mail *m)
{
	static bool curl_ready = false;
	CURL	   *curl;
	CURLcode	rc;
	struct curl_slist *rcpt = NULL;
	char		errbuf[CURL_ERROR_SIZE] = "";
	char	   *from = psprintf("<%s>", popug_smtp_from);
	long		code = 0;
	Upload		u;

	if (!curl_ready)
	{
		curl_global_init(CURL_GLOBAL_DEFAULT);
		curl_ready = true;
	}
	if (popug_smtp_url == NULL || popug_smtp_url[0] == '\0')
	{
		m->error = "popug.smtp_url is not set";
		return;
	}
	u.data = build_message(m);
	u.left = strlen(u.data);
	curl = curl_easy_init();
	if (curl == NULL)
	{
		m->error = "could not initialize libcurl";
		return;
	}
	rcpt = curl_slist_append(rcpt, psprintf("<%s>", m->to_addr));
	curl_easy_setopt(curl, CURLOPT_URL, popug_smtp_url);
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
	curl_easy_setopt(curl, CURLOPT_MAIL_FROM, from);
	curl_easy_setopt(curl, CURLOPT_MAIL_RCPT, rcpt);
	curl_easy_setopt(curl, CURLOPT_READFUNCTION, read_message);
	curl_easy_setopt(curl, CURLOPT_READDATA, &u);
	curl_easy_setopt(curl, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long) popug_smtp_timeout);
	curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, (long) popug_smtp_timeout);
	curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
	if (popug_smtp_starttls)
		curl_easy_setopt(curl, CURLOPT_USE_SSL, (long) CURLUSESSL_ALL);
	if (popug_smtp_user && popug_smtp_user[0])
	{
		curl_easy_setopt(curl, CURLOPT_USERNAME, popug_smtp_user);
		curl_easy_setopt(curl, CURLOPT_PASSWORD, popug_smtp_password);
	}
	rc = curl_easy_perform(curl);
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
	curl_slist_free_all(rcpt);
	curl_easy_cleanup(curl);

	if (rc == CURLE_OK)
		m->sent = true;
	else
	{
		m->permanent = code >= 500 && code < 600;
		m->error = psprintf("%s%s%s (SMTP reply %ld)", curl_easy_strerror(rc),
							errbuf[0] ? ": " : "", errbuf, code);
	}
}

/* Claims up to max due mails into an array allocated in cxt. */
static int
claim(int max, int lease_s, MemoryContext cxt, Mail **mails)
{
	Datum		args[2] = {Int32GetDatum(max), Int32GetDatum(lease_s)};
	int			n = (int) popug_exec(&claim_plan, args, NULL, false, 0);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	bool		isnull;

	*mails = palloc0(sizeof(Mail) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		Mail	   *m = &(*mails)[i];

		m->id = DatumGetInt64(popug_get(i, 1, &isnull));
		m->to_addr = popug_get_text(i, 2);
		m->subject = popug_get_text(i, 3);
		m->body = popug_get_text(i, 4);
		m->event_id = popug_get_text(i, 5);
		m->attempts = DatumGetInt32(popug_get(i, 6, &isnull));
	}
	MemoryContextSwitchTo(old);
	return n;
}

/* Records the outcomes of sent mails; returns how many were delivered. */
static int
record(Mail *mails, int n)
{
	int			sent = 0;

	for (int i = 0; i < n; i++)
	{
		Datum		args[5];

		args[0] = Int64GetDatum(mails[i].id);
		if (mails[i].sent)
		{
			popug_exec(&sent_plan, args, NULL, false, 0);
			sent++;
			continue;
		}
		args[1] = CStringGetTextDatum(mails[i].error);
		args[2] = BoolGetDatum(mails[i].permanent);
		args[3] = Int32GetDatum(popug_mail_max_attempts);
		args[4] = Int32GetDatum(popug_mail_retry_base);
		popug_exec(&failed_plan, args, NULL, false, 0);
	}
	return sent;
}

/* Deletes sent mail older than popug.mail_retention days. */
static void
prune(void)
{
	Datum		arg = Int32GetDatum(popug_mail_retention);

	popug_exec(&prune_plan, &arg, NULL, false, 0);
}

/* Queues the mail of new PayoutMade events and prunes old sent mail. */
void
popug_mail_queue(void)
{
	PopugCall	call;

	popug_begin(&call);
	consume();
	prune();
	popug_end(&call);
}

/*
 * Claims one due mail into cxt, leased for the SMTP timeout plus a second:
 * a sender still silent after that is dead.  NULL when none is due or no
 * server is set (mail stays queued).
 */
PopugMail *
popug_mail_claim(MemoryContext cxt)
{
	PopugCall	call;
	Mail	   *mail = NULL;

	if (popug_smtp_url[0] == '\0')
		return NULL;
	popug_begin(&call);
	if (claim(1, popug_smtp_timeout / 1000 + 1, cxt, &mail) == 0)
		mail = NULL;
	popug_end(&call);
	return mail;
}

/* Sends a claimed mail, with no transaction needed; notes the outcome. */
void
popug_mail_send(PopugMail *mail)
{
	send_mail(mail);
}

/* Records the outcome of a claimed mail; returns whether it was sent. */
bool
popug_mail_record(PopugMail *mail)
{
	PopugCall	call;
	int			sent;

	popug_begin(&call);
	sent = record(mail, 1);
	popug_end(&call);
	return sent > 0;
}

PG_FUNCTION_INFO_V1(popug_mail_dispatch);

/* SQL: popug.mail_dispatch(max_mails) RETURNS int: mails delivered now. */
Datum
popug_mail_dispatch(PG_FUNCTION_ARGS)
{
	PopugCall	call;
	int			max;
	Mail	   *mails;
	int			n;
	int			sent;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("max_mails must not be null")));
	max = PG_GETARG_INT32(0);
	if (max < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_mails must not be negative")));
	popug_begin(&call);
	popug_require(&call, POPUG_ROLE_ADMIN, true, "send mail");
	consume();
	prune();
	n = max > 0 && popug_smtp_url[0] != '\0' ? claim(max, 0, CurrentMemoryContext, &mails) : 0;
	for (int i = 0; i < n; i++)
		send_mail(&mails[i]);
	sent = n > 0 ? record(mails, n) : 0;
	popug_end(&call);
	PG_RETURN_INT32(sent);
}

PG_FUNCTION_INFO_V1(popug_mail_resend);

/*
 * SQL: popug.mail_resend(mail_id): a failed mail back to pending, its
 * attempts reset, for the mailer to send again.  Unknown: P0002; not
 * failed: 55000; a recipient address that may not be sent to: 22023.
 */
Datum
popug_mail_resend(PG_FUNCTION_ARGS)
{
	PopugCall	call;
	Datum		id;
	char	   *status;
	const char *problem;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("mail_id must not be null")));
	id = PG_GETARG_DATUM(0);
	popug_begin(&call);
	popug_require(&call, POPUG_ROLE_ADMIN, true, "resend mail");
	if (popug_exec(&mail_plan, &id, NULL, false, 1) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("popug mail %lld does not exist", (long long) DatumGetInt64(id))));
	status = popug_get_text(0, 1);
	if (strcmp(status, "failed") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("popug mail %lld is %s, not failed", (long long) DatumGetInt64(id), status),
				 errhint("Only a failed mail can be resent: a pending one is still being tried, a sent one was delivered.")));
	problem = popug_email_problem(popug_get_text(0, 2), true);
	if (problem != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("popug mail %lld cannot be resent: its recipient address is invalid",
						(long long) DatumGetInt64(id)),
				 errdetail_internal("%s", problem)));
	popug_exec(&resend_plan, &id, NULL, false, 0);
	popug_wake_at_commit(POPUG_PROCESS_MAILER);
	popug_end(&call);
	PG_RETURN_VOID();
}
