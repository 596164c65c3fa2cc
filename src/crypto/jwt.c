/* jwt: HS256 verification and signing with OpenSSL's HMAC. */
#include "crypto/jwt.h"

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/buf.h"
#include "crypto/digest.h"

#define SHA256_LEN 32

static bool hmac_sha256(const jwt_keys_t *keys, const char *data, size_t len,
                        unsigned char out[SHA256_LEN])
{
    unsigned int out_len = 0;
    return HMAC(EVP_sha256(), keys->secret, (int)keys->secret_len, (const unsigned char *)data,
                len, out, &out_len) != NULL &&
           out_len == SHA256_LEN;
}

/* Decodes one base64url segment holding a JSON object. */
static json_t *decode_object(const char *seg, size_t len)
{
    char buf[JWT_MAX_TOKEN];
    long n = digest_base64url_decode(seg, len, buf, sizeof buf);
    if (n <= 0)
        return NULL;
    json_error_t err;
    json_t *doc = json_loadb(buf, (size_t)n, JSON_REJECT_DUPLICATES, &err);
    if (doc && !json_is_object(doc)) {
        json_decref(doc);
        return NULL;
    }
    return doc;
}

/* A NumericDate (RFC 7519 2): a JSON number, integer or not. */
static bool numeric_date(const json_t *v, double *out)
{
    if (!json_is_number(v))
        return false;
    *out = json_number_value(v);
    return true;
}

static bool header_ok(const json_t *h)
{
    const json_t *alg = json_object_get(h, "alg");
    const json_t *typ = json_object_get(h, "typ");
    if (!json_is_string(alg) || strcmp(json_string_value(alg), "HS256") != 0)
        return false;
    if (typ && (!json_is_string(typ) || strcasecmp(json_string_value(typ), "JWT") != 0))
        return false;
    /* No extension is understood, so none may be critical (RFC 7515 4.1.11). */
    return json_object_get(h, "crit") == NULL;
}

static bool audience_ok(const json_t *aud, const char *want)
{
    if (json_is_string(aud))
        return strcmp(json_string_value(aud), want) == 0;
    if (!json_is_array(aud))
        return false;
    size_t i;
    const json_t *v;
    json_array_foreach(aud, i, v) {
        if (json_is_string(v) && strcmp(json_string_value(v), want) == 0)
            return true;
    }
    return false;
}

static bool claims_ok(const jwt_keys_t *keys, const json_t *p, int64_t now_s,
                      char subject[JWT_MAX_SUBJECT + 1])
{
    double exp, t;
    double now = (double)now_s, leeway = keys->leeway_s;
    if (!numeric_date(json_object_get(p, "exp"), &exp) || now >= exp + leeway)
        return false;
    const json_t *nbf = json_object_get(p, "nbf");
    if (nbf && (!numeric_date(nbf, &t) || now + leeway < t))
        return false;
    const json_t *iat = json_object_get(p, "iat");
    if (iat && (!numeric_date(iat, &t) || t > now + leeway))
        return false;
    if (keys->issuer) {
        const json_t *iss = json_object_get(p, "iss");
        if (!json_is_string(iss) || strcmp(json_string_value(iss), keys->issuer) != 0)
            return false;
    }
    if (keys->audience && !audience_ok(json_object_get(p, "aud"), keys->audience))
        return false;
    /* The original system's tokens carry the user in "user_id". */
    const json_t *sub = json_object_get(p, "sub");
    if (!sub)
        sub = json_object_get(p, "user_id");
    if (!json_is_string(sub))
        return false;
    size_t n = json_string_length(sub);
    if (n == 0 || n > JWT_MAX_SUBJECT || memchr(json_string_value(sub), '\0', n))
        return false;
    memcpy(subject, json_string_value(sub), n + 1);
    return true;
}

int jwt_verify(const jwt_keys_t *keys, const char *token, size_t len, int64_t now_s,
               char subject[JWT_MAX_SUBJECT + 1])
{
    if (len == 0 || len > JWT_MAX_TOKEN)
        return -1;
    const char *dot1 = memchr(token, '.', len);
    if (!dot1)
        return -1;
    const char *dot2 = memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token));
    if (!dot2 || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)))
        return -1;
    size_t h_len = (size_t)(dot1 - token);
    size_t p_len = (size_t)(dot2 - dot1 - 1);
    size_t s_len = len - (size_t)(dot2 + 1 - token);
    if (h_len == 0 || p_len == 0 || s_len == 0)
        return -1;

    /* The signature first: nothing unauthenticated is parsed further than
     * the header needs. */
    unsigned char sig[SHA256_LEN + 1], mac[SHA256_LEN];
    if (digest_base64url_decode(dot2 + 1, s_len, sig, sizeof sig) != SHA256_LEN)
        return -1;
    json_t *header = decode_object(token, h_len);
    bool ok = header && header_ok(header);
    json_decref(header);
    if (!ok || !hmac_sha256(keys, token, (size_t)(dot2 - token), mac) ||
        CRYPTO_memcmp(mac, sig, SHA256_LEN) != 0)
        return -1;

    json_t *payload = decode_object(dot1 + 1, p_len);
    ok = payload && claims_ok(keys, payload, now_s, subject);
    json_decref(payload);
    return ok ? 0 : -1;
}

static char *encode_json(json_t *doc)
{
    char *text = json_dumps(doc, JSON_COMPACT);
    if (!text)
        return NULL;
    size_t n = strlen(text);
    char *out = malloc(n * 4 / 3 + 4);
    if (out)
        digest_base64url_encode(text, n, out);
    free(text);
    return out;
}

char *jwt_sign(const jwt_keys_t *keys, const char *subject, int64_t now_s, int64_t ttl_s)
{
    json_t *header = json_pack("{s:s, s:s}", "alg", "HS256", "typ", "JWT");
    json_t *payload = json_pack("{s:s, s:I, s:I}", "sub", subject, "iat", (json_int_t)now_s,
                                "exp", (json_int_t)(now_s + ttl_s));
    if (payload && keys->issuer)
        json_object_set_new(payload, "iss", json_string(keys->issuer));
    if (payload && keys->audience)
        json_object_set_new(payload, "aud", json_string(keys->audience));
    char *h = header ? encode_json(header) : NULL;
    char *p = payload ? encode_json(payload) : NULL;
    json_decref(header);
    json_decref(payload);
    char *token = NULL;
    buf_t b;
    buf_init(&b, JWT_MAX_TOKEN);
    unsigned char mac[SHA256_LEN];
    char sig[64];
    if (h && p && buf_printf(&b, "%s.%s", h, p) == 0 && hmac_sha256(keys, b.data, b.len, mac)) {
        digest_base64url_encode(mac, SHA256_LEN, sig);
        if (buf_printf(&b, ".%s", sig) == 0)
            token = buf_steal(&b, NULL);
    }
    buf_free(&b);
    free(h);
    free(p);
    return token;
}
