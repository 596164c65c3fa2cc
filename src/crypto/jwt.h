/* jwt: HS256 JSON Web Tokens, verified by hand after RFC 8725.
 *
 * Debian's libjwt 1.10 accepts expired tokens and does not pin the
 * algorithm (shared/reference/reliability.md), so the few rules that matter
 * are checked here: three segments of strict unpadded base64url, JSON
 * objects without duplicate keys, alg exactly HS256, no crit, a constant-
 * time HMAC-SHA256 comparison over the exact signing input, exp required,
 * nbf and iat honoured, iss and aud when configured. */
#ifndef TODO_CRYPTO_JWT_H
#define TODO_CRYPTO_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JWT_MAX_TOKEN 8192
#define JWT_MIN_SECRET 32
#define JWT_MAX_SUBJECT 128

typedef struct jwt_keys {
    const unsigned char *secret;
    size_t secret_len;
    const char *issuer;   /* required iss, or NULL */
    const char *audience; /* required member of aud, or NULL */
    int leeway_s;         /* clock skew allowed on exp, nbf and iat */
} jwt_keys_t;

/* Verifies token[0..len) at time now_s (Unix seconds). On success returns 0
 * and copies the subject ("sub", or "user_id" when "sub" is absent) into
 * subject. Returns -1 for any invalid token: callers must not tell clients
 * which rule failed. */
int jwt_verify(const jwt_keys_t *keys, const char *token, size_t len, int64_t now_s,
               char subject[JWT_MAX_SUBJECT + 1]);

/* A signed token for subject, valid from now_s for ttl_s seconds, with
 * iss and aud when configured. Returns a malloc'd string, or NULL. */
char *jwt_sign(const jwt_keys_t *keys, const char *subject, int64_t now_s, int64_t ttl_s);

#endif
