/*
 * ring.h — a byte ring that grows on demand (power-of-two capacity) and
 * gives its storage back once empty, so an idle connection holds none.
 *
 * Offsets are relative to the oldest byte (head). Bytes past `len` may be
 * written too: the receive side parks out-of-order data there until the
 * gap before it fills. `end` is one past the highest byte ever written
 * (relative to head); the storage is freed when a consume passes it.
 */
#ifndef UTCP_RING_H
#define UTCP_RING_H

#include <stdint.h>

struct ring {
	uint8_t *buf; /* NULL while empty */
	uint32_t cap, head, len, end;
};

/* Make room for `need` bytes from head: 0 or -ENOMEM. */
int ring_reserve(struct ring *r, uint32_t need);
/* Copy n bytes in at offset off (growing as needed): 0 or -ENOMEM. */
int ring_write_at(struct ring *r, uint32_t off, const void *src, uint32_t n);
/* n bytes were written in place at offset off, into room ring_reserve
 * made (a readv into the send ring): they count as written. */
void ring_wrote(struct ring *r, uint32_t off, uint32_t n);
/* Copy n bytes out from offset off; off + n must be within cap. */
void ring_read_at(const struct ring *r, uint32_t off, void *dst, uint32_t n);
/* Drop n bytes from the head (n <= len); frees the storage when nothing
 * written remains past them. */
void ring_consume(struct ring *r, uint32_t n);
/* Free the storage if nothing is queued (len 0), forgetting any bytes
 * parked past len: for a caller that knows they are no longer wanted. */
void ring_release_if_empty(struct ring *r);
void ring_free(struct ring *r);

#endif
