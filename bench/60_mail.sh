# Mails per second delivered to the local test SMTP server by
# popug.mail_dispatch, beside a plain libcurl loop outside PostgreSQL
# (bench/smtp_loop.c) sending as many to the same server in the same run.
#   MAIL_COUNT=10000
source "$(dirname "$0")/lib.sh"
N=${MAIL_COUNT:-10000}
dir=$(mktemp -d)
chmod 755 "$dir"
port=$(free_port 2600)
cc -O2 -o "$dir/smtp_loop" bench/smtp_loop.c -lcurl || exit 1
"$PYTHON" test/smtp_server.py --port "$port" --record "$dir/mail.jsonl" >/dev/null 2>&1 &
smtp=$!
trap 'kill $smtp 2>/dev/null; rm -rf "$dir"' EXIT
sleep 1

t0=$(date +%s%N)
"$dir/smtp_loop" "smtp://127.0.0.1:$port" "$N" || { echo "the libcurl loop failed" >&2; exit 1; }
base=$(( ($(date +%s%N) - t0) / 1000000 ))

# the mail, queued in a database no mailer worker serves
fresh_db popug_b >/dev/null || exit 1
q popug_b "ALTER DATABASE popug_b SET popug.smtp_url = 'smtp://127.0.0.1:$port';
	ALTER DATABASE popug_b SET popug.smtp_from = 'popug@example.com';
	INSERT INTO popug.mail (account_id, event_id, to_addr, subject, body)
	SELECT gen_random_uuid(), gen_random_uuid(), 'm' || i || '@example.com', 'popug payout for 2026-11-23',
		   E'Hello,\n\npopug paid you 12.50 for 2026-11-23.\n' FROM generate_series(1, $N) i" >/dev/null || exit 1
t0=$(date +%s%N)
sent=$(q popug_b "SELECT popug.mail_dispatch($N)")
popug=$(( ($(date +%s%N) - t0) / 1000000 ))
[ "$sent" = "$N" ] || { echo "mail_dispatch sent $sent of $N" >&2; exit 1; }
row "mails/s to a local SMTP server, $N mails" $(( N * 1000 / popug )) $(( N * 1000 / base )) "mails/s" ">= 0.70"
