# popug: PGXS build of extension/ and workers/ into one library, popug.so.
#
#   make            build popug.so and the install script
#   make install    install into the PostgreSQL that pg_config names
#   make test       install what is missing, then run every test on a
#                   throwaway cluster (see test/run.sh)
#   make installcheck   pg_regress (REGRESS) and the isolation specs
#                   (ISOLATION) against the server PGHOST/PGPORT name, with
#                   popug installed there (make test runs it so)
#   make sanitize   the same with popug built with AddressSanitizer and
#                   UndefinedBehaviorSanitizer; fails on any report
#   make demo       a local cluster with workers, an SMTP catcher and a
#                   scripted day (see demo/run.sh)
#   make bench      benchmarks, each beside its baseline (see bench/run.sh)

EXTVERSION = 0.2

MODULE_big = popug
OBJS = $(patsubst %.c,%.o,$(sort $(wildcard extension/*.c workers/*.c)))

# The install script of the current version is generated from
# extension/sql/*.sql, concatenated in name order, so each feature keeps its
# schema next to the others.  Released install scripts are kept as they
# were released (extension/released lists them with their checksums) and
# every later change ships as an upgrade script popug--A--B.sql: see
# "Releasing a version" in README.md.
MODULEDIR = extension
DATA = extension/popug.control $(filter-out extension/popug--$(EXTVERSION).sql,\
	$(wildcard extension/popug--*.sql))
DATA_built = extension/popug--$(EXTVERSION).sql
SQL_PARTS = $(sort $(wildcard extension/sql/*.sql))

REGRESS = $(sort $(basename $(notdir $(wildcard sql/*.sql))))
REGRESS_OPTS = --inputdir=. --load-extension=popug
# isolationtester specs: one race each, played in the interleavings its
# permutations name; specs/NAME.spec, expected/NAME.out
ISOLATION = $(sort $(basename $(notdir $(wildcard specs/*.spec))))
ISOLATION_OPTS = --load-extension=popug

PG_CPPFLAGS = -I$(srcdir)/extension -I$(srcdir)/workers -DPOPUG_VERSION='"$(EXTVERSION)"'
PG_CFLAGS = -Wall -Wextra -Werror -Wno-unused-parameter \
	-Wno-missing-field-initializers -Wno-sign-compare
SHLIB_LINK = -lcurl
EXTRA_CLEAN = extension/popug--$(EXTVERSION).sql extension/queries.h .build-flavor

# POPUG_SANITIZE=1 builds popug with AddressSanitizer and
# UndefinedBehaviorSanitizer.  PostgreSQL itself is not instrumented: the
# server must run with the ASan runtime preloaded (test/run.sh does that
# when POPUG_SANITIZE=1).  PostgreSQL compiles with -fwrapv, which makes
# signed overflow defined and so invisible to UBSan; popug's code must not
# rely on it, and is checked without it.  The objects are rebuilt when the
# flavor changes.
BUILD_FLAVOR = $(if $(filter 1,$(POPUG_SANITIZE)),sanitize,plain)
ifeq ($(BUILD_FLAVOR),sanitize)
PG_CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-wrapv
SHLIB_LINK += -fsanitize=address,undefined
endif

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs 2>/dev/null)

.DEFAULT_GOAL := all

ifneq ($(wildcard $(PGXS)),)
include $(PGXS)
else
all install installcheck:
	@echo "PostgreSQL 15 server headers not found (pg_config --pgxs)." >&2
	@echo "Run 'make test' or 'make demo' (they install them), or: apt-get install postgresql-server-dev-15 libcurl4-openssl-dev" >&2
	@exit 1
endif

extension/popug--$(EXTVERSION).sql: $(SQL_PARTS)
	cat $(SQL_PARTS) > $@

# The big statements the C code prepares live in extension/queries/*.sql,
# one statement a file, and reach the C code as string constants
# POPUG_SQL_NAME of a generated header (see extension/queries/embed.awk).
QUERIES = $(sort $(wildcard extension/queries/*.sql))

extension/queries.h: $(QUERIES) extension/queries/embed.awk
	awk -f extension/queries/embed.awk $(QUERIES) > $@

$(OBJS) $(OBJS:.o=.bc): extension/queries.h

# .build-flavor names the flavor of the objects; it is rewritten (and so
# newer than them) when the flavor changes
$(shell echo $(BUILD_FLAVOR) | cmp -s - .build-flavor || echo $(BUILD_FLAVOR) > .build-flavor)
$(OBJS): $(wildcard extension/*.h workers/*.h) .build-flavor

.PHONY: test sanitize demo bench
test:
	bash test/run.sh

sanitize:
	POPUG_SANITIZE=1 bash test/run.sh

demo:
	bash demo/run.sh

bench:
	bash bench/run.sh
