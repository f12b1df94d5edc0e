/*-------------------------------------------------------------------------
 *
 * call.h
 *		The frame of every SQL-callable popug function (call.c): the roles
 *		of popug accounts, who calls and the owner switch.  Kept plans
 *		are plan.h, included here since every call runs them.
 *
 * Calling convention of the SQL-callable functions: they are declared
 * SECURITY INVOKER, so GetUserId() on entry is the caller (SET ROLE counts).
 * popug_begin captures the caller, then runs the rest of the call as the
 * extension owner with SPI connected; popug_end undoes both.  The caller's
 * account is read by popug_require, or popug_caller_lookup where a call
 * needs it otherwise.  search_path is pinned to pg_catalog by each
 * function's SET clause and every statement schema-qualifies popug's
 * objects.
 *
 *-------------------------------------------------------------------------
 */
#ifndef POPUG_CALL_H
#define POPUG_CALL_H

#include "postgres.h"

#include "plan.h"

#include "utils/uuid.h"

/* The role of a popug account (popug.role). */
typedef enum PopugRole
{
	POPUG_NO_ROLE = 0,
	POPUG_ROLE_ADMIN = 1 << 0,
	POPUG_ROLE_MANAGER = 1 << 1,
	POPUG_ROLE_ACCOUNTANT = 1 << 2,
	POPUG_ROLE_WORKER = 1 << 3
} PopugRole;

#define POPUG_ANY_ROLE (POPUG_ROLE_ADMIN | POPUG_ROLE_MANAGER | \
						POPUG_ROLE_ACCOUNTANT | POPUG_ROLE_WORKER)

extern PopugRole popug_role_from_name(const char *name);
extern const char *popug_role_name(PopugRole role);

/* A call: the caller, the owner switch and SPI. */
typedef struct PopugCall
{
	Oid			roleid;			/* current_user at the call site */
	const char *rolename;
	bool		superuser;
	/* the caller's account: set by popug_caller_lookup */
	bool		looked_up;
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
extern void popug_caller_lookup(PopugCall *call);
extern void popug_require(PopugCall *call, int roles, bool superuser_ok,
						  const char *action);

#endif							/* POPUG_CALL_H */
