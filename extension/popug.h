/*-------------------------------------------------------------------------
 *
 * popug.h
 *		Declarations shared by popug's core (extension/) and its background
 *		workers (workers/).
 *
 * Calling convention of the SQL-callable functions: they are declared
 * SECURITY INVOKER, so GetUserId() on entry is the caller (SET ROLE counts).
 * popug_begin captures the caller and its account, then runs the rest of
 * the call as the extension owner with SPI connected; popug_end undoes
 * both.  search_path is pinned to pg_catalog by each function's SET clause
 * and every statement schema-qualifies popug's objects.
 *
 *-------------------------------------------------------------------------
 */
#ifndef POPUG_H
#define POPUG_H

#include "postgres.h"

#include "executor/spi.h"
#include "utils/date.h"
#include "utils/jsonb.h"
#include "utils/uuid.h"

/* ---- settings (popug.c) ---- */
extern char *popug_database;
extern char *popug_timezone;
extern int	popug_notify_interval;
extern int	popug_accounting_batch;
extern int	popug_payout_batch_size;
extern char *popug_payout_at;

/* ---- roles ---- */
typedef enum PopugRole
{
	POPUG_NO_ROLE = 0,
	POPUG_ADMIN = 1 << 0,
	POPUG_MANAGER = 1 << 1,
	POPUG_ACCOUNTANT = 1 << 2,
	POPUG_WORKER = 1 << 3
} PopugRole;

#define POPUG_ANY_ROLE (POPUG_ADMIN | POPUG_MANAGER | POPUG_ACCOUNTANT | POPUG_WORKER)

extern PopugRole popug_role_from_name(const char *name);
extern const char *popug_role_name(PopugRole role);

/* ---- a call: the caller, the owner switch and SPI (call.c) ---- */
typedef struct PopugCall
{
	Oid			roleid;			/* current_user at the call site */
	const char *rolename;
	bool		superuser;
	bool		has_account;	/* an active account with this login */
	bool		inactive;		/* an account exists but is deactivated */
	pg_uuid_t	account_id;
	PopugRole	role;
	/* restored by popug_end (or by transaction abort) */
	Oid			save_userid;
	int			save_sec_context;
	bool		pushed_snapshot;	/* a snapshot of its own, see popug_begin */
} PopugCall;

extern void popug_begin(PopugCall *call);
extern void popug_end(PopugCall *call);
extern void popug_require(PopugCall *call, int roles, bool superuser_ok,
						  const char *action);

/*
 * A statement prepared once per backend and kept (SPI_keepplan).  Declare
 * them static in the file that uses them.
 */
typedef struct PopugPlan
{
	const char *sql;
	int			nargs;
	Oid			argtypes[12];
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
extern DateADT popug_today(void);

/* ---- checks of input, shared by the features (input.c) ---- */
extern char *popug_trim(char *s);
extern const char *popug_text_problem(const char *s, bool paragraphs);
extern char *popug_quote(const char *s);
extern const char *popug_email_problem(const char *addr, bool dotted_domain);
extern void popug_check_email(const char *addr);
extern void popug_check_day(DateADT day, const char *name);

/* ---- the database a call runs in (origin.c) ---- */
extern char *popug_installed_version(void);
extern bool popug_check_database(void);

/* ---- events (events.c) ---- */
typedef struct PopugJson
{
	JsonbParseState *state;
} PopugJson;

extern void pj_begin(PopugJson *js);
extern void pj_text(PopugJson *js, const char *key, const char *value);
extern void pj_uuid(PopugJson *js, const char *key, const pg_uuid_t *value);
extern void pj_numeric(PopugJson *js, const char *key, Datum numeric);
extern void pj_int(PopugJson *js, const char *key, int64 value);
extern void pj_date(PopugJson *js, const char *key, Datum date);
extern Jsonb *pj_end(PopugJson *js);

extern int64 popug_event_append(const char *name, int version,
								const char *producer,
								const pg_uuid_t *aggregate_id, Jsonb *payload);
extern void popug_events_written(void);
extern void popug_consumer_ensure(const char *name);
extern uint64 popug_consumer_read(const char *name, int32 max_events,
								  SPITupleTable **batch);
extern int64 popug_consumer_ack(const char *name);
extern Oid	popug_event_type(void);
typedef void (*PopugTryFn) (void *arg);
extern bool popug_is_data_error(int sqlerrcode);
extern bool popug_try(PopugTryFn fn, void *arg, ErrorData **error);
extern bool popug_try_if(PopugTryFn fn, void *arg, ErrorData **error,
						 bool (*set_aside) (int sqlerrcode));
extern void popug_dead_letter(const char *consumer, Datum event_id,
							  int64 event, const char *error);

/* ---- features: each adds its declarations under its own heading ---- */

/* tasks (tasks.c) */

/* accounting (accounting.c) */
extern int64 popug_accounting_step(bool *more);
extern bool popug_payment_apply_event(HeapTuple event, TupleDesc tupdesc);

/* payout (payout.c) */
extern bool popug_payout_step(DateADT upto, int batch);
extern int64 popug_scheduler_step(bool *more);

/* mail (mail.c) */
extern void popug_mail_settings(void);
extern int64 popug_mailer_step(bool *more);
extern bool popug_mail_apply_event(HeapTuple event, TupleDesc tupdesc);

/* event retention (retention.c) */
extern int	popug_event_retention;
extern void popug_retention_settings(void);
extern void popug_event_maintain(int *created, int *dropped);
extern void popug_retention_step(void);

/* ---- shared memory, workers and wakeups (popug.c) ---- */
typedef enum PopugWorkerKind
{
	POPUG_WORKER_NOTIFIER = 0,
	POPUG_WORKER_ACCOUNTING,
	POPUG_WORKER_MAILER,
	POPUG_WORKER_SCHEDULER,
	POPUG_NUM_WORKERS
} PopugWorkerKind;

extern const char *const popug_worker_names[POPUG_NUM_WORKERS];

extern void popug_wake(PopugWorkerKind kind);
extern void popug_wake_at_commit(PopugWorkerKind kind);
extern bool popug_take_wakeup(PopugWorkerKind kind);
extern void popug_status_set(PopugWorkerKind kind, const char *state,
							 int64 processed, const char *error);
extern void popug_status_attach(PopugWorkerKind kind);
extern void popug_status_waiting(const char *state);

/* forward declaration: postmaster/bgworker.h */
struct BackgroundWorker;
extern bool popug_worker_define(PopugWorkerKind kind,
								struct BackgroundWorker *worker);

/* ---- worker loop (workers/worker.c) ---- */

/*
 * One pass of a worker's work, run inside a transaction with a snapshot
 * pushed.  Returns how many items it processed; sets *more when it should
 * run again at once instead of sleeping.
 */
typedef int64 (*PopugWorkerStep) (bool *more);

/*
 * The loop every popug worker runs: a pass at start, then one whenever its
 * latch is set or idle_ms (if > 0) passes; after a pass that did something
 * it waits min_gap_ms, so that wakeups arriving meanwhile coalesce.
 */
extern void popug_worker_main(PopugWorkerKind kind, PopugWorkerStep step,
							  long idle_ms, long min_gap_ms) pg_attribute_noreturn();

#endif							/* POPUG_H */
