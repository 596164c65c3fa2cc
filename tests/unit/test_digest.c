/* digest: SHA-256 against published test vectors, base64url both ways. */
#include <string.h>

#include "crypto/digest.h"
#include "unit.h"

/* FIPS 180-2 appendix B vectors. */
static void test_sha256_vectors(void)
{
    char hex[DIGEST_SHA256_HEX_LEN + 1];
    digest_sha256_hex("abc", 3, hex);
    CHECK_STR_EQ(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    digest_sha256_hex("", 0, hex);
    CHECK_STR_EQ(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    digest_sha256_hex(two, strlen(two), hex);
    CHECK_STR_EQ(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

/* RFC 4648 section 10 vectors, in the URL alphabet without padding. */
static void test_base64url_vectors(void)
{
    static const struct {
        const char *plain, *encoded;
    } v[] = {{"", ""},         {"f", "Zg"},         {"fo", "Zm8"},        {"foo", "Zm9v"},
             {"foob", "Zm9vYg"}, {"fooba", "Zm9vYmE"}, {"foobar", "Zm9vYmFy"}};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        char enc[16], dec[16];
        size_t n = digest_base64url_encode(v[i].plain, strlen(v[i].plain), enc);
        CHECK_INT_EQ(n, strlen(v[i].encoded));
        CHECK_STR_EQ(enc, v[i].encoded);
        long m = digest_base64url_decode(enc, n, dec, sizeof dec);
        CHECK_INT_EQ(m, (long)strlen(v[i].plain));
        CHECK_MEM_EQ(dec, (size_t)m, v[i].plain);
    }
    /* 0xfb 0xff uses both URL-only characters. */
    char enc[8];
    digest_base64url_encode("\xfb\xff", 2, enc);
    CHECK_STR_EQ(enc, "-_8");
}

static void test_base64url_rejects(void)
{
    char out[16];
    CHECK_INT_EQ(digest_base64url_decode("Zg==", 4, out, sizeof out), -1); /* padding */
    CHECK_INT_EQ(digest_base64url_decode("Zm+v", 4, out, sizeof out), -1); /* standard alphabet */
    CHECK_INT_EQ(digest_base64url_decode("Zm/v", 4, out, sizeof out), -1);
    CHECK_INT_EQ(digest_base64url_decode("Z", 1, out, sizeof out), -1);    /* impossible length */
    CHECK_INT_EQ(digest_base64url_decode("Zh", 2, out, sizeof out), -1);   /* non-zero spare bits */
    CHECK_INT_EQ(digest_base64url_decode("Zm9vYmFy", 8, out, 5), -1);      /* output too small */
    CHECK_INT_EQ(digest_base64url_decode("Zm9v YmFy", 9, out, sizeof out), -1);
}

UNIT_MAIN(UNIT_TEST(test_sha256_vectors), UNIT_TEST(test_base64url_vectors),
          UNIT_TEST(test_base64url_rejects))
