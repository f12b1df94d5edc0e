/*-------------------------------------------------------------------------
 *
 * json.c
 *		Building a jsonb object member by member, for event payloads.
 *
 * Values go in as jsonb scalars without a trip through text: numerics keep
 * their exact decimal value, uuids and dates become strings (dates as
 * YYYY-MM-DD whatever the session's DateStyle), NULL becomes JSON null.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "json.h"

#include "catalog/pg_type.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/numeric.h"

/* Starts a JSON object. */
void
popug_json_begin(PopugJson *js)
{
	js->state = NULL;
	pushJsonbValue(&js->state, WJB_BEGIN_OBJECT, NULL);
}

/* Adds a key and a scalar value to the object. */
static void
popug_json_put(PopugJson *js, const char *key, JsonbValue *val)
{
	JsonbValue	k;

	k.type = jbvString;
	k.val.string.val = (char *) key;
	k.val.string.len = strlen(key);
	pushJsonbValue(&js->state, WJB_KEY, &k);
	pushJsonbValue(&js->state, WJB_VALUE, val);
}

/* Adds a string member; NULL becomes JSON null. */
void
popug_json_text(PopugJson *js, const char *key, const char *value)
{
	JsonbValue	v;

	if (value == NULL)
		v.type = jbvNull;
	else
	{
		v.type = jbvString;
		v.val.string.val = (char *) value;
		v.val.string.len = strlen(value);
	}
	popug_json_put(js, key, &v);
}

/* Adds a uuid as a string member; NULL becomes JSON null. */
void
popug_json_uuid(PopugJson *js, const char *key, const pg_uuid_t *value)
{
	popug_json_text(js, key, value == NULL ? NULL :
			DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(value))));
}

/* Adds a boolean member. */
void
popug_json_bool(PopugJson *js, const char *key, bool value)
{
	JsonbValue	v;

	v.type = jbvBool;
	v.val.boolean = value;
	popug_json_put(js, key, &v);
}

/* Adds a numeric member (money keeps its exact decimal value). */
void
popug_json_numeric(PopugJson *js, const char *key, Datum numeric)
{
	JsonbValue	v;

	v.type = jbvNumeric;
	v.val.numeric = DatumGetNumeric(numeric);
	popug_json_put(js, key, &v);
}

/* Adds an integer member. */
void
popug_json_int(PopugJson *js, const char *key, int64 value)
{
	popug_json_numeric(js, key, DirectFunctionCall1(int8_numeric, Int64GetDatum(value)));
}

/* Adds a date member as YYYY-MM-DD, whatever the session's DateStyle. */
void
popug_json_date(PopugJson *js, const char *key, Datum date)
{
	popug_json_text(js, key, JsonEncodeDateTime(NULL, date, DATEOID, NULL));
}

/* Ends the object and returns it as jsonb. */
Jsonb *
popug_json_end(PopugJson *js)
{
	return JsonbValueToJsonb(pushJsonbValue(&js->state, WJB_END_OBJECT, NULL));
}
