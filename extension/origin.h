/*-------------------------------------------------------------------------
 *
 * origin.h
 *		The database a call runs in (origin.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef POPUG_ORIGIN_H
#define POPUG_ORIGIN_H

#include "postgres.h"

extern char *popug_installed_version(void);
extern bool popug_check_database(void);

#endif							/* POPUG_ORIGIN_H */
