#!/usr/bin/env python3
"""Keeps the pgbench scripts in bench/pgbench/ equal to the service's SQL.

Each bench/pgbench/SCENARIO.sql names a prepared statement of
src/db/queries.c and how its parameters become pgbench values:

    -- statement: task_get
    -- params: $1=:uid $2=:id

A value is a pgbench variable (:name, sent as a parameter of the prepared
statement with -M prepared, like the service's text parameters) or NULL
(written into the SQL: pgbench cannot send an SQL NULL as a parameter).
The script's last line is the statement with that substitution done.

    render.py [--source src/db/queries.c] [--cc cc] --check FILE [--out OUT]
        renders FILE from the current source; writes the rendered script to
        OUT (if given); exit 0 if FILE is up to date, 3 if not (a diff goes
        to stderr), 1 on any other error
    render.py [...] --write FILE...
        rewrites the SQL line of each FILE from the current source

The statement texts come from the C preprocessor (cc -E), so macros such as
TASK_VALUES and TASK_LIST are expanded exactly as the compiler sees them.
"""

import argparse
import difflib
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

C_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", '"': '"', "'": "'", "?": "?", "0": "\0"}


class RenderError(Exception):
    pass


def c_string(body):
    out, i = [], 0
    while i < len(body):
        ch = body[i]
        if ch == "\\":
            nxt = body[i + 1]
            if nxt not in C_ESCAPES:
                raise RenderError(f"unsupported C escape \\{nxt} in a statement")
            out.append(C_ESCAPES[nxt])
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def statements(source, cc):
    """{statement name: SQL} from the preprocessed db_statements table."""
    cmd = [cc, "-E", "-P", "-I", os.path.join(ROOT, "src"), source]
    try:
        cp = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except OSError as e:
        raise RenderError(f"cannot run {cc}: {e}") from e
    if cp.returncode != 0:
        raise RenderError(f"{' '.join(cmd)} failed:\n{cp.stderr.strip()}")
    text = cp.stdout
    start = text.find("db_statements[")
    if start < 0:
        raise RenderError(f"no db_statements table in {source}")
    entry = re.compile(r'\{\s*"([A-Za-z0-9_]+)"\s*,\s*((?:"(?:[^"\\]|\\.)*"\s*)+)\}')
    lit = re.compile(r'"((?:[^"\\]|\\.)*)"')
    found = {}
    for m in entry.finditer(text, start):
        found[m.group(1)] = "".join(c_string(s) for s in lit.findall(m.group(2)))
    if not found:
        raise RenderError(f"no statements parsed from {source}")
    return found


def parse_template(path):
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    name = params = None
    for line in lines:
        m = re.match(r"--\s*statement:\s*(\S+)\s*$", line)
        if m:
            name = m.group(1)
        m = re.match(r"--\s*params:\s*(.*)$", line)
        if m:
            params = {}
            for tok in m.group(1).split():
                pm = re.fullmatch(r"\$(\d+)=(:[A-Za-z_][A-Za-z0-9_]*|NULL)", tok)
                if not pm:
                    raise RenderError(f"{path}: bad parameter mapping '{tok}' (want $N=:var or $N=NULL)")
                params[int(pm.group(1))] = pm.group(2)
    if name is None or params is None:
        raise RenderError(f"{path}: needs '-- statement: NAME' and '-- params: $1=... ' lines")
    if not lines or lines[-1].startswith(("--", "\\")) or not lines[-1].strip():
        raise RenderError(f"{path}: the last line must be the SQL statement")
    return lines, name, params


def render(path, stmts):
    lines, name, params = parse_template(path)
    if name not in stmts:
        raise RenderError(f"{path}: no statement '{name}' in the source (have: {', '.join(sorted(stmts))})")
    sql = stmts[name]
    # pgbench would take ":word" in the statement for a variable of its own.
    if re.search(r"(?<!:):[A-Za-z_]", sql):
        raise RenderError(f"{name}: the statement contains ':name' text that pgbench would substitute")
    used = sorted({int(n) for n in re.findall(r"\$(\d+)", sql)})
    if used != sorted(params):
        raise RenderError(f"{path}: {name} uses parameters {used}, the mapping covers {sorted(params)}")
    body = re.sub(r"\$(\d+)", lambda m: params[int(m.group(1))], sql)
    if "\n" in body:
        raise RenderError(f"{name}: the statement spans lines; the renderer expects one")
    return "\n".join(lines[:-1] + [body + ";"]) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", default=os.path.join(ROOT, "src", "db", "queries.c"))
    ap.add_argument("--cc", default=os.environ.get("CC", "cc"))
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--check", metavar="FILE")
    mode.add_argument("--write", metavar="FILE", nargs="+")
    ap.add_argument("--out", metavar="OUT")
    a = ap.parse_args()
    try:
        stmts = statements(a.source, a.cc)
        if a.write:
            for path in a.write:
                new = render(path, stmts)
                with open(path, encoding="utf-8") as f:
                    old = f.read()
                if new != old:
                    with open(path, "w", encoding="utf-8") as f:
                        f.write(new)
                    print(f"render: updated {path}", file=sys.stderr)
            return 0
        new = render(a.check, stmts)
        if a.out:
            with open(a.out, "w", encoding="utf-8") as f:
                f.write(new)
        with open(a.check, encoding="utf-8") as f:
            old = f.read()
        if new != old:
            sys.stderr.writelines(difflib.unified_diff(
                old.splitlines(True), new.splitlines(True), a.check, "rendered from " + a.source))
            return 3
        return 0
    except (RenderError, OSError) as e:
        print(f"render: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
