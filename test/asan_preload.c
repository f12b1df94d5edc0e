/*
 * asan_preload.c
 *		Preloaded after the AddressSanitizer runtime when popug's tests run
 *		the server with popug built under ASan and UBSan (test/lib.sh,
 *		sanitize_server).  PostgreSQL itself is not built with them.
 *
 * The ASan runtime, preloaded, initializes itself at the first malloc().
 * libgpg-error, a dependency of PostgreSQL's libraries, calls
 * bindtextdomain() from its constructor, which runs first: glibc mallocs
 * there while holding its gettext lock, and ASan's initialization calls
 * dlerror(), which takes the same lock, so the process hangs before main().
 * This bindtextdomain() initializes ASan before glibc's takes the lock.
 *
 * The UBSan runtime reads UBSAN_OPTIONS when it first reports, from
 * /proc/self/environ, which PostgreSQL has overwritten with its process
 * titles by then; __ubsan_default_options hands it the options as they
 * were at start (print_stacktrace=1, for a report that says where).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* The ASan runtime's own initialization; it does nothing the second time. */
extern void __asan_init(void);

static char ubsan_options[4096];

/* bindtextdomain(3), once ASan is initialized. */
char *
bindtextdomain(const char *domainname, const char *dirname)
{
	static char *(*next) (const char *, const char *) = NULL;

	__asan_init();
	if (next == NULL)
		next = (char *(*) (const char *, const char *)) dlsym(RTLD_NEXT, "bindtextdomain");
	return next(domainname, dirname);
}

/* Keeps UBSAN_OPTIONS as the process started with it. */
__attribute__((constructor))
static void
keep_ubsan_options(void)
{
	const char *v = getenv("UBSAN_OPTIONS");

	if (v != NULL)
		strncpy(ubsan_options, v, sizeof(ubsan_options) - 1);
}

/* The options the UBSan runtime starts with (it asks this hook). */
const char *__ubsan_default_options(void);

const char *
__ubsan_default_options(void)
{
	return ubsan_options;
}
