/*-------------------------------------------------------------------------
 *
 * json.h
 *		Building a jsonb object member by member (json.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef POPUG_JSON_H
#define POPUG_JSON_H

#include "postgres.h"

#include "utils/jsonb.h"
#include "utils/uuid.h"

/* A jsonb object being built. */
typedef struct PopugJson
{
	JsonbParseState *state;
} PopugJson;

extern void popug_json_begin(PopugJson *js);
extern void popug_json_bool(PopugJson *js, const char *key, bool value);
extern void popug_json_text(PopugJson *js, const char *key, const char *value);
extern void popug_json_uuid(PopugJson *js, const char *key, const pg_uuid_t *value);
extern void popug_json_numeric(PopugJson *js, const char *key, Datum numeric);
extern void popug_json_int(PopugJson *js, const char *key, int64 value);
extern void popug_json_date(PopugJson *js, const char *key, Datum date);
extern Jsonb *popug_json_end(PopugJson *js);

#endif							/* POPUG_JSON_H */
