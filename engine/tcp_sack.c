/*
 * tcp_sack.c — the sender's SACK scoreboard (RFC 2018, RFC 6675): which
 * ranges above SND.UNA the peer holds, the holes between them, and the
 * "pipe" estimate of what is still in the network.
 *
 * Simplification of RFC 6675 IsLost(): every hole below the highest
 * SACKed byte counts as lost once recovery has started.
 */
#include "internal.h"

void
sack_update(struct utcp_sock *s, const struct wire_tcp *seg)
{
	const struct wire_tcp_opts *o = &seg->opt;

	if (!s->sack_ok || !(o->present & WOPT_SACK))
		return;
	for (int i = 0; i < o->nsack; i++) {
		uint32_t l = o->sack[i].left, r = o->sack[i].right;

		/* RFC 2018: only blocks inside what we sent count; a
		 * D-SACK (below SND.UNA) says nothing new here. */
		if (!SEQ_LT(l, r) || SEQ_LEQ(r, s->snd_una) ||
		    SEQ_GT(r, s->snd_max))
			continue;
		if (SEQ_LT(l, s->snd_una))
			l = s->snd_una;
		(void)reass_add(&s->sacked, l, r, TCP_MAX_OOO_BLOCKS);
	}
}

void
sack_prune(struct utcp_sock *s)
{
	reass_trim_below(&s->sacked, s->snd_una);
}

void
sack_clear(struct utcp_sock *s)
{
	reass_free(&s->sacked);
	s->sack_recovery = false;
}

uint32_t
sack_bytes(const struct utcp_sock *s)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < s->sacked.n; i++)
		n += s->sacked.b[i].right - s->sacked.b[i].left;
	return n;
}

uint32_t
sack_hi(const struct utcp_sock *s)
{
	return reass_end(&s->sacked, s->snd_una);
}

/* Unsacked bytes in [SND.UNA, x). */
static uint32_t
holes_below(const struct utcp_sock *s, uint32_t x)
{
	uint32_t n = x - s->snd_una;

	for (uint32_t i = 0; i < s->sacked.n; i++) {
		uint32_t l = s->sacked.b[i].left, r = s->sacked.b[i].right;

		if (SEQ_GEQ(l, x))
			break;
		n -= (SEQ_LT(r, x) ? r : x) - l;
	}
	return n;
}

uint32_t
sack_pipe(const struct utcp_sock *s)
{
	uint32_t hi = sack_hi(s);
	uint32_t rx = SEQ_LT(s->rtx_hi, hi) ? s->rtx_hi : hi;

	/* In flight: everything above the highest SACK, plus the holes
	 * we have already retransmitted. */
	if (SEQ_LT(rx, s->snd_una))
		rx = s->snd_una;
	return (s->snd_max - hi) + holes_below(s, rx);
}

bool
sack_next_hole(const struct utcp_sock *s, uint32_t from, uint32_t *seq,
	       uint32_t *len)
{
	uint32_t pos = SEQ_LT(from, s->snd_una) ? s->snd_una : from;

	for (uint32_t i = 0; i < s->sacked.n; i++) {
		uint32_t l = s->sacked.b[i].left, r = s->sacked.b[i].right;

		if (SEQ_LT(pos, l)) {
			*seq = pos;
			*len = l - pos;
			return true;
		}
		if (SEQ_LT(pos, r))
			pos = r;
	}
	return false;
}

bool
sack_covered(const struct utcp_sock *s, uint32_t seq, uint32_t *end)
{
	for (uint32_t i = 0; i < s->sacked.n; i++) {
		if (SEQ_LT(seq, s->sacked.b[i].left))
			return false;
		if (SEQ_LT(seq, s->sacked.b[i].right)) {
			*end = s->sacked.b[i].right;
			return true;
		}
	}
	return false;
}

uint32_t
sack_next_start(const struct utcp_sock *s, uint32_t seq)
{
	for (uint32_t i = 0; i < s->sacked.n; i++)
		if (SEQ_GT(s->sacked.b[i].left, seq))
			return s->sacked.b[i].left;
	return s->snd_max;
}
