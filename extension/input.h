/*-------------------------------------------------------------------------
 *
 * input.h
 *		Checks of input shared by the features (input.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef POPUG_INPUT_H
#define POPUG_INPUT_H

#include "postgres.h"

#include "utils/date.h"

extern char *popug_trim(char *s);
extern const char *popug_text_problem(const char *s, bool paragraphs);
extern char *popug_quote(const char *s);
extern const char *popug_email_problem(const char *addr, bool dotted_domain);
extern void popug_check_email(const char *addr);
extern void popug_check_day(DateADT day, const char *name);

#endif							/* POPUG_INPUT_H */
