"""Scheduling the payout (SPEC 5): popug's scheduler worker closes a due
day on its own, keeps retrying (logged, in worker_status) while the payout
fails and succeeds once the cause is gone; the real pg_cron runs the
README's CALL.  Two runs at once (pg_cron's and the scheduler's, which
runs the same payout step) are played step by step in
specs/payout_run_run.spec."""
import datetime
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from helpers import q, q1, wait_for  # noqa: E402


def settings(**kv):
    for k, v in kv.items():
        q("ALTER SYSTEM SET popug.%s = %%s" % k, (v,))
    q("SELECT pg_reload_conf()")


def accounts_with_money(prefix, n, day):
    q("INSERT INTO popug.account (login, email, role) SELECT %s || i, %s || i || '@example.com', 'worker' "
      "FROM generate_series(1, %s) i", (prefix, prefix, n))
    q("WITH a AS (SELECT id, row_number() OVER (ORDER BY login) AS i FROM popug.account WHERE login LIKE %s || '%%'),"
      " ins AS (INSERT INTO popug.payment (id, account_id, kind, credit, description, occurred_at, billing_day)"
      "         SELECT gen_random_uuid(), id, 'complete_reward', i, 'test', now(), %s FROM a)"
      "INSERT INTO popug.balance (account_id, amount) SELECT id, i FROM a", (prefix, day))


def closed(day):
    return q1("SELECT closed_at IS NOT NULL FROM popug.billing_day WHERE day = %s", (day,)) is True


def paid_once():
    return q1("SELECT count(*) FROM (SELECT account_id, billing_day FROM popug.payment WHERE kind = 'payout' "
              "GROUP BY 1, 2 HAVING count(*) > 1) x") == 0


def midday_zone():
    """A fixed-offset zone (Etc/GMT-N is UTC+N) in which it is now between
    noon and one o'clock, so that a time just passed and one half an hour
    ahead both fall on today there, at whatever hour of the day in UTC the
    test runs."""
    offset = 12 - q1("SELECT extract(hour FROM now() AT TIME ZONE 'UTC')::int")
    return "UTC" if offset == 0 else "Etc/GMT%+d" % -offset


def yesterday_and_times():
    """The zone the test runs in, yesterday there, a time of day just
    passed there and one half an hour ahead."""
    zone = midday_zone()
    now = q1("SELECT now() AT TIME ZONE %s", (zone,))
    return (zone, now.date() - datetime.timedelta(days=1),
            (now - datetime.timedelta(minutes=1)).strftime("%H:%M"),
            (now + datetime.timedelta(minutes=30)).strftime("%H:%M"))


def test_scheduler_retries_until_the_payout_succeeds(popug):
    zone, yesterday, just_passed, later = yesterday_and_times()
    settings(timezone=zone, payout_at=later)
    accounts_with_money("ps_", 50, yesterday)
    time.sleep(1)
    assert not closed(yesterday), "before popug.payout_at (%s) the day is left open" % later
    q("CREATE FUNCTION public.refuse_payout() RETURNS trigger LANGUAGE plpgsql AS "
      "$$BEGIN RAISE EXCEPTION 'payout refused by a test trigger'; END$$")
    q("CREATE TRIGGER refuse BEFORE INSERT ON popug.payout FOR EACH STATEMENT EXECUTE FUNCTION public.refuse_payout()")
    settings(payout_at=just_passed)
    assert wait_for(lambda: "refused by a test trigger" in (q1("SELECT last_error FROM popug.worker_status "
                                                               "WHERE worker = 'scheduler'") or ""), 15, 0.1), \
        "with popug.payout_at (%s) just passed the scheduler runs the payout; its failure is in worker_status" \
        % just_passed
    time.sleep(4)
    assert not closed(yesterday), "the day stays open while the payout fails"
    assert q1("SELECT state FROM popug.worker_status WHERE worker = 'scheduler'") == "retrying after error", \
        "the scheduler is retrying after the error"
    log = open(os.path.join(popug, "server.log")).read()
    assert log.count("payout refused by a test trigger") >= 2, "each failure is logged"
    q("DROP TRIGGER refuse ON popug.payout")
    assert wait_for(lambda: closed(yesterday), 90, 0.2), "once the cause is gone the retry closes the day"
    assert q1("SELECT count(*) FROM popug.payout WHERE billing_day = %s", (yesterday,)) == 50, "all 50 accounts paid"
    assert paid_once(), "each once"


def test_pg_cron_runs_the_payout(popug):
    zone, yesterday, just_passed, later = yesterday_and_times()
    settings(timezone=zone, payout_at=later)
    q("CREATE EXTENSION IF NOT EXISTS pg_cron")
    accounts_with_money("pk_", 3000, yesterday)
    q("SELECT cron.schedule('popug-payout', '* * * * *', 'CALL popug.payout_run()')")
    assert wait_for(lambda: closed(yesterday), 90, 0.2), "pg_cron closes the day"
    assert wait_for(lambda: q1("SELECT count(*) FROM cron.job_run_details WHERE command LIKE '%%payout_run%%' "
                               "AND status = 'succeeded'") >= 1, 60, 0.5), \
        "pg_cron ran the job successfully (cron.job_run_details)"
    assert q1("SELECT count(*) FROM popug.payout WHERE billing_day = %s", (yesterday,)) == 3000, \
        "all 3000 accounts paid"
    assert paid_once(), "nobody paid twice"
    assert q1("SELECT sum(amount) FROM popug.balance") == 0, "every balance is zero"
