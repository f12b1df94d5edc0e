/*-------------------------------------------------------------------------
 *
 * call.c
 *		The frame of every SQL-callable popug function: who calls, and
 *		switching to the extension owner for table access (with SPI).
 *
 * popug's functions are SECURITY INVOKER so that current_user on entry is
 * the caller, including after SET ROLE (a SECURITY DEFINER function would
 * see its owner instead).  popug_begin records the caller, then switches
 * the user id to the owner of schema popug with
 * SECURITY_LOCAL_USERID_CHANGE, as PostgreSQL's own RI triggers do; the
 * switch is undone by popug_end, or by transaction (or subtransaction)
 * abort if the call fails.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "call.h"

#include "origin.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

static const char *const role_names[] = {"admin", "manager", "accountant", "worker"};

/* popug.role label to PopugRole. */
PopugRole
popug_role_from_name(const char *name)
{
	for (int i = 0; i < lengthof(role_names); i++)
		if (strcmp(name, role_names[i]) == 0)
			return (PopugRole) (1 << i);
	elog(ERROR, "unknown popug role \"%s\"", name);
	return POPUG_NO_ROLE;		/* keep compiler quiet */
}

/* PopugRole to its popug.role label. */
const char *
popug_role_name(PopugRole role)
{
	for (int i = 0; i < lengthof(role_names); i++)
		if (role == (PopugRole) (1 << i))
			return role_names[i];
	return "none";
}

/* The owner of schema popug, as whom popug's table access runs. */
static Oid
popug_owner(void)
{
	Oid			nsp = get_namespace_oid("popug", false);
	HeapTuple	tup;
	Oid			owner;

	tup = SearchSysCache1(NAMESPACEOID, ObjectIdGetDatum(nsp));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for namespace %u", nsp);
	owner = ((Form_pg_namespace) GETSTRUCT(tup))->nspowner;
	ReleaseSysCache(tup);
	return owner;
}

static PopugPlan caller_plan = {
	"SELECT id, role::text, active FROM popug.account WHERE login = $1",
	1, {NAMEOID}
};

/*
 * Starts a call: captures the caller, switches to the extension owner and
 * connects SPI.  The caller's account is looked up when the call needs it
 * (popug_caller_lookup), not for a superuser's call that any superuser may
 * make.
 */
void
popug_begin(PopugCall *call)
{
	memset(call, 0, sizeof(*call));
	GetUserIdAndSecContext(&call->save_userid, &call->save_sec_context);
	call->roleid = call->save_userid;
	call->rolename = GetUserNameFromId(call->roleid, false);
	call->superuser = superuser_arg(call->roleid);

	SetUserIdAndSecContext(popug_owner(),
						   call->save_sec_context | SECURITY_LOCAL_USERID_CHANGE);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (popug_check_database())
	{
		/* read-only statements of this call must see the renumbering */
		CommandCounterIncrement();
		PushCopiedSnapshot(GetTransactionSnapshot());
		UpdateActiveSnapshotCommandId();
		call->pushed_snapshot = true;
	}
}

/*
 * Fills in the caller's account (has_account, inactive, account_id, role),
 * once per call; between popug_begin and popug_end.
 */
void
popug_caller_lookup(PopugCall *call)
{
	Datum		arg;
	bool		isnull;

	if (call->looked_up)
		return;
	call->looked_up = true;
	arg = DirectFunctionCall1(namein, CStringGetDatum(call->rolename));
	if (popug_exec(&caller_plan, &arg, NULL, true, 1) == 1)
	{
		if (DatumGetBool(popug_get(0, 3, &isnull)))
		{
			call->has_account = true;
			memcpy(&call->account_id, DatumGetUUIDP(popug_get(0, 1, &isnull)),
				   sizeof(pg_uuid_t));
			call->role = popug_role_from_name(popug_get_text(0, 2));
		}
		else
			call->inactive = true;
	}
}

/* Ends a call: disconnects SPI and restores the caller's user id. */
void
popug_end(PopugCall *call)
{
	SPI_finish();
	if (call->pushed_snapshot)
		PopActiveSnapshot();
	SetUserIdAndSecContext(call->save_userid, call->save_sec_context);
}

/*
 * Refuses the call unless the caller has an active account with one of
 * roles, or is a superuser and superuser_ok.  action names what was
 * attempted, for the message.
 */
void
popug_require(PopugCall *call, int roles, bool superuser_ok, const char *action)
{
	if (superuser_ok && call->superuser)
		return;
	popug_caller_lookup(call);
	if (call->inactive)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("popug account \"%s\" is deactivated", call->rolename),
				 errdetail("A deactivated account cannot %s.", action)));
	if (!call->has_account)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("role \"%s\" has no active popug account", call->rolename),
				 errdetail("Only a role with a popug account can %s.", action),
				 errhint("An admin creates one with popug.account_create().")));
	if ((call->role & roles) == 0)
	{
		StringInfoData allowed;

		initStringInfo(&allowed);
		for (int i = 0; i < lengthof(role_names); i++)
			if (roles & (1 << i))
				appendStringInfo(&allowed, "%s%s", allowed.len ? ", " : "",
								 role_names[i]);
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to %s", action),
				 errdetail("Account \"%s\" has role %s; this needs %s.",
						   call->rolename, popug_role_name(call->role),
						   allowed.data)));
	}
}
