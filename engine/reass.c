/* reass.c — out-of-order range list (see reass.h). */
#include "reass.h"

#include "tcp_seq.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int
reass_add(struct reass *q, uint32_t left, uint32_t right, uint32_t max_blocks)
{
	uint32_t i, j;

	if (SEQ_GEQ(left, right))
		return 0;
	/* First range that ends at or after left (touching merges). */
	for (i = 0; i < q->n && SEQ_LT(q->b[i].right, left); i++)
		;
	/* Ranges i..j-1 overlap or touch [left, right): merge them. */
	for (j = i; j < q->n && SEQ_LEQ(q->b[j].left, right); j++) {
		left = SEQ_MIN(left, q->b[j].left);
		right = SEQ_MAX(right, q->b[j].right);
	}
	if (j == i) {
		/* A new range at i. */
		if (q->n >= max_blocks)
			return -ENOBUFS;
		if (q->n == q->cap) {
			uint32_t ncap = q->cap ? q->cap * 2u : 8u;
			struct reass_blk *nb;

			if (ncap > UINT16_MAX)
				return -ENOBUFS;
			nb = realloc(q->b, ncap * sizeof(*nb));
			if (nb == NULL)
				return -ENOMEM;
			q->b = nb;
			q->cap = (uint16_t)ncap;
		}
		memmove(&q->b[i + 1], &q->b[i], (q->n - i) * sizeof(q->b[0]));
		q->n++;
	} else if (j > i + 1) {
		memmove(&q->b[i + 1], &q->b[j], (q->n - j) * sizeof(q->b[0]));
		q->n -= j - i - 1;
	}
	q->b[i].left = left;
	q->b[i].right = right;
	q->b[i].stamp = ++q->stamp;
	return 0;
}

/* An empty list gives its array back: idle connections keep none. */
static void
reass_shrink(struct reass *q)
{
	if (q->n == 0 && q->b != NULL) {
		free(q->b);
		q->b = NULL;
		q->cap = 0;
	}
}

bool
reass_pop(struct reass *q, uint32_t rcv_nxt, uint32_t *right)
{
	while (q->n > 0 && SEQ_LEQ(q->b[0].left, rcv_nxt)) {
		uint32_t r = q->b[0].right;

		memmove(&q->b[0], &q->b[1], (q->n - 1) * sizeof(q->b[0]));
		q->n--;
		if (SEQ_GT(r, rcv_nxt)) {
			*right = r;
			reass_shrink(q);
			return true;
		}
	}
	reass_shrink(q);
	return false;
}

int
reass_sack(const struct reass *q, struct wire_sack *out, int max)
{
	uint32_t taken[WIRE_MAX_SACK];
	int n = 0;

	if (max > WIRE_MAX_SACK)
		max = WIRE_MAX_SACK;
	/* Selection by stamp: few blocks are reported, so a scan per
	 * block is cheap. */
	while (n < max && (uint32_t)n < q->n) {
		uint32_t best = UINT32_MAX;

		for (uint32_t i = 0; i < q->n; i++) {
			bool used = false;

			for (int k = 0; k < n; k++)
				used |= taken[k] == i;
			if (!used && (best == UINT32_MAX ||
				      q->b[i].stamp > q->b[best].stamp))
				best = i;
		}
		taken[n] = best;
		out[n].left = q->b[best].left;
		out[n].right = q->b[best].right;
		n++;
	}
	return n;
}

void
reass_trim_below(struct reass *q, uint32_t seq)
{
	uint32_t i = 0;

	while (i < q->n && SEQ_LEQ(q->b[i].right, seq))
		i++;
	if (i > 0) {
		memmove(&q->b[0], &q->b[i], (q->n - i) * sizeof(q->b[0]));
		q->n -= i;
		reass_shrink(q);
	}
	if (q->n > 0 && SEQ_LT(q->b[0].left, seq))
		q->b[0].left = seq;
}

uint32_t
reass_end(const struct reass *q, uint32_t rcv_nxt)
{
	return q->n ? q->b[q->n - 1].right : rcv_nxt;
}

void
reass_free(struct reass *q)
{
	free(q->b);
	memset(q, 0, sizeof(*q));
}
