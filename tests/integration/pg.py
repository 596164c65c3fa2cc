"""Throwaway PostgreSQL clusters for the integration tests.

``PgCluster()`` runs ``initdb`` in a fresh temporary directory; ``start()``
starts it on a free 127.0.0.1 port (trust authentication, user ``todo``,
database ``todo``). PostgreSQL refuses to run as root: as root the cluster
belongs to, and runs as, the system user ``todo-pg`` (created on first use,
like ``scripts/pg`` does); otherwise it runs as the current user.

Standard library only. The binaries come from ``PG_BIN`` or the newest
``/usr/lib/postgresql/*/bin``; ``psql`` is the client on PATH (or in PG_BIN).
"""

import glob
import itertools
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time

SYSTEM_USER = "todo-pg"
HOST = "127.0.0.1"


class PgError(RuntimeError):
    pass


def _bindir():
    env = os.environ.get("PG_BIN")
    if env:
        return env
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                  key=lambda d: [int(x) if x.isdigit() else x
                                 for x in re.split(r"(\d+)", d)])
    for d in reversed(dirs):
        if os.access(os.path.join(d, "initdb"), os.X_OK):
            return d
    initdb = shutil.which("initdb")
    if initdb:
        return os.path.dirname(initdb)
    raise PgError("PostgreSQL server binaries not found (install postgresql-15, or set PG_BIN)")


def _psql_bin():
    p = shutil.which("psql")
    if p:
        return p
    p = os.path.join(_bindir(), "psql")
    if os.access(p, os.X_OK):
        return p
    raise PgError("psql not found")


def running_as_root():
    return os.geteuid() == 0


def ensure_system_user():
    """As root: create the system user the clusters run as (idempotent)."""
    if not running_as_root():
        return
    if subprocess.run(["id", "-u", SYSTEM_USER], capture_output=True).returncode == 0:
        return
    cp = subprocess.run(["useradd", "--system", "--no-create-home",
                         "--shell", "/usr/sbin/nologin", SYSTEM_USER],
                        capture_output=True, text=True)
    # another process may have created it in the meantime
    if cp.returncode != 0 and subprocess.run(["id", "-u", SYSTEM_USER],
                                             capture_output=True).returncode != 0:
        raise PgError(f"useradd {SYSTEM_USER} failed: {cp.stderr.strip()}")


def _chown_to_owner(path):
    if running_as_root():
        shutil.chown(path, user=SYSTEM_USER, group=None)


def free_port():
    s = socket.socket()
    s.bind((HOST, 0))
    port = s.getsockname()[1]
    s.close()
    return port


_db_counter = itertools.count(1)


class PgCluster:
    """One PostgreSQL cluster in its own temporary directory.

    Attributes: ``base`` (the temp dir), ``data``, ``logfile``, ``port`` (set by
    the first ``start()`` and kept across restarts), ``url`` (the ``todo``
    database)."""

    SETTINGS = {
        "listen_addresses": "'127.0.0.1'",
        "fsync": "on",                  # keep durability honest
        "max_connections": "200",
        "shared_buffers": "128MB",
    }

    def __init__(self, prefix="todo-pg-", settings=None):
        self.bindir = _bindir()
        self.psql_bin = _psql_bin()
        ensure_system_user()
        self.base = tempfile.mkdtemp(prefix=prefix)
        # the server user needs to traverse it (mkdtemp makes it 0700)
        os.chmod(self.base, 0o711)
        self.data = os.path.join(self.base, "data")
        self.sockdir = os.path.join(self.base, "run")
        self.logdir = os.path.join(self.base, "log")
        self.logfile = os.path.join(self.logdir, "postgresql.log")
        for d in (self.data, self.sockdir, self.logdir):
            os.mkdir(d, 0o700 if d == self.data else 0o755)
            _chown_to_owner(d)
        self.port = None
        self._created_db = False
        self.destroyed = False
        try:
            self._initdb(dict(self.SETTINGS, **(settings or {})))
        except BaseException:
            shutil.rmtree(self.base, ignore_errors=True)
            raise

    # -- plumbing ------------------------------------------------------------
    def _owner(self, argv):
        if running_as_root():
            return ["runuser", "-u", SYSTEM_USER, "--", *argv]
        return list(argv)

    def _run_owner(self, argv, timeout=60, check=True):
        cp = subprocess.run(self._owner(argv), cwd=self.base, capture_output=True,
                            text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        if check and cp.returncode != 0:
            raise PgError(f"{' '.join(argv)} failed ({cp.returncode}):\n{cp.stdout}{cp.stderr}"
                          f"\n--- server log tail:\n{self.log_tail()}")
        return cp

    def _pg_ctl(self, *args, timeout=90, check=True):
        return self._run_owner([os.path.join(self.bindir, "pg_ctl"), *args], timeout=timeout,
                               check=check)

    def _initdb(self, settings):
        initdb = os.path.join(self.bindir, "initdb")
        base_args = [initdb, "-D", self.data, "--auth=trust", "-U", "todo",
                     "--encoding=UTF8", "--no-sync"]
        cp = self._run_owner(base_args + ["--locale=C.UTF-8"], check=False)
        if cp.returncode != 0:
            # no C.UTF-8 locale on this machine: plain C (still UTF8 encoding)
            self._run_owner(["sh", "-c", f'rm -rf "{self.data}"/* "{self.data}"/.[!.]*'],
                            check=False)
            self._run_owner(base_args + ["--locale=C"])
        lines = ["", "# tests/integration/pg.py"]
        lines += [f"{k} = {v}" for k, v in settings.items()]
        lines.append(f"unix_socket_directories = '{self.sockdir}'")
        conf = os.path.join(self.data, "postgresql.conf")
        with open(conf, "a") as f:
            f.write("\n".join(lines) + "\n")

    # -- public --------------------------------------------------------------
    def url_for(self, dbname):
        assert self.port is not None, "cluster not started yet"
        return f"postgresql://todo@{HOST}:{self.port}/{dbname}"

    @property
    def url(self):
        """postgresql://todo@127.0.0.1:PORT/todo"""
        return self.url_for("todo")

    def is_running(self):
        return self._pg_ctl("status", "-D", self.data, check=False, timeout=30).returncode == 0

    def start(self, timeout=15):
        """Start (no-op if running); waits until it accepts connections."""
        if self.is_running():
            return self
        fixed_port = self.port is not None      # keep the port across stop/start
        attempts = 1 if fixed_port else 4
        for attempt in range(attempts):
            if not fixed_port:
                self.port = free_port()
            cp = self._pg_ctl("start", "-D", self.data, "-l", self.logfile, "-w",
                              "-t", str(timeout), "-o", f"-p {self.port}", check=False)
            if cp.returncode == 0:
                break
            # a port taken between free_port() and bind(): try another one
            tail = self.log_tail(10)
            if attempt + 1 == attempts or "could not bind" not in tail:
                raise PgError(f"pg_ctl start failed:\n{cp.stdout}{cp.stderr}\n--- log:\n"
                              f"{self.log_tail()}")
        self.wait_ready(timeout)
        if not self._created_db:
            if self.psql("SELECT 1 FROM pg_database WHERE datname = 'todo'",
                         dbname="postgres").strip() != "1":
                self.psql("CREATE DATABASE todo", dbname="postgres")
            self._created_db = True
        return self

    def wait_ready(self, timeout=15):
        deadline = time.monotonic() + timeout
        isready = shutil.which("pg_isready") or os.path.join(self.bindir, "pg_isready")
        while True:
            cp = subprocess.run([isready, "-q", "-h", HOST, "-p", str(self.port),
                                 "-U", "todo", "-d", "postgres"], capture_output=True)
            if cp.returncode == 0:
                return
            if time.monotonic() >= deadline:
                raise PgError(f"PostgreSQL on port {self.port} not ready after {timeout} s;"
                              f" log:\n{self.log_tail()}")
            time.sleep(0.05)

    def stop(self, mode="fast"):
        """pg_ctl stop -m MODE (smart | fast | immediate); no-op if not running."""
        if not self.is_running():
            return
        self._pg_ctl("stop", "-D", self.data, "-m", mode, "-w", "-t", "60")

    def restart(self, mode="fast"):
        """pg_ctl restart -m MODE, same port; waits until it accepts connections."""
        assert self.port is not None, "cluster never started"
        self._pg_ctl("restart", "-D", self.data, "-m", mode, "-w", "-t", "60",
                     "-l", self.logfile, "-o", f"-p {self.port}")
        self.wait_ready()

    def psql(self, sql, dbname=None, url=None, timeout=30):
        """psql -X -A -t -v ON_ERROR_STOP=1 -d URL -c SQL; returns stdout.

        Raises PgError (with stderr) when psql fails."""
        target = url or self.url_for(dbname or "todo")
        cp = subprocess.run([self.psql_bin, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                             "-d", target, "-c", sql],
                            capture_output=True, text=True, timeout=timeout,
                            stdin=subprocess.DEVNULL)
        if cp.returncode != 0:
            raise PgError(f"psql failed ({cp.returncode}) on {target}: {sql!r}\n{cp.stderr}")
        return cp.stdout

    def create_database(self, name=None):
        """A new empty database (from template0); returns a PgDatabase."""
        name = name or f"t_{os.getpid()}_{next(_db_counter)}"
        assert re.fullmatch(r"[a-z_][a-z0-9_]*", name), name
        self.psql(f"CREATE DATABASE {name} TEMPLATE template0", dbname="postgres")
        return PgDatabase(self, name)

    def drop_database(self, name):
        self.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", dbname="postgres")

    def log_tail(self, n=40):
        try:
            with open(self.logfile, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return "(no log)"

    def destroy(self):
        """Stop (immediate) and delete everything."""
        if self.destroyed:
            return
        try:
            if os.path.exists(os.path.join(self.data, "postmaster.pid")):
                self._pg_ctl("stop", "-D", self.data, "-m", "immediate", "-w", "-t", "30",
                             check=False)
        finally:
            shutil.rmtree(self.base, ignore_errors=True)
            self.destroyed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.destroy()

    def __repr__(self):
        return f"<PgCluster {self.base} port={self.port}>"


class PgDatabase:
    """One database of a cluster: ``url``, ``name``, ``cluster``, ``psql(sql)``."""

    def __init__(self, cluster, name):
        self.cluster = cluster
        self.name = name

    @property
    def url(self):
        return self.cluster.url_for(self.name)

    def psql(self, sql, timeout=30):
        return self.cluster.psql(sql, dbname=self.name, timeout=timeout)

    def scalar(self, sql):
        """The single value a query returns, as a string (stripped)."""
        return self.psql(sql).strip()

    def lines(self, sql):
        return [line for line in self.psql(sql).splitlines() if line != ""]

    def drop(self):
        self.cluster.drop_database(self.name)

    def __repr__(self):
        return f"<PgDatabase {self.name} on {self.cluster!r}>"
