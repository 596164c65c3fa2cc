#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for scripts/bench, in a directory of its own
# (scripts/pg always uses .dev/pg, which a developer may be using).
#
#   bench/pg-cluster.sh start DIR   initdb in DIR (created; must not exist or
#                                   be empty), start on a free 127.0.0.1 port,
#                                   create database "todo"; the last line on
#                                   stdout is postgresql://todo@127.0.0.1:PORT/todo
#   bench/pg-cluster.sh pid DIR     the postmaster's pid
#   bench/pg-cluster.sh stop DIR    fast shutdown, then remove DIR
#
# Settings: trust authentication, user "todo", TCP on 127.0.0.1 only (plus a
# unix socket in DIR/run), fsync=on and synchronous_commit=on (every commit
# waits for its WAL flush, as in production), max_connections=200,
# shared_buffers=256MB, checkpoints logged. Log: DIR/log/postgresql.log.
#
# PostgreSQL refuses to run as root: as root the cluster belongs to, and runs
# as, the system user "todo-pg" (created if missing, as scripts/pg does).
# Only the postmaster started here (pid from DIR/data/postmaster.pid) is ever
# signalled.
set -euo pipefail

PG_USER_SYSTEM=todo-pg

die() { echo "pg-cluster: $*" >&2; exit 1; }

(($# == 2)) || die "usage: bench/pg-cluster.sh start|pid|stop DIR"
cmd=$1
dir=$2
[[ $dir == /* ]] || dir=$PWD/$dir
data=$dir/data
logfile=$dir/log/postgresql.log

find_bindir() {
  if [[ -n ${PG_BIN:-} ]]; then echo "$PG_BIN"; return; fi
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [[ -n $d && -x $d/initdb ]]; then echo "$d"; return; fi
  d=$(command -v initdb 2>/dev/null || true)
  [[ -n $d ]] && { dirname "$d"; return; }
  die "PostgreSQL server binaries not found (install postgresql-15, or set PG_BIN)"
}
bindir=$(find_bindir)

as_root=0
[[ $(id -u) -eq 0 ]] && as_root=1

as_owner() {
  if ((as_root)); then
    (cd "$dir" && runuser -u "$PG_USER_SYSTEM" -- "$@")
  else
    (cd "$dir" && "$@")
  fi
}

postmaster_pid() {
  local p
  p=$(sed -n 1p "$data/postmaster.pid" 2>/dev/null || true)
  [[ $p =~ ^[0-9]+$ ]] && echo "$p"
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

cmd_start() {
  if [[ -e $dir ]] && [[ -n $(ls -A "$dir" 2>/dev/null) ]]; then
    die "$dir exists and is not empty"
  fi
  if ((as_root)) && ! id -u "$PG_USER_SYSTEM" >/dev/null 2>&1; then
    useradd --system --no-create-home --shell /usr/sbin/nologin "$PG_USER_SYSTEM" 2>/dev/null \
      || id -u "$PG_USER_SYSTEM" >/dev/null 2>&1 \
      || die "could not create the system user $PG_USER_SYSTEM"
  fi
  mkdir -p "$dir/data" "$dir/log" "$dir/run"
  chmod 0700 "$dir" "$dir/data"
  if ((as_root)); then
    chown -R "$PG_USER_SYSTEM:" "$dir"
    runuser -u "$PG_USER_SYSTEM" -- test -x "$dir" \
      || die "$PG_USER_SYSTEM cannot reach $dir (a parent directory lacks search permission; set TMPDIR)"
  fi

  # --no-sync only skips flushing the freshly created files; the running
  # server has fsync=on.
  local locale=C.UTF-8 out
  if ! out=$(as_owner "$bindir/initdb" -D "$data" --auth=trust -U todo --encoding=UTF8 \
               --locale="$locale" --no-sync 2>&1); then
    echo "pg-cluster: initdb with locale $locale failed, falling back to C" >&2
    as_owner rm -rf "$data/"* 2>/dev/null || true
    locale=C
    out=$(as_owner "$bindir/initdb" -D "$data" --auth=trust -U todo --encoding=UTF8 \
            --locale="$locale" --no-sync 2>&1) || { echo "$out" >&2; die "initdb failed"; }
  fi
  cat >>"$data/postgresql.conf" <<EOF

# bench/pg-cluster.sh: a throwaway benchmark cluster
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir/run'
fsync = on
synchronous_commit = on
max_connections = 200
shared_buffers = 256MB
log_checkpoints = on
EOF

  local attempt port=""
  for attempt in 1 2 3; do
    port=$(free_port)
    if as_owner "$bindir/pg_ctl" start -D "$data" -l "$logfile" -w -t 30 \
         -o "-p $port" >/dev/null 2>&1; then
      break
    fi
    echo "pg-cluster: start on port $port failed (attempt $attempt):" >&2
    tail -n 5 "$logfile" >&2 2>/dev/null || true
    port=""
  done
  [[ -n $port ]] || die "the server did not start (log: $logfile)"

  local i
  for ((i = 0; i < 150; i++)); do
    pg_isready -q -h 127.0.0.1 -p "$port" -d postgres -U todo && break
    sleep 0.1
  done
  pg_isready -q -h 127.0.0.1 -p "$port" -d postgres -U todo \
    || { tail -n 20 "$logfile" >&2; die "not accepting connections after 15 s (log: $logfile)"; }
  psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U todo -d postgres \
    -c 'CREATE DATABASE todo' >/dev/null
  echo "$port" >"$dir/port"
  echo "pg-cluster: running on 127.0.0.1:$port (pid $(postmaster_pid), data $data)" >&2
  echo "postgresql://todo@127.0.0.1:$port/todo"
}

cmd_pid() {
  postmaster_pid || die "no postmaster.pid in $data"
}

cmd_stop() {
  [[ -d $dir ]] || return 0
  local pid
  pid=$(postmaster_pid || true)
  if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
    if ! as_owner "$bindir/pg_ctl" stop -D "$data" -m fast -w -t 30 >/dev/null 2>&1; then
      echo "pg-cluster: pg_ctl stop failed; sending SIGQUIT to postmaster $pid" >&2
      kill -QUIT "$pid" 2>/dev/null || true
    fi
    # pg_ctl returns once postmaster.pid is gone, a moment before the exit.
    local i
    for ((i = 0; i < 100; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      echo "pg-cluster: postmaster $pid still running" >&2
    fi
  fi
  rm -rf "$dir"
}

case $cmd in
  start) cmd_start ;;
  pid) cmd_pid ;;
  stop) cmd_stop ;;
  *) die "usage: bench/pg-cluster.sh start|pid|stop DIR" ;;
esac
