/* ring.c — growable byte ring (see ring.h). */
#include "ring.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Small first: a request or an answer of a few hundred bytes does not
 * take a page per connection at once (10,000 connections answering
 * together leave the heap at that high-water mark); bulk writes size the
 * ring in one step (ring_reserve doubles up to what is needed). */
#define RING_MIN 512u

int
ring_reserve(struct ring *r, uint32_t need)
{
	uint32_t ncap = r->cap ? r->cap : RING_MIN;
	uint8_t *nbuf;

	if (need <= r->cap)
		return 0;
	while (ncap < need) {
		if (ncap > UINT32_MAX / 2)
			return -ENOMEM;
		ncap *= 2;
	}
	nbuf = malloc(ncap);
	if (nbuf == NULL)
		return -ENOMEM;
	/* Linearise the whole old ring (out-of-order bytes past len too). */
	if (r->cap) {
		uint32_t first = r->cap - r->head;

		memcpy(nbuf, r->buf + r->head, first);
		memcpy(nbuf + first, r->buf, r->head);
	}
	free(r->buf);
	r->buf = nbuf;
	r->cap = ncap;
	r->head = 0;
	return 0;
}

int
ring_write_at(struct ring *r, uint32_t off, const void *src, uint32_t n)
{
	uint32_t pos, first;
	int err;

	if (n == 0)
		return 0;
	if ((err = ring_reserve(r, off + n)) != 0)
		return err;
	pos = (r->head + off) & (r->cap - 1);
	first = r->cap - pos;
	if (first > n)
		first = n;
	memcpy(r->buf + pos, src, first);
	memcpy(r->buf, (const uint8_t *)src + first, n - first);
	if (off + n > r->end)
		r->end = off + n;
	return 0;
}

void
ring_wrote(struct ring *r, uint32_t off, uint32_t n)
{
	if (n > 0 && off + n > r->end)
		r->end = off + n;
}

void
ring_read_at(const struct ring *r, uint32_t off, void *dst, uint32_t n)
{
	uint32_t pos, first;

	if (n == 0)
		return;
	pos = (r->head + off) & (r->cap - 1);
	first = r->cap - pos;
	if (first > n)
		first = n;
	memcpy(dst, r->buf + pos, first);
	memcpy((uint8_t *)dst + first, r->buf, n - first);
}

void
ring_consume(struct ring *r, uint32_t n)
{
	r->len -= n;
	if (r->end <= n) {
		/* Nothing left that was ever written: an idle connection
		 * keeps no buffer (issue 7, ≤ 1 KiB per connection). */
		free(r->buf);
		r->buf = NULL;
		r->cap = r->head = r->end = 0;
		return;
	}
	r->end -= n;
	r->head = (r->head + n) & (r->cap - 1);
}

void
ring_release_if_empty(struct ring *r)
{
	if (r->len == 0)
		ring_free(r);
}

void
ring_free(struct ring *r)
{
	free(r->buf);
	r->buf = NULL;
	r->cap = r->head = r->len = r->end = 0;
}
