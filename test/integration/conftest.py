"""pytest fixtures for popug's Python integration tests.

Each test gets a cluster of its own: initdb'd by test/lib.sh (popug and
pg_cron preloaded) on a free port, database popug created with the
extension in it and its workers attached, stopped when the test ends.  A
test that crashes or reconfigures its cluster leaves nothing behind for
the next one.  The clusters live in $POPUG_WORK (test/run.sh's directory,
kept with POPUG_KEEP=1) or in a new temporary directory.
"""
import json
import os
import socket
import subprocess
import sys
import tempfile

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import helpers  # noqa: E402

LIB = os.path.join(os.path.dirname(HERE), "lib.sh")


def lib(script, **env):
    """Runs script in bash after sourcing test/lib.sh."""
    subprocess.run(["bash", "-c", "source %s && %s" % (LIB, script)], check=True,
                   env=dict(os.environ, **env))


def cluster_restart(d, mode="fast"):
    """Stops the cluster in directory d (mode immediate: a crash) and starts it again."""
    lib('cluster_restart %s' % mode, PGDATA=os.path.join(d, "data"), PGHOST=d)


@pytest.fixture
def popug(request):
    """A fresh running cluster with popug in database popug; PGHOST and
    PGPORT name it for helpers.q() and the others.  Yields its directory
    (server.log is there)."""
    base = os.environ.get("POPUG_WORK") or tempfile.mkdtemp(prefix="popug-pytest.")
    os.chmod(base, 0o755)
    d = tempfile.mkdtemp(prefix="%s." % request.node.name[:24], dir=base)  # sockets: 107 bytes at most
    port = str(helpers.free_port())
    saved = {k: os.environ.get(k) for k in ("PGHOST", "PGPORT")}
    os.environ.update(PGHOST=d, PGPORT=port)
    try:
        lib('cluster_init "$DIR" && cluster_start && "$PG_BIN/createdb" popug && '
            'q popug "CREATE EXTENSION popug"', DIR=d, POPUG_PORT=port)
        assert helpers.wait_workers(), "popug's workers attached"
        yield d
    finally:
        lib('[ ! -e "$PGDATA/postmaster.pid" ] || cluster_stop immediate', PGDATA=os.path.join(d, "data"))
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class Smtp:
    """test/smtp_server.py on a port of its own, recording what it receives."""

    def __init__(self, record):
        self.port, self.record, self.proc = helpers.free_port(), record, None

    def start(self, *args):
        """(Re)starts the server; args are smtp_server.py's options (--slow S)."""
        self.stop()
        self.proc = subprocess.Popen(["/usr/bin/python3", os.path.join(os.path.dirname(HERE), "smtp_server.py"),
                                      "--port", str(self.port), "--record", self.record, *args],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert helpers.wait_for(lambda: socket.socket().connect_ex(("127.0.0.1", self.port)) == 0, 10, 0.05), \
            "the SMTP server listens"

    def stop(self):
        if self.proc:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def received(self, rcpt=None):
        """The messages received so far (for rcpt only, if given)."""
        if not os.path.exists(self.record):
            return []
        with open(self.record) as f:
            msgs = [json.loads(line) for line in f if line.strip()]
        return [m for m in msgs if rcpt is None or rcpt in m["rcpt_tos"]]


@pytest.fixture
def smtp(popug):
    """The test SMTP server, started, its record in the cluster's directory;
    stopped when the test ends."""
    s = Smtp(os.path.join(popug, "smtp.jsonl"))
    s.start()
    try:
        yield s
    finally:
        s.stop()
