#!/bin/sh
# With POPUG_DEMO=1 (docker/compose.yaml's default), plays make demo's
# scripted day (mounted at /popug-demo) once, on first start.
set -e
if [ "${POPUG_DEMO:-0}" = 1 ] && [ -f /popug-demo/day.sql ]; then
	psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
		-f /popug-demo/day.sql
fi
