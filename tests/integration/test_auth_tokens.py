"""JWT authentication of the tasks API: a corpus of hostile tokens (RFC 8725,
shared/reference/reliability.md tests 26-29), the tokens that must still be
accepted, the ``AUTH_*`` configuration, ``AUTH_DISABLED`` and the ``token``
subcommand.

Every hostile token is sent as ``POST /api/{victim}/tasks`` with a valid body,
so a token that slips through creates a row: after each case, and after the
whole corpus, the victim has no task (through the API with a valid token, and
in PostgreSQL). Where a lenient decoder would see a valid token (padding,
``+``/``/``, non-canonical bits, duplicate keys), the MAC is computed over the
exact bytes sent, so only the strictness rule itself can reject it.
"""

import base64
import hashlib
import hmac
import json
import re
import socket
import time
import uuid

import pytest

from conftest import (TEST_JWT_SECRET, TasksClient, assert_json, assert_problem, b64url,
                      db_env, module_db_server, new_user, readyz, run_binary, user_token, wait_ready)

ISSUER = "https://issuer.todo.test/"
AUDIENCE = "todo-backend-tests"
OTHER_SECRET = "a-different-secret-that-is-also-long-enough-0123456789"
AUTH_VARS = ("AUTH_JWT_SECRET", "AUTH_JWT_ISSUER", "AUTH_JWT_AUDIENCE", "AUTH_CLOCK_SKEW_S",
             "AUTH_DISABLED", "APP_API_TOKEN")
UNAUTHORIZED = "urn:todo-backend:problem:unauthorized"
FORBIDDEN = "urn:todo-backend:problem:forbidden"

VICTIM = new_user("victim")
NUM_VICTIM = "7" + str(uuid.uuid4().int)[:14]        # all digits: for numeric claims
MALLORY = new_user("mallory")
ALL_VICTIMS = (VICTIM, NUM_VICTIM, MALLORY, VICTIM.upper(), "%" + VICTIM.encode().hex()[:2]
               + VICTIM[1:])


def auth_env(url, **env):
    """db_env with every AUTH_* variable cleared from the inherited environment,
    the test secret set, and ``env`` on top."""
    over = {k: None for k in AUTH_VARS}
    over["AUTH_JWT_SECRET"] = TEST_JWT_SECRET
    over.update(env)
    return db_env(url, **over)


def module_server(pg_cluster, **env):
    """Generator for a module-scoped fixture: a ready server on its own database."""
    yield from module_db_server(pg_cluster, auth_env, **env)


@pytest.fixture(scope="module")
def iss_server(pg_cluster):
    """The service with AUTH_JWT_ISSUER and AUTH_JWT_AUDIENCE set (default leeway)."""
    yield from module_server(pg_cluster, AUTH_JWT_ISSUER=ISSUER, AUTH_JWT_AUDIENCE=AUDIENCE)


@pytest.fixture(scope="module")
def plain_server(pg_cluster):
    """The service with only AUTH_JWT_SECRET set."""
    yield from module_server(pg_cluster)


# ------------------------------------------------------------------ token building

def enc(obj):
    """JSON bytes (compact) of obj; bytes are taken as they are."""
    return obj if isinstance(obj, bytes) else json.dumps(obj, separators=(",", ":")).encode()


def mac(data, secret=TEST_JWT_SECRET, digest=hashlib.sha256):
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, data.encode("ascii") if isinstance(data, str) else data, digest).digest()


def signed(signing_input, secret=TEST_JWT_SECRET, digest=hashlib.sha256):
    """signing_input + "." + the MAC of exactly those bytes."""
    return signing_input + "." + b64url(mac(signing_input, secret, digest))


def jws(header, payload, secret=TEST_JWT_SECRET, digest=hashlib.sha256):
    return signed(b64url(enc(header)) + "." + b64url(enc(payload)), secret, digest)


def raw_object(pairs):
    """A JSON object text from (key, value) pairs, duplicates kept."""
    return ("{" + ",".join(json.dumps(k) + ":" + json.dumps(v) for k, v in pairs) + "}").encode()


HDR = {"alg": "HS256", "typ": "JWT"}
DROP = object()
B64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def claims(user=VICTIM, **over):
    """Valid claims for the issuer server; ``name=DROP`` removes a claim."""
    now = int(time.time())
    c = {"sub": user, "iat": now, "exp": now + 3600, "iss": ISSUER, "aud": AUDIENCE}
    for k, v in over.items():
        if v is DROP:
            c.pop(k, None)
        else:
            c[k] = v
    return c


def good_token(user=VICTIM, **over):
    return jws(HDR, claims(user, **over))


def with_filler(pred, user=VICTIM):
    """Claims with a varying "n" filler until pred(payload_bytes) holds ("~~~???"
    puts a byte 0x7E and 0x3F at every alignment: base64url "-" and "_")."""
    for i in range(10000):
        p = enc(claims(user, n="x" * (i % 7) + ("~~~???" if i % 2 else "") + str(i)))
        if pred(p):
            return p
    raise AssertionError("no filler found")


def sig_with(char):
    """A valid token whose signature's base64url contains ``char``."""
    for i in range(10000):
        t = jws(HDR, claims(n=i))
        if char in t.rsplit(".", 1)[1]:
            return t
    raise AssertionError(f"no signature with {char!r}")


def non_canonical_last(seg):
    """seg with its last character changed so that only the unused low bits
    differ: a lenient decoder yields the same bytes."""
    unused = {2: 4, 3: 2}[len(seg) % 4]          # bits of the last char not used
    v = B64_ALPHABET.index(seg[-1])
    assert v & ((1 << unused) - 1) == 0
    out = seg[:-1] + B64_ALPHABET[v | 1]
    pad = "=" * (-len(out) % 4)
    assert base64.urlsafe_b64decode(out + pad) == base64.urlsafe_b64decode(seg + pad)
    return out


def sized_token(total_len, user=VICTIM):
    """A validly signed token of exactly total_len characters."""
    base = jws(HDR, claims(user, n=""))
    need = total_len - len(base)
    assert need >= 0
    # 3 payload bytes -> 4 characters; adjust the filler until the length is exact
    for extra in range(need * 3 // 4 - 4, need * 3 // 4 + 8):
        if extra < 0:
            continue
        t = jws(HDR, claims(user, n="a" * extra))
        if len(t) == total_len:
            return t
    raise AssertionError(f"cannot make a token of {total_len} characters")


# ------------------------------------------------------------------ the corpus

class Case:
    """expect: 401 ("invalid": a token was sent and is invalid -> identical
    answers with error="invalid_token"), "nocred" (401: no Bearer token at all),
    403, 400, 431, or a set of statuses where the spec leaves the choice open."""

    def __init__(self, name, expect, build, user=VICTIM):
        self.name, self.expect, self.build, self.user = name, expect, build, user


def bearer(token):
    return [("Authorization", f"Bearer {token}")]


def T(name, build, expect=401, user=VICTIM):
    """A case whose build() returns a token sent as ``Bearer``."""
    return Case(name, expect, lambda: bearer(build()), user)


def H(name, build, expect, user=VICTIM):
    """A case whose build() returns the header list."""
    return Case(name, expect, build, user)


def _flip_bit(tok):
    si, sig = tok.rsplit(".", 1)
    raw = bytearray(base64.urlsafe_b64decode(sig + "="))
    raw[17] ^= 0x08
    return si + "." + b64url(bytes(raw))


def _padded_payload():
    p = with_filler(lambda b: len(b) % 3 == 1)          # base64 needs "=="
    seg = base64.urlsafe_b64encode(p).decode()
    assert seg.endswith("==")
    return signed(b64url(enc(HDR)) + "." + seg)


def _padded_header():
    h = b'{"alg":"HS256", "typ":"JWT"}'                 # 28 bytes -> "=="
    seg = base64.urlsafe_b64encode(h).decode()
    assert seg.endswith("==")
    return signed(seg + "." + b64url(enc(claims())))


def _payload_with(char, std):
    p = with_filler(lambda b: char in b64url(b))
    seg = b64url(p).translate(str.maketrans("-_", "+/"))
    assert std in seg
    return signed(b64url(enc(HDR)) + "." + seg)


def _sig_std(char, std):
    t = sig_with(char)
    si, sig = t.rsplit(".", 1)
    return si + "." + sig.translate(str.maketrans("-_", "+/"))


def _non_canonical_sig():
    for i in range(1000):
        t = jws(HDR, claims(n=i))
        si, sig = t.rsplit(".", 1)
        try:
            return si + "." + non_canonical_last(sig)
        except AssertionError:
            continue
    raise AssertionError("unreachable: 32-byte MACs always leave 2 zero bits")


def _non_canonical_payload():
    p = with_filler(lambda b: len(b) % 3 == 1)
    seg = non_canonical_last(b64url(p))
    return signed(b64url(enc(HDR)) + "." + seg)


def _reserialised_header():
    t = good_token()
    _, p, sig = t.split(".")
    h2 = b64url(b'{"typ":"JWT","alg":"HS256"}')         # same JSON, other bytes
    return f"{h2}.{p}.{sig}"


def _dup_claims(first, second, key="sub"):
    c = claims()
    pairs = [(key, first), (key, second)] + [(k, v) for k, v in c.items() if k != key]
    return jws(HDR, raw_object(pairs))


def _jwk_embedded():
    attacker = b"attacker-chosen-key-which-is-long-enough-0123"
    header = {"alg": "HS256", "typ": "JWT",
              "jwk": {"kty": "oct", "k": b64url(attacker)}}
    return jws(header, claims(), secret=attacker)


def _two_auth_headers():
    t = good_token()
    return [("Authorization", f"Bearer {t}"), ("Authorization", f"Bearer {t}")]


def _now():
    return int(time.time())


CORPUS = [
    # --- structure and encoding
    T("truncated signature", lambda: good_token()[:-1]),
    T("truncated mid-payload", lambda: good_token()[:len(good_token()) // 2]),
    T("signature one bit flipped", lambda: _flip_bit(good_token())),
    T("signed with another secret", lambda: jws(HDR, claims(), secret=OTHER_SECRET)),
    T("signed with the first 32 bytes of the secret",
      lambda: jws(HDR, claims(), secret=TEST_JWT_SECRET[:32])),
    T("signed with an empty key", lambda: jws(HDR, claims(), secret=b"")),
    T("empty signature segment", lambda: good_token().rsplit(".", 1)[0] + "."),
    T("two segments", lambda: good_token().rsplit(".", 1)[0]),
    T("four segments (extra signature)", lambda: good_token() + "." + good_token().split(".")[2]),
    T("four segments (trailing dot)", lambda: good_token() + "."),
    T("one segment", lambda: good_token().split(".")[1]),
    T("signature padded with =", lambda: good_token() + "="),
    T("payload padded with ==", _padded_payload),
    T("header padded with ==", _padded_header),
    T("payload with + (standard base64)", lambda: _payload_with("-", "+")),
    T("payload with / (standard base64)", lambda: _payload_with("_", "/")),
    T("signature with + (standard base64)", lambda: _sig_std("-", "+")),
    T("signature with / (standard base64)", lambda: _sig_std("_", "/")),
    T("signature with non-canonical last character", _non_canonical_sig),
    T("payload with non-canonical last character", _non_canonical_payload),
    T("header re-serialised, old MAC", _reserialised_header),
    T("invalid base64 character", lambda: signed(good_token().rsplit(".", 1)[0].replace(".", ".*"))),
    # --- header
    T("header not JSON", lambda: jws(b"not json", claims())),
    T("header a JSON array", lambda: jws(b'["alg","HS256"]', claims())),
    T("header a JSON string", lambda: jws(b'"HS256"', claims())),
    T("header without alg", lambda: jws({"typ": "JWT"}, claims())),
    T("alg null", lambda: jws({"alg": None, "typ": "JWT"}, claims())),
    T("alg none, empty signature",
      lambda: b64url(enc({"alg": "none", "typ": "JWT"})) + "." + b64url(enc(claims())) + "."),
    T("alg None, empty signature",
      lambda: b64url(enc({"alg": "None", "typ": "JWT"})) + "." + b64url(enc(claims())) + "."),
    T("alg NONE, empty signature",
      lambda: b64url(enc({"alg": "NONE"})) + "." + b64url(enc(claims())) + "."),
    T("alg none with an HS256 MAC", lambda: jws({"alg": "none", "typ": "JWT"}, claims())),
    T("alg HS512 with a correct HS512 MAC",
      lambda: jws({"alg": "HS512", "typ": "JWT"}, claims(), digest=hashlib.sha512)),
    T("alg HS384 with a correct HS384 MAC",
      lambda: jws({"alg": "HS384", "typ": "JWT"}, claims(), digest=hashlib.sha384)),
    T("alg RS256 with an HS256 MAC (key confusion)", lambda: jws({"alg": "RS256", "typ": "JWT"}, claims())),
    T("alg hs256 (wrong case)", lambda: jws({"alg": "hs256", "typ": "JWT"}, claims())),
    T("alg 'HS256 ' (trailing space)", lambda: jws({"alg": "HS256 ", "typ": "JWT"}, claims())),
    T("duplicate alg in header (none, HS256)",
      lambda: jws(b'{"alg":"none","alg":"HS256","typ":"JWT"}', claims())),
    T("duplicate alg in header (HS256, HS256)",
      lambda: jws(b'{"alg":"HS256","alg":"HS256","typ":"JWT"}', claims())),
    T("typ at+jwt", lambda: jws({"alg": "HS256", "typ": "at+jwt"}, claims())),
    T("typ not a string", lambda: jws({"alg": "HS256", "typ": 1}, claims())),
    T("crit header", lambda: jws({"alg": "HS256", "typ": "JWT", "crit": ["exp"]}, claims())),
    T("crit header, empty list", lambda: jws({"alg": "HS256", "typ": "JWT", "crit": []}, claims())),
    T("embedded jwk with the attacker's key", _jwk_embedded),
    # --- payload
    T("payload not JSON", lambda: jws(HDR, b"sub=" + VICTIM.encode())),
    T("payload a JSON string", lambda: jws(HDR, json.dumps(VICTIM).encode())),
    T("payload a JSON array", lambda: jws(HDR, enc([claims()]))),
    T("payload with invalid UTF-8",
      lambda: jws(HDR, enc(claims())[:-1] + b',"x":"\xff\xfe"}')),
    T("duplicate sub (mallory, victim)", lambda: _dup_claims(MALLORY, VICTIM)),
    T("duplicate sub (victim, mallory)", lambda: _dup_claims(VICTIM, MALLORY)),
    T("duplicate sub (victim, victim)", lambda: _dup_claims(VICTIM, VICTIM)),
    T("duplicate exp (past, future)", lambda: _dup_claims(_now() - 3600, _now() + 3600, "exp")),
    T("exp a string", lambda: good_token(exp=str(_now() + 3600))),
    T("exp missing", lambda: good_token(exp=DROP)),
    T("exp null", lambda: good_token(exp=None)),
    T("exp true", lambda: good_token(exp=True)),
    T("exp 5 minutes ago", lambda: good_token(exp=_now() - 300)),
    T("exp far past", lambda: good_token(iat=1, exp=2)),
    T("nbf 5 minutes ahead", lambda: good_token(nbf=_now() + 300)),
    T("iat 5 minutes ahead", lambda: good_token(iat=_now() + 300, exp=_now() + 3600)),
    T("iss wrong", lambda: good_token(iss="https://evil.test/")),
    T("iss with a suffix", lambda: good_token(iss=ISSUER + "x")),
    T("iss missing", lambda: good_token(iss=DROP)),
    T("iss in another case", lambda: good_token(iss=ISSUER.upper())),
    T("aud wrong", lambda: good_token(aud="another-service")),
    T("aud a prefix of ours", lambda: good_token(aud=AUDIENCE[:-1])),
    T("aud missing", lambda: good_token(aud=DROP)),
    T("aud array without ours", lambda: good_token(aud=["another-service", AUDIENCE + "-x"])),
    T("aud empty array", lambda: good_token(aud=[])),
    T("aud a number", lambda: good_token(aud=42)),
    T("sub another user", lambda: good_token(MALLORY), expect=403),
    T("sub in another case", lambda: good_token(VICTIM.upper()), expect=403),
    T("sub percent-encoded", lambda: good_token("%" + VICTIM.encode().hex()[:2] + VICTIM[1:]),
      expect=403),
    T("sub a prefix of the path user", lambda: good_token(VICTIM[:-1]), expect=403),
    T("sub extends the path user", lambda: good_token(VICTIM + "x"), expect=403),
    T("sub another user, user_id the path user",
      lambda: good_token(MALLORY, user_id=VICTIM), expect=403),
    T("sub with an embedded NUL", lambda: good_token(VICTIM + "\u0000" + MALLORY),
      expect={401, 403}),
    T("sub a number", lambda: good_token(int(NUM_VICTIM)), user=NUM_VICTIM),
    T("sub an array", lambda: good_token([VICTIM])),
    T("user_id a number, no sub", lambda: good_token(sub=DROP, user_id=int(NUM_VICTIM)),
      user=NUM_VICTIM),
    T("neither sub nor user_id", lambda: good_token(sub=DROP)),
    # --- size
    T("9 KiB token", lambda: sized_token(9 * 1024)),
    T("8193-byte token", lambda: sized_token(8193)),
    T("20 KiB token (head over MAX_HEADER_BYTES)", lambda: sized_token(20 * 1024), expect=431),
    # --- the header field itself
    H("Basic scheme", lambda: [("Authorization", "Basic "
                                + base64.b64encode(f"{VICTIM}:pw".encode()).decode())], "nocred"),
    H("Basic scheme carrying a valid JWT", lambda: [("Authorization", "Basic " + good_token())],
      "nocred"),
    H("JWT scheme carrying a valid JWT", lambda: [("Authorization", "JWT " + good_token())],
      "nocred"),
    H("Bearer with no token", lambda: [("Authorization", "Bearer")], "nocred"),
    H("Bearer and spaces only", lambda: [("Authorization", "Bearer   ")], "nocred"),
    H("empty Authorization", lambda: [("Authorization", "")], "nocred"),
    H("valid token without a scheme", lambda: [("Authorization", good_token())], "nocred"),
    T("Bearer with two tokens", lambda: good_token() + " " + good_token()),
    H("two Authorization headers", _two_auth_headers, 400),
]

# 401 answers to sent-but-invalid tokens, by case name: all must be identical
INVALID_ANSWERS = {}


def post_as(server, user, headers):
    return server.get(f"/api/{user}/tasks", method="POST",
                      headers=[("Content-Type", "application/json"), *headers],
                      body=b'{"title":"written by a hostile token"}')


def challenge(resp):
    assert resp.header_count("www-authenticate") == 1, f"WWW-Authenticate missing: {resp!r}"
    value = resp.headers["www-authenticate"]
    assert re.match(r"(?i)bearer(\s|$)", value), f"not a Bearer challenge: {value!r}"
    return value


def sql_str(s):
    return "'" + s.replace("'", "''") + "'"


def rows_of(db, users):
    return db.scalar("SELECT count(*) FROM tasks WHERE user_id IN ("
                     + ",".join(sql_str(u) for u in users) + ")")


@pytest.mark.parametrize("case", CORPUS, ids=[c.name for c in CORPUS])
def test_hostile_token_is_refused(iss_server, case):
    before = rows_of(iss_server.db, ALL_VICTIMS)
    r = post_as(iss_server, case.user, case.build())
    exp = case.expect
    if exp == 401:
        doc = assert_problem(r, 401)
        assert doc["type"] == UNAUTHORIZED, doc
        ch = challenge(r)
        assert re.search(r'(^|[\s,])error="invalid_token"', ch), ch
        INVALID_ANSWERS[case.name] = (r.body, ch)
    elif exp == "nocred":
        doc = assert_problem(r, 401)
        assert doc["type"] == UNAUTHORIZED, doc
        ch = challenge(r)
        assert "error=" not in ch or 'error="invalid_token"' in ch, ch
    elif exp == 403:
        doc = assert_problem(r, 403)
        assert doc["type"] == FORBIDDEN, doc
    elif isinstance(exp, set):
        assert r.status in exp, f"expected one of {sorted(exp)}, got {r!r}"
    else:
        assert_problem(r, exp)
    assert rows_of(iss_server.db, ALL_VICTIMS) == before, "a hostile token wrote a row"


def test_missing_authorization_is_401_with_a_plain_challenge(iss_server):
    r = post_as(iss_server, VICTIM, [])
    doc = assert_problem(r, 401)
    assert doc["type"] == UNAUTHORIZED, doc
    ch = challenge(r)
    assert "error" not in ch.lower(), f"missing token must not carry an error code: {ch!r}"


def test_every_invalid_token_gets_the_same_answer(iss_server):
    """The 401 body and challenge never tell which check failed."""
    if len(INVALID_ANSWERS) < 10:
        pytest.skip("run with the hostile corpus (test_hostile_token_is_refused)")
    distinct = {}
    for name, answer in INVALID_ANSWERS.items():
        distinct.setdefault(answer, []).append(name)
    assert len(distinct) == 1, "401 answers differ between invalid tokens:\n" + "\n".join(
        f"  {body!r} / {ch!r}: {names}" for (body, ch), names in distinct.items())


def test_corpus_left_no_trace(iss_server):
    """After the corpus, every victim's list (read with a valid token) is empty,
    and so is PostgreSQL."""
    for user in (VICTIM, NUM_VICTIM, MALLORY):
        api = TasksClient(iss_server, user, iss_server.db)
        assert api.list_ok() == [], user
    assert rows_of(iss_server.db, ALL_VICTIMS) == "0"
    assert iss_server.db.scalar("SELECT count(*) FROM idempotency_keys") == "0"


# ------------------------------------------------------------------ accepted tokens

def accepted(server, headers, user):
    r = post_as(server, user, headers)
    task = assert_json(r, 201)
    assert task["user_id"] == user, task
    assert rows_of(server.db, [user]) == "1"
    return task


ACCEPTED = [
    ("valid token", lambda u: bearer(good_token(u))),
    ("lower-case bearer scheme", lambda u: [("Authorization", "bearer " + good_token(u))]),
    ("upper-case BEARER scheme", lambda u: [("Authorization", "BEARER " + good_token(u))]),
    ("exp 10 s ago (inside the leeway)", lambda u: bearer(good_token(u, exp=_now() - 10))),
    ("nbf 10 s ahead (inside the leeway)", lambda u: bearer(good_token(u, nbf=_now() + 10))),
    ("nbf in the past", lambda u: bearer(good_token(u, nbf=_now() - 60))),
    ("iat 10 s ahead (inside the leeway)", lambda u: bearer(good_token(u, iat=_now() + 10))),
    ("no iat", lambda u: bearer(good_token(u, iat=DROP))),
    ("aud array with ours", lambda u: bearer(good_token(u, aud=["other", AUDIENCE]))),
    ("user_id claim when sub is absent", lambda u: bearer(good_token(u, sub=DROP, user_id=u))),
    ("sub wins over user_id", lambda u: bearer(good_token(u, user_id=MALLORY))),
    ("typ jwt (lower case)", lambda u: bearer(jws({"alg": "HS256", "typ": "jwt"}, claims(u)))),
    ("no typ", lambda u: bearer(jws({"alg": "HS256"}, claims(u)))),
    ("header with whitespace and other key order",
     lambda u: bearer(jws(b'{ "typ" : "JWT" , "alg" : "HS256" }', claims(u)))),
    ("unknown claims are ignored", lambda u: bearer(good_token(u, scope="tasks", jti="x1"))),
    ("8192-byte token", lambda u: bearer(sized_token(8192, u))),
]


@pytest.mark.parametrize("name, build", ACCEPTED, ids=[a[0] for a in ACCEPTED])
def test_valid_token_is_accepted(iss_server, name, build):
    user = new_user("ok")
    accepted(iss_server, build(user), user)


def test_percent_encoded_path_user_matches_the_decoded_sub(iss_server):
    """/api/%75%31.../tasks is the user "u1...": its token is accepted there."""
    user = new_user("pct")
    path_user = "".join(f"%{b:02X}" for b in user.encode())
    r = post_as(iss_server, path_user, bearer(good_token(user)))
    task = assert_json(r, 201)
    assert task["user_id"] == user, task
    assert rows_of(iss_server.db, [user]) == "1"


def test_kid_jku_x5u_are_ignored_and_never_fetched(iss_server):
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(8)
    lsock.settimeout(1.0)
    port = lsock.getsockname()[1]
    try:
        user = new_user("kid")
        header = {"alg": "HS256", "typ": "JWT",
                  "kid": "../../../../etc/passwd' OR '1'='1",
                  "jku": f"http://127.0.0.1:{port}/jwks.json",
                  "x5u": f"http://127.0.0.1:{port}/cert.pem"}
        accepted(iss_server, bearer(jws(header, claims(user))), user)
        try:
            conn, _ = lsock.accept()
            conn.close()
            pytest.fail("the service connected to the jku/x5u URL")
        except socket.timeout:
            pass
    finally:
        lsock.close()


def test_token_without_iss_and_aud_accepted_when_none_is_configured(plain_server):
    user = new_user("plain")
    accepted(plain_server, bearer(good_token(user, iss=DROP, aud=DROP)), user)
    # and iss/aud in a token are then not checked
    user2 = new_user("plain")
    accepted(plain_server, bearer(good_token(user2, iss="anyone", aud="anything")), user2)


def test_user_id_claim_accepted_by_a_plain_server(plain_server):
    """The original system's tokens: {"user_id": ..., "exp": ...}, no sub."""
    user = new_user("orig")
    accepted(plain_server, bearer(jws(HDR, {"user_id": user, "exp": _now() + 600})), user)


def test_plain_server_rejects_an_expired_token(plain_server):
    r = post_as(plain_server, VICTIM, bearer(good_token(iss=DROP, aud=DROP, exp=_now() - 300)))
    assert_problem(r, 401)
    assert rows_of(plain_server.db, [VICTIM]) == "0"


# ------------------------------------------------------------------ clock skew setting

def test_clock_skew_zero(pg, start_server):
    s = start_server(**auth_env(pg.url, AUTH_CLOCK_SKEW_S=0))
    wait_ready(s)
    s.db = pg
    r = post_as(s, VICTIM, bearer(good_token(iss=DROP, aud=DROP, exp=_now() - 10)))
    assert_problem(r, 401)
    r = post_as(s, VICTIM, bearer(good_token(iss=DROP, aud=DROP, nbf=_now() + 10)))
    assert_problem(r, 401)
    user = new_user("skew")
    accepted(s, bearer(good_token(user, iss=DROP, aud=DROP, exp=_now() + 30)), user)
    assert rows_of(pg, [VICTIM]) == "0"


def test_clock_skew_zero_accepts_a_token_issued_this_instant(pg, start_server):
    """With no leeway, "iat" = this second must still pass. The server once read
    time(), which glibc serves from the coarse clock: it trails the precise one
    by up to a kernel tick, so near a second boundary a token stamped by this
    process looked issued in the future (about 1 in 250 requests)."""
    s = start_server(**auth_env(pg.url, AUTH_CLOCK_SKEW_S=0))
    wait_ready(s)
    user = new_user("instant")
    refused = []
    for i in range(1000):
        r = s.get(f"/api/{user}/tasks", headers=bearer(good_token(user, iss=DROP, aud=DROP)))
        if r.status != 200:
            refused.append((i, r.status))
    assert refused == [], f"{len(refused)} of 1000 fresh tokens refused: {refused[:5]}"


def test_clock_skew_sixty(pg, start_server):
    s = start_server(**auth_env(pg.url, AUTH_CLOCK_SKEW_S=60))
    wait_ready(s)
    s.db = pg
    user = new_user("skew")
    accepted(s, bearer(good_token(user, iss=DROP, aud=DROP, exp=_now() - 45)), user)
    r = post_as(s, VICTIM, bearer(good_token(iss=DROP, aud=DROP, exp=_now() - 90)))
    assert_problem(r, 401)
    assert rows_of(pg, [VICTIM]) == "0"


@pytest.mark.parametrize("value", ["61", "3600", "-1", "abc"])
def test_bad_clock_skew_exits_2_naming_it(value):
    cp = run_binary(env=auth_env("postgresql://todo@127.0.0.1:1/todo", AUTH_CLOCK_SKEW_S=value),
                    timeout=3)
    assert cp.returncode == 2, f"AUTH_CLOCK_SKEW_S={value}: exit {cp.returncode}, {cp.stderr!r}"
    lines = [line for line in cp.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "AUTH_CLOCK_SKEW_S" in lines[0], lines


# ------------------------------------------------------------------ the secret

BAD_SECRETS = [
    ("missing", None),
    ("empty", ""),
    ("16 bytes", "0123456789abcdef"),
    ("31 bytes", "s" * 31),
]


@pytest.mark.parametrize("name, secret", BAD_SECRETS, ids=[b[0] for b in BAD_SECRETS])
def test_bad_secret_with_a_database_exits_2_naming_it(name, secret):
    cp = run_binary(env=auth_env("postgresql://todo@127.0.0.1:1/todo", AUTH_JWT_SECRET=secret),
                    timeout=3)
    assert cp.returncode == 2, f"secret {name}: exit {cp.returncode}, stderr {cp.stderr!r}"
    lines = [line for line in cp.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "AUTH_JWT_SECRET" in lines[0], lines
    assert cp.stdout == "", cp.stdout


def test_short_secret_is_not_echoed():
    secret = "hunter2-is-not-a-good-key"                 # 25 bytes
    cp = run_binary(env=auth_env("postgresql://todo@127.0.0.1:1/todo", AUTH_JWT_SECRET=secret),
                    timeout=3)
    assert cp.returncode == 2, cp
    assert secret not in cp.stderr + cp.stdout, cp.stderr


def test_secret_of_exactly_32_bytes_is_enough(pg, start_server):
    secret = "k" * 31 + "!"
    s = start_server(**auth_env(pg.url, AUTH_JWT_SECRET=secret))
    wait_ready(s)
    s.db = pg
    user = new_user("k32")
    accepted(s, bearer(user_token(user, secret)), user)
    r = post_as(s, VICTIM, bearer(user_token(VICTIM, TEST_JWT_SECRET)))
    assert_problem(r, 401)


def test_no_secret_needed_without_a_database(start_server):
    s = start_server(DATABASE_URL=None, **{k: None for k in AUTH_VARS})
    assert s.get("/healthz").status == 200


def test_help_lists_the_auth_settings():
    cp = run_binary(["--help"])
    assert cp.returncode == 0
    for var in ("AUTH_JWT_SECRET", "AUTH_JWT_ISSUER", "AUTH_JWT_AUDIENCE", "AUTH_CLOCK_SKEW_S",
                "AUTH_DISABLED", "APP_API_TOKEN"):
        assert re.search(rf"\b{var}\b", cp.stdout), f"--help does not mention {var}"


# ------------------------------------------------------------------ AUTH_DISABLED=1

def test_auth_disabled(pg, start_server):
    s = start_server(**auth_env(pg.url, AUTH_DISABLED=1, AUTH_JWT_SECRET=None))
    doc = wait_ready(s)
    assert doc.get("auth") == "disabled", doc
    warn = [j for j in s.json_logs() if j.get("level") in ("warn", "warning", "error")
            and "auth" in json.dumps(j).lower()]
    assert warn, "no warning about disabled authentication:\n" + "\n".join(s.logs()[:20])
    user = new_user("open")
    r = post_as(s, user, [])
    task = assert_json(r, 201)
    assert task["user_id"] == user, task
    r = s.get(f"/api/{user}/tasks")
    assert [t["id"] for t in assert_json(r, 200)] == [task["id"]]


def test_auth_enabled_readyz_does_not_say_disabled(plain_server):
    code, doc = readyz(plain_server)
    assert code == 200, doc
    assert doc.get("auth") != "disabled", doc


# ------------------------------------------------------------------ token subcommand

def decode_segment(seg):
    assert "=" not in seg and "+" not in seg and "/" not in seg, seg
    return json.loads(base64.urlsafe_b64decode(seg + "=" * (-len(seg) % 4)))


def run_token(args, **env):
    over = {k: None for k in AUTH_VARS}
    over.update({"DATABASE_URL": None, "AUTH_JWT_SECRET": TEST_JWT_SECRET})
    over.update(env)
    return run_binary(["token", *args], env=over, timeout=5)


def printed_token(cp):
    assert cp.returncode == 0, cp
    lines = cp.stdout.splitlines()
    assert len(lines) == 1 and cp.stdout.endswith("\n"), f"not one line: {cp.stdout!r}"
    tok = lines[0]
    parts = tok.split(".")
    assert len(parts) == 3, tok
    return tok, decode_segment(parts[0]), decode_segment(parts[1])


@pytest.mark.parametrize("ttl, seconds", [(None, 3600), ("30s", 30), ("15m", 900),
                                           ("1h", 3600), ("7d", 7 * 86400)])
def test_token_subcommand_prints_a_signed_token(ttl, seconds):
    t0 = int(time.time())
    args = ["--user", "alice"] + (["--ttl", ttl] if ttl else [])
    tok, header, payload = printed_token(run_token(args))
    t1 = int(time.time())
    assert header.get("alg") == "HS256", header
    si, sig = tok.rsplit(".", 1)
    assert hmac.compare_digest(sig, b64url(mac(si))), "token not signed with AUTH_JWT_SECRET"
    assert payload["sub"] == "alice", payload
    assert t0 - 2 <= payload["iat"] <= t1 + 2, payload
    assert payload["exp"] - payload["iat"] == seconds, payload
    assert "iss" not in payload and "aud" not in payload, payload


def test_token_subcommand_includes_issuer_and_audience():
    tok, header, payload = printed_token(
        run_token(["--user", "bob"], AUTH_JWT_ISSUER=ISSUER, AUTH_JWT_AUDIENCE=AUDIENCE))
    assert payload["iss"] == ISSUER, payload
    aud = payload["aud"]
    assert aud == AUDIENCE or (isinstance(aud, list) and AUDIENCE in aud), payload


@pytest.mark.parametrize("ttl", [None, "30s"])
def test_token_subcommand_output_is_accepted_by_the_service(iss_server, ttl):
    user = new_user("cli")
    env = {k: iss_server.env.get(k) for k in AUTH_VARS}
    args = ["--user", user] + (["--ttl", ttl] if ttl else [])
    tok, _, _ = printed_token(run_token(args, **env))
    accepted(iss_server, bearer(tok), user)
    # the same token on another user's path is 403
    before = rows_of(iss_server.db, [VICTIM])
    r = post_as(iss_server, VICTIM, bearer(tok))
    doc = assert_problem(r, 403)
    assert doc["type"] == FORBIDDEN, doc
    assert rows_of(iss_server.db, [VICTIM]) == before


@pytest.mark.parametrize("name, secret", BAD_SECRETS, ids=[b[0] for b in BAD_SECRETS])
def test_token_subcommand_bad_secret_exits_2(name, secret):
    cp = run_token(["--user", "alice"], AUTH_JWT_SECRET=secret)
    assert cp.returncode == 2, f"secret {name}: exit {cp.returncode}, stderr {cp.stderr!r}"
    lines = [line for line in cp.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "AUTH_JWT_SECRET" in lines[0], lines
    assert cp.stdout == "", cp.stdout


@pytest.mark.parametrize("args", [["--user", "alice", "--ttl", "abc"],
                                  ["--user", "alice", "--ttl", "1y"],
                                  ["--user", "alice", "--ttl", "-1h"],
                                  []], ids=["ttl abc", "ttl 1y", "ttl -1h", "no user"])
def test_token_subcommand_bad_arguments_fail(args):
    cp = run_token(args)
    assert cp.returncode != 0, cp
    assert cp.stdout == "", cp.stdout
