/* digest: hashing and base64url, the only users of OpenSSL.
 *
 * SHA-256 names request bodies (Idempotency-Key) and list queries
 * (cursors); the authentication issue adds HMAC here. */
#ifndef TODO_CRYPTO_DIGEST_H
#define TODO_CRYPTO_DIGEST_H

#include <stdbool.h>
#include <stddef.h>

#define DIGEST_SHA256_HEX_LEN 64

/* Lower-case hex SHA-256 of data; out needs 65 bytes. */
void digest_sha256_hex(const void *data, size_t len, char out[DIGEST_SHA256_HEX_LEN + 1]);

/* Compares n bytes in time independent of where they differ. */
bool digest_equal(const void *a, const void *b, size_t n);

/* Unpadded base64url. Encoding returns the length written (out needs
 * 4 * ceil(len / 3) + 1 bytes); decoding returns the length, or -1 when in
 * is not strict unpadded base64url or out is short. */
size_t digest_base64url_encode(const void *in, size_t len, char *out);
long digest_base64url_decode(const char *in, size_t len, void *out, size_t outlen);

#endif
