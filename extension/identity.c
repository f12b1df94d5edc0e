/*-------------------------------------------------------------------------
 *
 * identity.c
 *		Accounts: create, change role, deactivate, reactivate,
 *		whoami.
 *
 * An account's login is the PostgreSQL role that acts as it.  Active
 * workers are also kept in a dense array (popug.worker_slot, 1..n) so that
 * task assignment picks a uniformly random worker in constant time; every
 * change to that array first locks the single popug.worker_pool row, which
 * serializes account changes that touch the pool.  Role changes and
 * deactivations first take the worker pool lock (an advisory lock)
 * exclusively, before any row lock; assignment holds it shared, so a
 * worker is never given a task by a transaction that overlaps its removal,
 * and both take their locks in the same order (pool lock, then rows).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "call.h"
#include "events.h"
#include "input.h"
#include "json.h"
#include "lock.h"

#include "catalog/pg_type.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#define MAX_NAME_LEN 255

static PopugPlan login_taken_plan = {
	"SELECT id::text, active FROM popug.account WHERE login = $1", 1, {NAMEOID}
};
static PopugPlan insert_plan = {
	"INSERT INTO popug.account (id, login, email, role, full_name) "
	"VALUES ($1, $2, $3, $4::text::popug.role, $5)",
	5, {UUIDOID, NAMEOID, TEXTOID, TEXTOID, TEXTOID}
};
static PopugPlan lock_account_plan = {
	"SELECT role::text, active FROM popug.account WHERE id = $1 FOR UPDATE",
	1, {UUIDOID}
};
static PopugPlan set_role_plan = {
	"UPDATE popug.account SET role = $2::text::popug.role, updated_at = now() "
	"WHERE id = $1",
	2, {UUIDOID, TEXTOID}
};
static PopugPlan set_active_plan = {
	"UPDATE popug.account SET active = $2, updated_at = now() WHERE id = $1 RETURNING login",
	2, {UUIDOID, BOOLOID}
};
/* Locks the pool's one row, making it on the first worker's arrival. */
static PopugPlan pool_lock_plan = {
	"INSERT INTO popug.worker_pool DEFAULT VALUES ON CONFLICT (one) DO UPDATE SET n = popug.worker_pool.n RETURNING n",
	0, {}
};
static PopugPlan slot_add_plan = {
	"WITH p AS (UPDATE popug.worker_pool SET n = n + 1 RETURNING n) "
	"INSERT INTO popug.worker_slot (slot, account_id) SELECT n, $1 FROM p",
	1, {UUIDOID}
};
static PopugPlan slot_delete_plan = {
	"DELETE FROM popug.worker_slot WHERE account_id = $1 RETURNING slot",
	1, {UUIDOID}
};
static PopugPlan slot_move_plan = {
	"UPDATE popug.worker_slot SET slot = $1 WHERE slot = $2",
	2, {INT4OID, INT4OID}
};
static PopugPlan pool_shrink_plan = {
	"UPDATE popug.worker_pool SET n = n - 1", 0, {}
};
static PopugPlan whoami_plan = {
	"SELECT * FROM popug.account WHERE id = $1", 1, {UUIDOID}
};

/* Raises 22004 when a required argument is NULL. */
static void
require_arg(FunctionCallInfo fcinfo, int argno, const char *name)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", name)));
}

/*
 * Checks account_create's arguments before anything is read or written: a
 * login of one line, an address mail can be sent to, a full name of one
 * line.  That the login's role exists (42704) and has no account yet
 * (23505) is checked after.
 */
static void
check_account_input(const char *login, const char *email, const char *full_name)
{
	const char *problem;

	problem = login[0] == '\0' ? "It is empty." : popug_text_problem(login, false);
	if (problem != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid login %s", popug_quote(login)),
				 errdetail_internal("%s", problem),
				 errhint("A login is the name of the PostgreSQL role that acts as the account.")));
	popug_check_email(email);
	if (full_name == NULL)
		return;
	problem = pg_mbstrlen(full_name) > MAX_NAME_LEN ?
		psprintf("It has more than %d characters.", MAX_NAME_LEN) :
		popug_text_problem(full_name, false);
	if (problem != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid full name %s", popug_quote(full_name)),
				 errdetail_internal("%s", problem),
				 errhint("A full name is one line of at most %d characters.", MAX_NAME_LEN)));
}

/* Appends a worker to the pool. */
static void
pool_add(Datum account_id)
{
	popug_exec(&pool_lock_plan, NULL, NULL, false, 0);
	popug_exec(&slot_add_plan, &account_id, NULL, false, 0);
}

/* Removes a worker from the pool, moving the last slot into its place. */
static void
pool_remove(Datum account_id)
{
	bool		isnull;
	int32		n,
				slot;
	Datum		args[2];

	popug_exec(&pool_lock_plan, NULL, NULL, false, 0);
	n = DatumGetInt32(popug_get(0, 1, &isnull));
	if (popug_exec(&slot_delete_plan, &account_id, NULL, false, 0) == 0)
		return;
	slot = DatumGetInt32(popug_get(0, 1, &isnull));
	if (slot != n)
	{
		args[0] = Int32GetDatum(slot);
		args[1] = Int32GetDatum(n);
		popug_exec(&slot_move_plan, args, NULL, false, 0);
	}
	popug_exec(&pool_shrink_plan, NULL, NULL, false, 0);
}

/*
 * Locks an account for change; returns its role and whether it is active.
 * Unknown ids raise P0002.
 */
static PopugRole
lock_account(Datum account_id, bool *active)
{
	bool		isnull;

	if (popug_exec(&lock_account_plan, &account_id, NULL, false, 1) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("popug account %s does not exist",
						DatumGetCString(DirectFunctionCall1(uuid_out, account_id)))));
	*active = DatumGetBool(popug_get(0, 2, &isnull));
	return popug_role_from_name(popug_get_text(0, 1));
}

/*
 * Refuses a login that already has an account (23505); a deactivated one
 * is pointed at account_reactivate.  The account is the last SPI result.
 */
static void
login_taken(const char *login)
{
	bool		isnull;
	char	   *id = popug_get_text(0, 1);

	if (DatumGetBool(popug_get(0, 2, &isnull)))
		ereport(ERROR,
				(errcode(ERRCODE_UNIQUE_VIOLATION),
				 errmsg("popug account with login \"%s\" already exists", login)));
	ereport(ERROR,
			(errcode(ERRCODE_UNIQUE_VIOLATION),
			 errmsg("popug account with login \"%s\" already exists", login),
			 errdetail("The account %s is deactivated.", id),
			 errhint("Reactivate it: SELECT popug.account_reactivate('%s');", id)));
}

/* Refuses a login that names no PostgreSQL role (42704). */
static void
check_role_exists(const char *login)
{
	if (!OidIsValid(get_role_oid(login, true)))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("role \"%s\" does not exist", login),
				 errdetail("An account's login is the PostgreSQL role that acts as the account."),
				 errhint("Create the role first: CREATE ROLE %s LOGIN;", quote_identifier(login))));
}

/* Sets a locked account's active flag; returns its login. */
static char *
set_active(Datum account_id, bool active)
{
	Datum		args[2] = {account_id, BoolGetDatum(active)};

	popug_exec(&set_active_plan, args, NULL, false, 0);
	return popug_get_text(0, 1);
}

PG_FUNCTION_INFO_V1(popug_account_create);

/* SQL: popug.account_create(login, email, role, full_name) RETURNS uuid */
Datum
popug_account_create(PG_FUNCTION_ARGS)
{
	PopugCall	call;
	pg_uuid_t  *id = palloc(sizeof(pg_uuid_t));
	Datum		args[5];
	char		nulls[5] = "     ";
	char	   *login,
			   *email,
			   *role;
	char	   *full_name = NULL;
	PopugJson	js;

	require_arg(fcinfo, 0, "login");
	require_arg(fcinfo, 1, "email");
	require_arg(fcinfo, 2, "role");
	login = NameStr(*PG_GETARG_NAME(0));
	email = text_to_cstring(PG_GETARG_TEXT_PP(1));
	role = DatumGetCString(DirectFunctionCall1(enum_out, PG_GETARG_DATUM(2)));
	if (!PG_ARGISNULL(3))
		full_name = text_to_cstring(PG_GETARG_TEXT_PP(3));

	popug_begin(&call);
	popug_require(&call, POPUG_ROLE_ADMIN, true, "create accounts");

	check_account_input(login, email, full_name);

	args[0] = PG_GETARG_DATUM(0);
	if (popug_exec(&login_taken_plan, args, NULL, true, 1) > 0)
		login_taken(login);
	check_role_exists(login);

	popug_make_uuid(id);
	args[0] = UUIDPGetDatum(id);
	args[1] = PG_GETARG_DATUM(0);
	args[2] = CStringGetTextDatum(email);
	args[3] = CStringGetTextDatum(role);
	args[4] = full_name ? CStringGetTextDatum(full_name) : (Datum) 0;
	nulls[4] = full_name ? ' ' : 'n';
	popug_exec(&insert_plan, args, nulls, false, 0);
	if (popug_role_from_name(role) == POPUG_ROLE_WORKER)
		pool_add(UUIDPGetDatum(id));

	popug_json_begin(&js);
	popug_json_uuid(&js, "account_id", id);
	popug_json_text(&js, "login", login);
	popug_json_text(&js, "email", email);
	popug_json_text(&js, "role", role);
	popug_json_text(&js, "full_name", full_name);
	popug_event_append("AccountCreated", 1, "auth", id, popug_json_end(&js));

	popug_end(&call);
	PG_RETURN_UUID_P(id);
}

PG_FUNCTION_INFO_V1(popug_account_set_role);

/* SQL: popug.account_set_role(account_id, role); a no-op if unchanged. */
Datum
popug_account_set_role(PG_FUNCTION_ARGS)
{
	PopugCall	call;
	Datum		args[2];
	PopugRole	old_role,
				new_role;
	bool		active;
	char	   *role;
	PopugJson	js;

	require_arg(fcinfo, 0, "account_id");
	require_arg(fcinfo, 1, "role");
	role = DatumGetCString(DirectFunctionCall1(enum_out, PG_GETARG_DATUM(1)));
	new_role = popug_role_from_name(role);

	popug_begin(&call);
	popug_require(&call, POPUG_ROLE_ADMIN, true, "change account roles");
	popug_xact_lock(POPUG_LOCK_POOL, true);

	args[0] = PG_GETARG_DATUM(0);
	old_role = lock_account(args[0], &active);
	if (old_role != new_role)
	{
		args[1] = CStringGetTextDatum(role);
		popug_exec(&set_role_plan, args, NULL, false, 0);
		if (active && old_role == POPUG_ROLE_WORKER)
			pool_remove(args[0]);
		else if (active && new_role == POPUG_ROLE_WORKER)
			pool_add(args[0]);

		popug_json_begin(&js);
		popug_json_uuid(&js, "account_id", PG_GETARG_UUID_P(0));
		popug_json_text(&js, "role", role);
		popug_json_text(&js, "old_role", popug_role_name(old_role));
		popug_event_append("AccountRoleChanged", 1, "auth", PG_GETARG_UUID_P(0),
						   popug_json_end(&js));
	}
	popug_end(&call);
	PG_RETURN_VOID();
}

/*
 * Deactivates (active false) or reactivates an account: the flag, the
 * worker pool and the event; a no-op when the account already is as
 * asked.  A reactivated account's login must still name a role (42704).
 */
static void
change_active(FunctionCallInfo fcinfo, bool active)
{
	PopugCall	call;
	Datum		arg;
	PopugRole	role;
	bool		was_active;
	PopugJson	js;

	require_arg(fcinfo, 0, "account_id");
	popug_begin(&call);
	popug_require(&call, POPUG_ROLE_ADMIN, true,
				  active ? "reactivate accounts" : "deactivate accounts");
	popug_xact_lock(POPUG_LOCK_POOL, true);

	arg = PG_GETARG_DATUM(0);
	role = lock_account(arg, &was_active);
	if (was_active != active)
	{
		char	   *login = set_active(arg, active);

		if (active)
			check_role_exists(login);
		if (role == POPUG_ROLE_WORKER && active)
			pool_add(arg);
		else if (role == POPUG_ROLE_WORKER)
			pool_remove(arg);
		popug_json_begin(&js);
		popug_json_uuid(&js, "account_id", PG_GETARG_UUID_P(0));
		popug_event_append(active ? "AccountReactivated" : "AccountDeactivated", 1, "auth",
						   PG_GETARG_UUID_P(0), popug_json_end(&js));
	}
	popug_end(&call);
}

PG_FUNCTION_INFO_V1(popug_account_deactivate);

/* SQL: popug.account_deactivate(account_id); a no-op if already inactive. */
Datum
popug_account_deactivate(PG_FUNCTION_ARGS)
{
	change_active(fcinfo, false);
	PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(popug_account_reactivate);

/*
 * SQL: popug.account_reactivate(account_id): the account can act again
 * and, as a worker, is back in the pool; a no-op if it is active.
 */
Datum
popug_account_reactivate(PG_FUNCTION_ARGS)
{
	change_active(fcinfo, true);
	PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(popug_whoami);

/* SQL: popug.whoami() RETURNS popug.account */
Datum
popug_whoami(PG_FUNCTION_ARGS)
{
	PopugCall	call;
	Datum		arg;
	Datum		result;

	popug_begin(&call);
	popug_require(&call, POPUG_ANY_ROLE, false, "use popug");
	arg = UUIDPGetDatum(&call.account_id);
	popug_exec(&whoami_plan, &arg, NULL, true, 1);
	result = PointerGetDatum(SPI_returntuple(SPI_tuptable->vals[0],
											 SPI_tuptable->tupdesc));
	popug_end(&call);
	PG_RETURN_DATUM(result);
}

PG_FUNCTION_INFO_V1(popug_caller_account_id);

/* SQL: popug.caller_account_id(), for views; NULL without an account. */
Datum
popug_caller_account_id(PG_FUNCTION_ARGS)
{
	PopugCall	call;
	pg_uuid_t  *id = palloc(sizeof(pg_uuid_t));

	popug_begin(&call);
	popug_caller_lookup(&call);
	popug_end(&call);
	if (!call.has_account)
		PG_RETURN_NULL();
	memcpy(id, &call.account_id, sizeof(pg_uuid_t));
	PG_RETURN_UUID_P(id);
}

PG_FUNCTION_INFO_V1(popug_caller_role);

/* SQL: popug.caller_role(), for views; NULL without an account. */
Datum
popug_caller_role(PG_FUNCTION_ARGS)
{
	PopugCall	call;
	Oid			enumtype;

	popug_begin(&call);
	popug_caller_lookup(&call);
	popug_end(&call);
	if (!call.has_account)
		PG_RETURN_NULL();
	enumtype = get_func_rettype(fcinfo->flinfo->fn_oid);
	PG_RETURN_DATUM(DirectFunctionCall2(enum_in,
										CStringGetDatum(popug_role_name(call.role)),
										ObjectIdGetDatum(enumtype)));
}
