/* uuid: version 4 UUIDs. */
#include "core/uuid.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

static unsigned char pool[4096];
static size_t pool_left;

static void random_bytes(unsigned char *out, size_t n)
{
    if (pool_left < n) {
        size_t got = 0;
        while (got < sizeof pool) {
            ssize_t r = getrandom(pool + got, sizeof pool - got, 0);
            if (r < 0) {
                if (errno == EINTR)
                    continue;
                /* getrandom() only fails without kernel support (pre-3.17);
                 * there is no safe fallback, so stop rather than repeat ids. */
                abort();
            }
            got += (size_t)r;
        }
        pool_left = sizeof pool;
    }
    memcpy(out, pool + sizeof pool - pool_left, n);
    pool_left -= n;
}

void uuid_v4(char out[UUID_STR_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char b[16];
    random_bytes(b, sizeof b);
    b[6] = (unsigned char)((b[6] & 0x0F) | 0x40); /* version 4 */
    b[8] = (unsigned char)((b[8] & 0x3F) | 0x80); /* RFC 4122 variant */
    size_t o = 0;
    for (size_t i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[b[i] >> 4];
        out[o++] = hex[b[i] & 15];
    }
    out[o] = '\0';
}
