/*
 * reass.h — which sequence ranges past RCV.NXT have arrived.
 *
 * The bytes themselves sit in the receive ring at their final offset; this
 * only keeps the sorted, merged list of ranges [left, right) and when each
 * was last extended, which is also what SACK blocks report (RFC 2018: the
 * first block holds the most recent segment).
 */
#ifndef UTCP_REASS_H
#define UTCP_REASS_H

#include "wire.h"

#include <stdbool.h>
#include <stdint.h>

struct reass_blk {
	uint32_t left, right;
	uint32_t stamp;
};

struct reass {
	struct reass_blk *b;
	uint16_t n, cap; /* blocks are bounded far below 65535 */
	uint32_t stamp;
};

/* Record [left, right). 0, -ENOBUFS (more than max_blocks ranges) or
 * -ENOMEM. */
int reass_add(struct reass *q, uint32_t left, uint32_t right,
	      uint32_t max_blocks);
/* If the first range starts at or before rcv_nxt, remove it; *right is its
 * end. Ranges wholly below rcv_nxt are dropped on the way. */
bool reass_pop(struct reass *q, uint32_t rcv_nxt, uint32_t *right);
/* Up to max ranges, most recently extended first. */
int reass_sack(const struct reass *q, struct wire_sack *out, int max);
/* Forget everything below seq (ranges trimmed at it). */
void reass_trim_below(struct reass *q, uint32_t seq);
/* Highest right edge, or rcv_nxt when empty. */
uint32_t reass_end(const struct reass *q, uint32_t rcv_nxt);
void reass_free(struct reass *q);

#endif
