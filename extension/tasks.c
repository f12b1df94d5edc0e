/*-------------------------------------------------------------------------
 *
 * tasks.c
 *		The task tracker: create, complete, shuffle.
 *
 * Assignment picks a uniformly random active worker in constant time: a
 * random slot of the dense array popug.worker_slot (see identity.c), read
 * after taking the worker pool lock shared.  Removing a worker takes it
 * exclusively, so a task is never assigned to a worker whose removal
 * overlaps the assignment (under REPEATABLE READ or SERIALIZABLE, nor to
 * one removed after the transaction's snapshot: that fails with 40001).
 * The lock is an advisory one: no row lock, no page write, the same cost
 * for 10 workers or 1,000,000.
 *
 * Locking: a shuffle first takes the worker pool lock shared (no account
 * change moves workers under it), then the task table in EXCLUSIVE mode:
 * shuffles serialize (each is a whole), and creations and completions wait
 * for it or it waits for them.  task_complete locks only its task row, and
 * sees the shuffle's result after waiting, so a completion racing a
 * shuffle is either before it or by the new assignee; neither takes locks
 * in an order the other reverses, so they cannot deadlock.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "call.h"
#include "events.h"
#include "input.h"
#include "json.h"
#include "lock.h"
#include "queries.h"

#include "catalog/pg_type.h"
#include "common/pg_prng.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/numeric.h"

#define MAX_TITLE_LEN 255
#define MAX_DESCRIPTION_LEN 10000
#define MAX_JIRA_ID_LEN 64

/* The pool's version: every change of the pool updates its one row. */
static PopugPlan pool_version_plan = {
	"SELECT (SELECT xmin::text FROM popug.worker_pool)", 0, {}
};
static PopugPlan pool_size_plan = {
	"SELECT COALESCE((SELECT n FROM popug.worker_pool), 0)", 0, {}
};
static PopugPlan pick_plan = {
	"SELECT account_id FROM popug.worker_slot WHERE slot = $1", 1, {INT4OID}
};
static PopugPlan insert_plan = {
	"INSERT INTO popug.task (id, title, description, jira_id, assign_fee, "
	"complete_reward, assignee_id, created_by) "
	"VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
	8, {UUIDOID, TEXTOID, TEXTOID, TEXTOID, NUMERICOID, NUMERICOID, UUIDOID, UUIDOID}
};
static PopugPlan complete_plan = {
	"UPDATE popug.task SET status = 'done', completed_at = now() "
	"WHERE id = $1 AND status = 'open' AND assignee_id = $2 "
	"RETURNING complete_reward",
	2, {UUIDOID, UUIDOID}
};
static PopugPlan task_state_plan = {
	"SELECT status, assignee_id FROM popug.task WHERE id = $1", 1, {UUIDOID}
};

static PopugPlan shuffle_lock_plan = {
	"LOCK TABLE popug.task IN EXCLUSIVE MODE", 0, {}
};
static PopugPlan open_exists_plan = {
	"SELECT 1 FROM popug.task WHERE status = 'open' LIMIT 1", 0, {}
};

/* Every open task to a random slot's worker, with its TaskAssigned event. */
static PopugPlan shuffle_plan = {
	POPUG_SQL_TASKS_SHUFFLE, 1, {INT4OID}
};

/* A price drawn uniformly from [lo, hi] cents, as numeric(12,2). */
static Datum
random_price(int64 lo_cents, int64 hi_cents)
{
	int64		cents = (int64) pg_prng_uint64_range(&pg_global_prng_state,
													 lo_cents, hi_cents);
	char		buf[32];

	snprintf(buf, sizeof(buf), INT64_FORMAT ".%02d", cents / 100, (int) (cents % 100));
	return DirectFunctionCall3(numeric_in, CStringGetDatum(buf),
							   ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));
}

/*
 * Checks a title, trimmed of blanks at both ends: 1-255
 * characters of one line, no brackets.  A title of nothing but spaces or
 * invisible characters trims to nothing.
 */
static void
check_title(const char *title)
{
	int			len = pg_mbstrlen(title);
	const char *problem;

	if (len < 1 || len > MAX_TITLE_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("task title must have 1 to %d characters", MAX_TITLE_LEN),
				 errdetail("Without the spaces and invisible characters at its ends, the title has %d.", len),
				 errhint("Put details in the description.")));
	problem = popug_text_problem(title, false);
	if (problem != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("task title must be one line of text"),
				 errdetail_internal("%s", problem),
				 errhint("Put details in the description; it may have line breaks and tabs.")));
	if (strpbrk(title, "[]") != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("task title must not contain \"[\" or \"]\""),
				 errdetail("Title: %s.", popug_quote(title)),
				 errhint("Put a Jira id in jira_id, e.g. popug.task_create('Fix login', '', 'POPUG-42').")));
}

/*
 * Checks a description: at most MAX_DESCRIPTION_LEN characters of
 * paragraphs (line breaks and tabs, no other control characters).
 */
static void
check_description(const char *description)
{
	const char *problem;

	if (pg_mbstrlen(description) > MAX_DESCRIPTION_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("task description must have at most %d characters",
						MAX_DESCRIPTION_LEN),
				 errhint("Link to a longer text instead.")));
	problem = popug_text_problem(description, true);
	if (problem != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("task description has a character that cannot be shown"),
				 errdetail_internal("%s", problem),
				 errhint("A description may have line breaks and tabs, but no other control characters and no bidirectional overrides.")));
}

/* Checks a Jira id: ^[A-Z][A-Z0-9]*-[0-9]+$ */
static void
check_jira_id(const char *jira_id)
{
	const char *p = jira_id;
	bool		ok = strlen(jira_id) <= MAX_JIRA_ID_LEN && *p >= 'A' && *p <= 'Z';

	if (ok)
	{
		for (p++; (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9'); p++)
			;
		ok = *p++ == '-' && *p >= '0' && *p <= '9';
		while (ok && *p >= '0' && *p <= '9')
			p++;
		ok = ok && *p == '\0';
	}
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("malformed Jira id %s", popug_quote(jira_id)),
				 errhint("A Jira id is a project key (capital letters and digits), a dash and a number, e.g. POPUG-42, in at most %d characters.",
						 MAX_JIRA_ID_LEN)));
}

/*
 * Takes the worker pool lock shared.  The pool is then read through the
 * statements' snapshots, which are fresh in read committed; under
 * REPEATABLE READ or SERIALIZABLE a pool changed after the transaction's
 * snapshot fails the call with 40001, since the older view may name a
 * worker taken out (specs/accounts_pool_assign.spec).
 */
static void
lock_pool(void)
{
	popug_xact_lock(POPUG_LOCK_POOL, false);
	popug_require_fresh(&pool_version_plan, "change of the worker pool");
}

/*
 * Picks a uniformly random active worker and returns its id; 55000 when
 * there is none.
 */
static void
pick_worker(pg_uuid_t *out)
{
	bool		isnull;
	int32		n;
	Datum		slot;

	lock_pool();
	popug_exec(&pool_size_plan, NULL, NULL, false, 1);
	n = DatumGetInt32(popug_get(0, 1, &isnull));
	if (n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("no active worker to assign the task to"),
				 errhint("An admin creates worker accounts with popug.account_create(login, email, 'worker').")));
	slot = Int32GetDatum((int32) pg_prng_uint64_range(&pg_global_prng_state, 1, n));
	if (popug_exec(&pick_plan, &slot, NULL, false, 1) != 1)
		elog(ERROR, "worker slot %d of %d is missing", DatumGetInt32(slot), n);
	memcpy(out, DatumGetUUIDP(popug_get(0, 1, &isnull)), sizeof(pg_uuid_t));
}

PG_FUNCTION_INFO_V1(popug_task_create);

/* SQL: popug.task_create(title, description, jira_id) RETURNS uuid */
Datum
popug_task_create(PG_FUNCTION_ARGS)
{
	PopugCall	call;
	pg_uuid_t  *id = palloc(sizeof(pg_uuid_t));
	pg_uuid_t	assignee;
	char	   *title;
	char	   *description = "";
	char	   *jira_id = NULL;
	Datum		fee,
				reward,
				args[8];
	char		nulls[8] = "        ";
	PopugJson	js;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("task title must not be null")));
	title = popug_trim(text_to_cstring(PG_GETARG_TEXT_PP(0)));
	if (!PG_ARGISNULL(1))
		description = text_to_cstring(PG_GETARG_TEXT_PP(1));
	if (!PG_ARGISNULL(2))
		jira_id = text_to_cstring(PG_GETARG_TEXT_PP(2));

	popug_begin(&call);
	popug_require(&call, POPUG_ANY_ROLE, false, "create tasks");
	check_title(title);
	check_description(description);
	if (jira_id)
		check_jira_id(jira_id);

	pick_worker(&assignee);
	fee = random_price(1000, 2000);
	reward = random_price(2000, 4000);
	popug_make_uuid(id);

	args[0] = UUIDPGetDatum(id);
	args[1] = CStringGetTextDatum(title);
	args[2] = CStringGetTextDatum(description);
	args[3] = jira_id ? CStringGetTextDatum(jira_id) : (Datum) 0;
	nulls[3] = jira_id ? ' ' : 'n';
	args[4] = fee;
	args[5] = reward;
	args[6] = UUIDPGetDatum(&assignee);
	args[7] = UUIDPGetDatum(&call.account_id);
	popug_exec(&insert_plan, args, nulls, false, 0);

	popug_json_begin(&js);
	popug_json_uuid(&js, "task_id", id);
	popug_json_text(&js, "jira_id", jira_id);
	popug_json_text(&js, "title", title);
	popug_json_text(&js, "description", description);
	popug_json_numeric(&js, "assign_fee", fee);
	popug_json_numeric(&js, "complete_reward", reward);
	popug_json_uuid(&js, "created_by", &call.account_id);
	popug_event_append("TaskCreated", 2, "tasks", id, popug_json_end(&js));

	popug_json_begin(&js);
	popug_json_uuid(&js, "task_id", id);
	popug_json_uuid(&js, "assignee_id", &assignee);
	popug_json_uuid(&js, "previous_assignee_id", NULL);
	popug_json_numeric(&js, "assign_fee", fee);
	popug_json_text(&js, "reason", "create");
	popug_event_append("TaskAssigned", 1, "tasks", id, popug_json_end(&js));

	popug_end(&call);
	PG_RETURN_UUID_P(id);
}

PG_FUNCTION_INFO_V1(popug_task_complete);

/* SQL: popug.task_complete(task_id): only by the task's current assignee. */
Datum
popug_task_complete(PG_FUNCTION_ARGS)
{
	PopugCall	call;
	pg_uuid_t  *id;
	Datum		args[2];
	Datum		reward;
	bool		isnull;
	PopugJson	js;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("task_id must not be null")));
	id = PG_GETARG_UUID_P(0);

	popug_begin(&call);
	popug_require(&call, POPUG_ANY_ROLE, false, "complete tasks");

	args[0] = UUIDPGetDatum(id);
	args[1] = UUIDPGetDatum(&call.account_id);
	while (popug_exec(&complete_plan, args, NULL, false, 1) == 0)
	{
		char	   *task = DatumGetCString(DirectFunctionCall1(uuid_out, args[0]));

		if (popug_exec(&task_state_plan, args, NULL, false, 1) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_NO_DATA_FOUND),
					 errmsg("task %s does not exist", task)));
		/* someone else's task is refused whether or not it is done */
		if (memcmp(DatumGetUUIDP(popug_get(0, 2, &isnull)), &call.account_id,
				   sizeof(pg_uuid_t)) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("task %s is not assigned to \"%s\"", task, call.rolename),
					 errdetail("Only a task's current assignee can complete it.")));
		if (strcmp(popug_get_text(0, 1), "done") == 0)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("task %s is already done", task)));
		/* shuffled away and back meanwhile: it is ours and open, try again */
	}
	reward = popug_get(0, 1, &isnull);

	popug_json_begin(&js);
	popug_json_uuid(&js, "task_id", id);
	popug_json_uuid(&js, "assignee_id", &call.account_id);
	popug_json_numeric(&js, "complete_reward", reward);
	popug_event_append("TaskCompleted", 1, "tasks", id, popug_json_end(&js));

	popug_end(&call);
	PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(popug_tasks_shuffle);

/* SQL: popug.tasks_shuffle() RETURNS bigint: open tasks reassigned. */
Datum
popug_tasks_shuffle(PG_FUNCTION_ARGS)
{
	PopugCall	call;
	Datum		n;
	bool		isnull;
	uint64		moved;

	popug_begin(&call);
	popug_require(&call, POPUG_ROLE_ADMIN | POPUG_ROLE_MANAGER, false, "shuffle tasks");

	lock_pool();
	popug_exec(&pool_size_plan, NULL, NULL, false, 1);
	n = popug_get(0, 1, &isnull);
	popug_exec(&shuffle_lock_plan, NULL, NULL, false, 0);
	if (DatumGetInt32(n) == 0)
	{
		if (popug_exec(&open_exists_plan, NULL, NULL, true, 1) > 0)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("no active worker to assign the open tasks to"),
					 errhint("An admin creates worker accounts with popug.account_create(login, email, 'worker').")));
		moved = 0;
	}
	else
	{
		moved = popug_exec(&shuffle_plan, &n, NULL, false, 0);
		if (moved > 0)
			popug_events_written();
	}

	popug_end(&call);
	PG_RETURN_INT64((int64) moved);
}
