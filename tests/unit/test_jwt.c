/* jwt: signing and verification round trips and the rules that reject. */
#include <stdlib.h>
#include <string.h>

#include "crypto/digest.h"
#include "crypto/jwt.h"
#include "unit.h"

static const char secret[] = "0123456789abcdef0123456789abcdef";
#define NOW 1800000000

static jwt_keys_t keys(void)
{
    return (jwt_keys_t){(const unsigned char *)secret, sizeof secret - 1, NULL, NULL, 30};
}

static int verify(const jwt_keys_t *k, const char *token, int64_t now, char *sub)
{
    return jwt_verify(k, token, strlen(token), now, sub);
}

static void test_round_trip(void)
{
    jwt_keys_t k = keys();
    char *t = jwt_sign(&k, "alice", NOW, 3600);
    CHECK(t != NULL);
    char sub[JWT_MAX_SUBJECT + 1];
    CHECK_INT_EQ(verify(&k, t, NOW, sub), 0);
    CHECK_STR_EQ(sub, "alice");
    /* within the leeway after exp, then not */
    CHECK_INT_EQ(verify(&k, t, NOW + 3600 + 29, sub), 0);
    CHECK_INT_EQ(verify(&k, t, NOW + 3600 + 30, sub), -1);
    /* iat in the future beyond the leeway */
    CHECK_INT_EQ(verify(&k, t, NOW - 31, sub), -1);
    free(t);
}

static void test_tampering(void)
{
    jwt_keys_t k = keys();
    char *t = jwt_sign(&k, "alice", NOW, 3600);
    char sub[JWT_MAX_SUBJECT + 1];
    size_t n = strlen(t);
    /* every single-character change of the signing input or MAC fails */
    for (size_t i = 0; i < n; i++) {
        if (t[i] == '.')
            continue;
        char saved = t[i];
        t[i] = saved == 'A' ? 'B' : 'A';
        CHECK_INT_EQ(verify(&k, t, NOW, sub), -1);
        t[i] = saved;
    }
    /* another secret */
    jwt_keys_t other = k;
    other.secret = (const unsigned char *)"fedcba9876543210fedcba9876543210";
    CHECK_INT_EQ(verify(&other, t, NOW, sub), -1);
    /* truncated, extra segment */
    t[n - 1] = '\0';
    CHECK_INT_EQ(verify(&k, t, NOW, sub), -1);
    free(t);
    CHECK_INT_EQ(verify(&k, "a.b.c.d", NOW, sub), -1);
    CHECK_INT_EQ(verify(&k, "", NOW, sub), -1);
}

/* header.payload, unsigned: for tokens whose MAC cannot be right. */
static char *unsigned_input(const char *header, const char *payload)
{
    char *input = malloc(2 * (strlen(header) + strlen(payload)) + 8);
    size_t n = digest_base64url_encode(header, strlen(header), input);
    input[n++] = '.';
    digest_base64url_encode(payload, strlen(payload), input + n);
    return input;
}

static void test_alg_must_be_hs256(void)
{
    jwt_keys_t k = keys();
    char sub[JWT_MAX_SUBJECT + 1];
    /* "none" with an empty signature, and with a HS256-looking one */
    char *in = unsigned_input("{\"alg\":\"none\"}", "{\"sub\":\"alice\",\"exp\":1900000000}");
    char tok[1024];
    snprintf(tok, sizeof tok, "%s.", in);
    CHECK_INT_EQ(verify(&k, tok, NOW, sub), -1);
    snprintf(tok, sizeof tok, "%s.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", in);
    CHECK_INT_EQ(verify(&k, tok, NOW, sub), -1);
    free(in);
}

UNIT_MAIN(UNIT_TEST(test_round_trip), UNIT_TEST(test_tampering), UNIT_TEST(test_alg_must_be_hs256))
