/*-------------------------------------------------------------------------
 *
 * events.c
 *		The transactional outbox: appending events, and popug.payload() to
 *		build their payloads.
 *
 * Appending is one INSERT in the caller's transaction; it never locks or
 * updates an existing row, and never NOTIFYs: the commit sets the notifier
 * and accounting workers' latches (popug_wake_at_commit), and the notifier
 * coalesces NOTIFY popug_events.  Reading the outbox is consumer.c's.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "events.h"

#include "call.h"
#include "json.h"
#include "process.h"
#include "queries.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"

/* How popug.payload() turns a value of one argument's type into JSON. */
typedef enum PayloadKind
{
	PK_STRING,					/* the type's output function, as a string */
	PK_NUMERIC,					/* numeric as itself */
	PK_INTEGER,					/* int2, int4, int8 as a number */
	PK_BOOL,
	PK_DATETIME					/* date, timestamp[tz] in ISO 8601 */
} PayloadKind;

/* popug.payload()'s per-call-site cache: each argument's type and kind. */
typedef struct PayloadArgs
{
	int			nargs;
	Oid			types[FUNC_MAX_ARGS];
	PayloadKind kinds[FUNC_MAX_ARGS];
	FmgrInfo	out[FUNC_MAX_ARGS];
} PayloadArgs;

/*
 * Resolves popug.payload()'s argument types once per call site: what
 * jsonb_build_object() looks up for every value of every row.
 */
static PayloadArgs *
payload_args(FunctionCallInfo fcinfo)
{
	PayloadArgs *pa = (PayloadArgs *) fcinfo->flinfo->fn_extra;
	int			nargs = PG_NARGS();

	if (pa != NULL)
		return pa;
	if (nargs % 2 != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("popug.payload() takes key, value pairs"),
				 errdetail("It was given %d arguments.", nargs)));
	pa = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(PayloadArgs));
	pa->nargs = nargs;
	for (int i = 0; i < nargs; i++)
	{
		Oid			type = getBaseType(get_fn_expr_argtype(fcinfo->flinfo, i));
		Oid			outfn;
		bool		varlena;

		if (!OidIsValid(type) || (i % 2 == 0 && type != TEXTOID && type != UNKNOWNOID))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("popug.payload() keys must be text")));
		if (type_is_array(type) || type_is_rowtype(type) ||
			type == JSONOID || type == JSONBOID)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("popug.payload() takes scalar values, not %s",
							format_type_be(type))));
		pa->types[i] = type;
		switch (type)
		{
			case NUMERICOID:
				pa->kinds[i] = PK_NUMERIC;
				break;
			case INT2OID:
			case INT4OID:
			case INT8OID:
				pa->kinds[i] = PK_INTEGER;
				break;
			case BOOLOID:
				pa->kinds[i] = PK_BOOL;
				break;
			case DATEOID:
			case TIMESTAMPOID:
			case TIMESTAMPTZOID:
				pa->kinds[i] = PK_DATETIME;
				break;
			default:
				pa->kinds[i] = PK_STRING;
				getTypeOutputInfo(type, &outfn, &varlena);
				fmgr_info_cxt(outfn, &pa->out[i], fcinfo->flinfo->fn_mcxt);
				break;
		}
	}
	fcinfo->flinfo->fn_extra = pa;
	return pa;
}

PG_FUNCTION_INFO_V1(popug_payload);

/*
 * SQL: popug.payload(VARIADIC "any") RETURNS jsonb: jsonb_build_object()
 * for scalar values, with the same output, made for event payloads built
 * row by row (argument types are resolved once, numerics go in as they
 * are instead of through their text form).
 */
Datum
popug_payload(PG_FUNCTION_ARGS)
{
	PayloadArgs *pa = payload_args(fcinfo);
	PopugJson	js;

	popug_json_begin(&js);
	for (int i = 0; i < pa->nargs; i += 2)
	{
		Datum		value = PG_GETARG_DATUM(i + 1);
		const char *key;
		Numeric		num;

		if (PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("popug.payload() keys must not be null")));
		key = pa->types[i] == UNKNOWNOID ? DatumGetCString(PG_GETARG_DATUM(i))
			: text_to_cstring(PG_GETARG_TEXT_PP(i));
		if (PG_ARGISNULL(i + 1))
		{
			popug_json_text(&js, key, NULL);
			continue;
		}
		switch (pa->kinds[i + 1])
		{
			case PK_NUMERIC:
				num = DatumGetNumeric(value);
				/* NaN and infinities are strings, as jsonb_build_object has them */
				if (numeric_is_nan(num) || numeric_is_inf(num))
					popug_json_text(&js, key, DatumGetCString(DirectFunctionCall1(numeric_out,
																		  NumericGetDatum(num))));
				else
					popug_json_numeric(&js, key, NumericGetDatum(num));
				break;
			case PK_INTEGER:
				popug_json_int(&js, key, pa->types[i + 1] == INT8OID ? DatumGetInt64(value)
					   : pa->types[i + 1] == INT4OID ? DatumGetInt32(value)
					   : DatumGetInt16(value));
				break;
			case PK_BOOL:
				popug_json_bool(&js, key, DatumGetBool(value));
				break;
			case PK_DATETIME:
				popug_json_text(&js, key, JsonEncodeDateTime(NULL, value, pa->types[i + 1], NULL));
				break;
			case PK_STRING:
				popug_json_text(&js, key, OutputFunctionCall(&pa->out[i + 1], value));
				break;
		}
	}
	PG_RETURN_JSONB_P(popug_json_end(&js));
}

/* ---- appending ---- */

static PopugPlan append_plan = {
	POPUG_SQL_EVENT_APPEND,
	5, {TEXTOID, INT4OID, TEXTOID, UUIDOID, JSONBOID}
};

/*
 * Notes that the current transaction wrote events, so that the workers
 * that follow the stream are woken when it commits.  Set-based writers that
 * insert into popug.event themselves call this too.
 */
void
popug_events_written(void)
{
	popug_wake_at_commit(POPUG_PROCESS_NOTIFIER);
	popug_wake_at_commit(POPUG_PROCESS_ACCOUNTING);
}

/*
 * Appends one event in the current transaction and returns its id.  Must
 * run inside popug_begin/popug_end (SPI connected, as the owner).
 */
int64
popug_event_append(const char *name, int version, const char *producer,
				   const pg_uuid_t *aggregate_id, Jsonb *payload)
{
	Datum		args[5];
	char		nulls[5] = "     ";
	bool		isnull;

	args[0] = CStringGetTextDatum(name);
	args[1] = Int32GetDatum(version);
	args[2] = CStringGetTextDatum(producer);
	args[3] = aggregate_id ? UUIDPGetDatum(aggregate_id) : (Datum) 0;
	nulls[3] = aggregate_id ? ' ' : 'n';
	args[4] = JsonbPGetDatum(payload);
	popug_exec(&append_plan, args, nulls, false, 1);
	popug_events_written();
	return DatumGetInt64(popug_get(0, 1, &isnull));
}

PG_FUNCTION_INFO_V1(popug_event_append_sql);

/* SQL: popug.event_append(...), the same path for the extension owner. */
Datum
popug_event_append_sql(PG_FUNCTION_ARGS)
{
	PopugCall	call;
	int64		id;

	for (int i = 0; i < 5; i++)
		if (i != 3 && PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("only aggregate_id may be null in popug.event_append")));
	popug_begin(&call);
	id = popug_event_append(text_to_cstring(PG_GETARG_TEXT_PP(0)),
							PG_GETARG_INT32(1),
							text_to_cstring(PG_GETARG_TEXT_PP(2)),
							PG_ARGISNULL(3) ? NULL : PG_GETARG_UUID_P(3),
							PG_GETARG_JSONB_P(4));
	popug_end(&call);
	PG_RETURN_INT64(id);
}

/* The events popug's consumers read, with the versions of each they know. */
static const struct
{
	const char *name;
	int			min_version;
	int			max_version;
}			known_events[] =
{
	{"TaskCreated", 1, 2},
	{"TaskAssigned", 1, 1},
	{"TaskCompleted", 1, 1},
	{"PayoutMade", 1, 1},
};

/*
 * NULL when popug's consumers know this version of event name, else a
 * sentence saying they do not (palloc'd).
 */
char *
popug_event_version_problem(const char *name, int version)
{
	for (int i = 0; i < lengthof(known_events); i++)
		if (strcmp(known_events[i].name, name) == 0 &&
			version >= known_events[i].min_version &&
			version <= known_events[i].max_version)
			return NULL;
	return psprintf("%s version %d is not supported", name, version);
}

/* The composite type popug.event. */
Oid
popug_event_type(void)
{
	return get_rel_type_id(get_relname_relid("event", get_namespace_oid("popug", false)));
}
