/* uuid: random (version 4) UUIDs from the kernel's CSPRNG.
 *
 * Random bytes are drawn with getrandom() 4 KiB at a time, so a UUID costs a
 * syscall only once every 256 calls. Not thread-safe: the service runs on
 * one loop thread. */
#ifndef TODO_CORE_UUID_H
#define TODO_CORE_UUID_H

#define UUID_STR_LEN 36

/* Writes a lower-case "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx" and a NUL. */
void uuid_v4(char out[UUID_STR_LEN + 1]);

#endif
