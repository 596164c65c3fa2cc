#!/usr/bin/env python3
"""Holds many idle keep-alive HTTP connections open to a server.

    idle_conns.py HOST PORT COUNT [--path /healthz] [--batch 500]
                  [--open-timeout 120]

Opens COUNT TCP connections to HOST:PORT, BATCH at a time (so that the
server's listen backlog never overflows), sends one keep-alive
"GET PATH HTTP/1.1" on each and reads its response, so that every
connection is a real HTTP connection the server has parsed a request on and
now keeps idle. Then it holds them, watching for any the server closes.

Lines on stdout (scripts/bench reads them):

    ready opened N failed F seconds S    all connections attempted
    final open N closed C verified V     on SIGUSR1, then exit

On SIGUSR1 it stops holding: N connections were still open (C were closed
by the server while held), and V of the N answered a second GET PATH with
status 200, which proves they were alive to the end rather than half-closed.
SIGTERM or SIGINT closes everything and exits at once.

Memory: plain non-blocking sockets and one poll object, no per-connection
coroutine or buffer, so 10 000 connections cost this process a few MiB.
The soft RLIMIT_NOFILE is raised towards the hard limit as needed.
"""

import argparse
import errno
import resource
import select
import signal
import socket
import sys
import time

STOP = {"verify": False, "quit": False}


def on_usr1(_sig, _frame):
    STOP["verify"] = True


def on_term(_sig, _frame):
    STOP["quit"] = True


def raise_nofile(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < need:
        want = need if hard == resource.RLIM_INFINITY else min(need, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        soft = want
    return soft


def response_done(buf):
    """True once buf holds one whole response (Content-Length body)."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return False
    length = 0
    for line in buf[:end].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    return len(buf) >= end + 4 + length


def status_of(buf):
    parts = buf.split(b" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


def exchange(socks, request, timeout, connecting):
    """Sends request on every socket (after its connect, if connecting) and
    reads one response on each. Returns {sock: status} for those that
    answered whole (0 for a non-HTTP answer); the others are closed."""
    poller = select.poll()
    state = {}          # fd -> [sock, phase, buffer]; phase: connect | send | recv
    for s in socks:
        phase = "connect" if connecting else "send"
        state[s.fileno()] = [s, phase, b""]
        poller.register(s, select.POLLOUT)
    result = {}
    deadline = time.monotonic() + timeout
    while state and not STOP["quit"]:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        for fd, ev in poller.poll(min(left, 0.5) * 1000):
            st = state.get(fd)
            if st is None:
                continue
            s, phase, buf = st
            try:
                if phase in ("connect", "send"):
                    if phase == "connect":
                        err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                        if err:
                            raise OSError(err, "connect")
                    s.sendall(request)      # small: fits the empty send buffer
                    st[1] = "recv"
                    poller.modify(s, select.POLLIN)
                    continue
                chunk = s.recv(65536)
                if not chunk:
                    raise OSError(errno.ECONNRESET, "closed")
                buf += chunk
                st[2] = buf
                if response_done(buf):
                    result[s] = status_of(buf)
                    poller.unregister(s)
                    del state[fd]
            except OSError:
                poller.unregister(s)
                del state[fd]
                s.close()
    for s, _, _ in state.values():
        s.close()
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("count", type=int)
    ap.add_argument("--path", default="/healthz")
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--open-timeout", type=float, default=120.0)
    a = ap.parse_args()

    signal.signal(signal.SIGUSR1, on_usr1)
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    limit = raise_nofile(a.count + 64)
    if limit < a.count + 16:
        print(f"idle_conns: RLIMIT_NOFILE is {limit}, too low for {a.count} connections",
              file=sys.stderr)
        return 1

    request = (f"GET {a.path} HTTP/1.1\r\nHost: {a.host}:{a.port}\r\n"
               f"User-Agent: bench-idle\r\n\r\n").encode()
    t0 = time.monotonic()
    held, failed = [], 0
    deadline = t0 + a.open_timeout
    while len(held) + failed < a.count and not STOP["quit"] and time.monotonic() < deadline:
        n = min(a.batch, a.count - len(held) - failed)
        batch = []
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            err = s.connect_ex((a.host, a.port))
            if err not in (0, errno.EINPROGRESS):
                s.close()
                failed += 1
                continue
            batch.append(s)
        got = exchange(batch, request, max(1.0, deadline - time.monotonic()), True)
        for s in batch:
            if got.get(s) == 200:
                held.append(s)
            else:
                failed += 1
                if s in got:
                    s.close()
    failed += a.count - len(held) - failed
    print(f"ready opened {len(held)} failed {failed} seconds {time.monotonic() - t0:.1f}",
          flush=True)

    # Hold: a readable socket is one the server closed (or wrote to
    # unasked); either way it no longer counts as an idle connection.
    poller = select.poll()
    by_fd = {}
    for s in held:
        poller.register(s, select.POLLIN | select.POLLRDHUP)
        by_fd[s.fileno()] = s
    closed = 0
    while not STOP["verify"] and not STOP["quit"]:
        for fd, _ in poller.poll(200):
            s = by_fd.pop(fd, None)
            if s is None:
                continue
            poller.unregister(s)
            s.close()
            closed += 1
    if STOP["quit"]:
        for s in by_fd.values():
            s.close()
        return 0

    still = list(by_fd.values())
    got = exchange(still, request, 60.0, False)
    verified = sum(1 for v in got.values() if v == 200)
    print(f"final open {len(still)} closed {closed} verified {verified}", flush=True)
    for s in still:
        s.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
