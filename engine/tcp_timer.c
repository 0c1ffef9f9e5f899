/*
 * tcp_timer.c — timers as data. Each socket keeps one deadline per timer;
 * the stack keeps a binary min-heap of sockets keyed by their earliest
 * deadline, so utcp_poll() and utcp_next_deadline() cost O(log n) per due
 * socket and O(1) otherwise, however many sockets exist.
 */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>

/* ---- the heap ---- */

static bool
heap_less(struct utcp_sock *a, struct utcp_sock *b)
{
	return a->t_earliest < b->t_earliest;
}

static void
heap_place(struct utcp_stack *st, uint32_t i, struct utcp_sock *s)
{
	st->heap[i] = s;
	s->heap_idx = i;
}

static void
heap_up(struct utcp_stack *st, uint32_t i)
{
	struct utcp_sock *s = st->heap[i];

	while (i > 0) {
		uint32_t p = (i - 1) / 2;

		if (!heap_less(s, st->heap[p]))
			break;
		heap_place(st, i, st->heap[p]);
		i = p;
	}
	heap_place(st, i, s);
}

static void
heap_down(struct utcp_stack *st, uint32_t i)
{
	struct utcp_sock *s = st->heap[i];

	for (;;) {
		uint32_t c = 2 * i + 1;

		if (c >= st->heap_len)
			break;
		if (c + 1 < st->heap_len &&
		    heap_less(st->heap[c + 1], st->heap[c]))
			c++;
		if (!heap_less(st->heap[c], s))
			break;
		heap_place(st, i, st->heap[c]);
		i = c;
	}
	heap_place(st, i, s);
}

/* After a burst of timers (100,000 connections' handshakes) the array
 * halves as it empties, so idle connections do not pay for it. */
static void
heap_shrink(struct utcp_stack *st)
{
	uint32_t ncap = st->heap_cap / 2;
	struct utcp_sock **nh;

	if (st->heap_cap <= 64 || st->heap_len >= st->heap_cap / 4)
		return;
	if ((nh = realloc(st->heap, ncap * sizeof(*nh))) == NULL)
		return;
	st->heap = nh;
	st->heap_cap = ncap;
}

void
heap_remove(struct utcp_stack *st, struct utcp_sock *s)
{
	uint32_t i = s->heap_idx;
	struct utcp_sock *last;

	if (i == UINT32_MAX)
		return;
	s->heap_idx = UINT32_MAX;
	last = st->heap[--st->heap_len];
	if (last != s) {
		heap_place(st, i, last);
		heap_up(st, i);
		heap_down(st, last->heap_idx);
	}
	heap_shrink(st);
}

static void
heap_update(struct utcp_sock *s)
{
	struct utcp_stack *st = s->st;
	utcp_time_t e = UTCP_TIME_NEVER;

	for (int t = 0; t < TCPT_N; t++)
		if (s->t_deadline[t] < e)
			e = s->t_deadline[t];
	s->t_earliest = e;
	if (e == UTCP_TIME_NEVER || s->dead) {
		heap_remove(st, s);
		return;
	}
	if (s->heap_idx == UINT32_MAX) {
		if (st->heap_len == st->heap_cap) {
			uint32_t ncap = st->heap_cap ? st->heap_cap * 2 : 64;
			struct utcp_sock **nh =
			    realloc(st->heap, ncap * sizeof(*nh));

			/* Out of memory: this socket's timers wait until
			 * its next timer_set() finds room. */
			if (nh == NULL)
				return;
			st->heap = nh;
			st->heap_cap = ncap;
		}
		heap_place(st, st->heap_len++, s);
		heap_up(st, s->heap_idx);
		return;
	}
	heap_up(st, s->heap_idx);
	heap_down(st, s->heap_idx);
}

void
timer_set(struct utcp_sock *s, enum tcpt t, utcp_time_t when)
{
	if (s->t_deadline[t] == when)
		return;
	s->t_deadline[t] = when;
	heap_update(s);
}

void
timer_cancel(struct utcp_sock *s, enum tcpt t)
{
	timer_set(s, t, UTCP_TIME_NEVER);
}

void
timer_cancel_all(struct utcp_sock *s)
{
	for (int t = 0; t < TCPT_N; t++)
		s->t_deadline[t] = UTCP_TIME_NEVER;
	heap_update(s);
}

utcp_time_t
utcp_next_deadline(const struct utcp_stack *st)
{
	return st->heap_len ? st->heap[0]->t_earliest : UTCP_TIME_NEVER;
}

/* ---- RTO (RFC 6298) ---- */

static utcp_time_t
clamp_rto(const struct utcp_sock *s, utcp_time_t rto)
{
	const struct utcp_config *c = &s->st->cfg;

	if (rto < c->rto_min)
		rto = c->rto_min;
	if (rto > c->rto_max)
		rto = c->rto_max;
	return rto;
}

utcp_time_t
tcp_rto_backed_off(const struct utcp_sock *s)
{
	utcp_time_t rto = s->rto;
	unsigned b = s->backoff;

	/* 5.5: double per expiry, up to the maximum. */
	while (b-- > 0 && rto < s->st->cfg.rto_max)
		rto *= 2;
	return clamp_rto(s, rto);
}

void
tcp_rtt_sample(struct utcp_sock *s, utcp_time_t rtt)
{
	uint32_t r = rtt > UINT32_MAX / 8 ? UINT32_MAX / 8 : (uint32_t)rtt;
	utcp_time_t var;

	if (r == 0)
		r = 1;
	if (s->srtt == 0) {
		/* 2.2: the first measurement. */
		s->srtt = r;
		s->rttvar = r / 2;
	} else {
		/* 2.3: beta 1/4, alpha 1/8. */
		uint32_t delta = s->srtt > r ? s->srtt - r : r - s->srtt;

		s->rttvar = (3 * s->rttvar + delta) / 4;
		s->srtt = (7 * s->srtt + r) / 8;
	}
	/* RTO = SRTT + max(4 RTTVAR, RTO.min): Linux keeps the variance
	 * term at least rto_min, so the RTO sits above the RTT. */
	var = 4 * (utcp_time_t)s->rttvar;
	if (var < s->st->cfg.rto_min)
		var = s->st->cfg.rto_min;
	s->rto = (uint32_t)clamp_rto(s, s->srtt + var);
}

void
tcp_rearm_rexmt(struct utcp_sock *s, utcp_time_t now)
{
	utcp_time_t when;

	s->tlp_armed = false;
	if (s->snd_max == s->snd_una) {
		timer_cancel(s, TCPT_REXMT);
		return;
	}
	when = now + tcp_rto_backed_off(s);
	/* Linux clamps the RTO so TCP_USER_TIMEOUT fires on time. */
	if (s->user_timeout && s->state >= UTCP_ESTABLISHED) {
		utcp_time_t limit = s->rtx_start + UTCP_MS(s->user_timeout);

		if (limit > now && when > limit)
			when = limit;
	}
	/* RFC 8985 7.2: with an RTT known and no recovery under way, probe
	 * the tail after PTO = 2 SRTT (at least 10 ms; a lone segment also
	 * waits out the peer's delayed ACK), once per flight. A lost tail, or a lost last ACK, then costs a few
	 * RTTs instead of 200 ms or more. */
	if (s->srtt != 0 && s->backoff == 0 && !s->in_recovery &&
	    !s->tlp_sent && s->sack_ok &&
	    (s->state == UTCP_ESTABLISHED || s->state == UTCP_CLOSE_WAIT)) {
		utcp_time_t pto = 2 * (utcp_time_t)s->srtt;

		if (pto < UTCP_MS(10))
			pto = UTCP_MS(10);
		if (tcp_flight(s) <= s->mss)
			pto += UTCP_MS(200);
		/* Linux: no later than the RTO, and then still a probe
		 * (cwnd kept), the RTO proper coming one RTO after it. */
		if (now + pto < when)
			when = now + pto;
		s->tlp_armed = true;
	}
	timer_set(s, TCPT_REXMT, when);
}

/* ---- handlers ---- */

/* Linux's tcp_write_err(): a connection that times out reports the last
 * ICMP error it was sent (icmp.c), else ETIMEDOUT. */
static int
timeout_errno(const struct utcp_sock *s)
{
	return s->soft_err != 0 ? s->soft_err : ETIMEDOUT;
}

static bool
timed_out_user(const struct utcp_sock *s, utcp_time_t since, utcp_time_t now)
{
	return s->user_timeout != 0 && now - since >= UTCP_MS(s->user_timeout);
}

static void
rexmt_fire(struct utcp_sock *s, utcp_time_t now)
{
	struct utcp_stack *st = s->st;
	const struct utcp_config *c = &st->cfg;

	switch (s->state) {
	case UTCP_SYN_SENT:
	case UTCP_SYN_RECEIVED: {
		unsigned limit = s->state == UTCP_SYN_SENT ? c->syn_retries
							   : c->synack_retries;

		/* TCP_SYNCNT overrides the stack's SYN retries. */
		if (s->state == UTCP_SYN_SENT && s->syncnt > 0)
			limit = (unsigned)s->syncnt;
		if (s->retransmits >= limit ||
		    timed_out_user(s, s->rtx_start, now)) {
			stat_inc(st, UTCP_STAT_tcp_retrans_timeout);
			if (s->passive) {
				/* An embryo just goes away (Linux). */
				tcp_set_state(s, UTCP_CLOSED,
					      "SYN|ACK retries exhausted", now);
				sock_release(s);
			} else {
				tcp_drop(s, timeout_errno(s), "SYN retries exhausted",
					 now);
			}
			return;
		}
		stat_inc(st, UTCP_STAT_tcp_rto_expired);
		s->backoff++;
		s->retransmits++;
		s->rtt_timing = false;
		s->snd_nxt = s->iss;
		tcp_output(s, now);
		return;
	}
	case UTCP_CLOSED:
	case UTCP_LISTEN:
	case UTCP_TIME_WAIT:
		return;
	default:
		break;
	}
	if (s->snd_max == s->snd_una)
		return;
	if (s->tlp_armed) {
		/* The probe timeout, not a loss yet: cwnd stays. */
		s->tlp_armed = false;
		s->tlp_sent = true;
		tcp_send_loss_probe(s, now);
		tcp_rearm_rexmt(s, now);
		return;
	}
	if (timed_out_user(s, s->rtx_start, now)) {
		stat_inc(st, UTCP_STAT_tcp_user_timeout);
		tcp_drop(s, timeout_errno(s), "TCP_USER_TIMEOUT", now);
		return;
	}
	if (s->retransmits >= c->retries2 && !s->user_timeout) {
		stat_inc(st, UTCP_STAT_tcp_retrans_timeout);
		tcp_drop(s, timeout_errno(s), "retransmission limit", now);
		return;
	}
	stat_inc(st, UTCP_STAT_tcp_rto_expired);
	/* RFC 5681 3.1 (eq. 4) and 3.5: halve on the first timeout (not
	 * again in recovery, as Linux), restart from one segment. */
	if (s->retransmits == 0 && !s->in_recovery)
		s->ssthresh = s->cc->ssthresh(s, now);
	s->cwnd = s->mss;
	/* RFC 6675 5.1: keep the scoreboard to skip what the peer holds,
	 * but a second timeout may mean it reneged: forget it. */
	if (s->retransmits > 0)
		sack_clear(s);
	s->sack_recovery = false;
	s->in_recovery = false;
	s->recover = s->snd_max;
	s->dupacks = 0;
	s->cc_epoch = 0;
	s->backoff++;
	s->retransmits++;
	/* Karn: no RTT sample from a retransmitted segment. */
	s->rtt_timing = false;
	s->snd_nxt = s->snd_una;
	tcp_output(s, now);
	if (!timer_on(s, TCPT_REXMT))
		tcp_rearm_rexmt(s, now);
}

static void
persist_fire(struct utcp_sock *s, utcp_time_t now)
{
	utcp_time_t when;

	if (!UTCP_HAVEESTABLISHED(s->state) || s->state == UTCP_TIME_WAIT)
		return;
	if (s->snd_max != s->snd_una)
		return;
	if (s->snd.len == 0 && !s->fin_queued)
		return;
	if (s->snd_wnd != 0) {
		/* A window too small for silly-window avoidance: the
		 * override timeout sends into it anyway (RFC 9293
		 * 3.8.6.2.1). */
		tcp_output_force(s, now);
		return;
	}
	if (timed_out_user(s, s->persist_start, now)) {
		stat_inc(s->st, UTCP_STAT_tcp_user_timeout);
		tcp_drop(s, timeout_errno(s), "TCP_USER_TIMEOUT (zero window)", now);
		return;
	}
	if (!s->user_timeout && s->probes >= s->st->cfg.retries2) {
		stat_inc(s->st, UTCP_STAT_tcp_retrans_timeout);
		tcp_drop(s, timeout_errno(s), "zero-window probes unanswered", now);
		return;
	}
	/* Linux probes a zero window with SEG.SEQ = SND.UNA - 1, no data:
	 * the peer must answer with an ACK carrying its window. */
	tcp_send_probe(s, now);
	stat_inc(s->st, UTCP_STAT_tcp_zero_window_probe);
	s->probes++;
	{
		struct utcp_event ev = {
		    .type = UTCP_EV_ZERO_WINDOW,
		    .sock = s,
		    .old_state = s->state,
		    .new_state = s->state,
		    .arg = s->probes,
		    .seq = s->snd_una - 1,
		    .cause = "zero-window probe",
		    .now = now,
		};

		ev_emit_full(s->st, &ev);
	}
	if (s->persist_backoff < 16)
		s->persist_backoff++;
	when = (utcp_time_t)s->rto << s->persist_backoff;
	timer_set(s, TCPT_PERSIST, now + clamp_rto(s, when));
}

void
tcp_keep_reset(struct utcp_sock *s, utcp_time_t now)
{
	if (!s->keepalive || !UTCP_HAVEESTABLISHED(s->state) ||
	    s->state == UTCP_TIME_WAIT) {
		timer_cancel(s, TCPT_KEEP);
		return;
	}
	timer_set(s, TCPT_KEEP, now + UTCP_SEC(s->keepidle));
}

static void
keep_fire(struct utcp_sock *s, utcp_time_t now)
{
	utcp_time_t elapsed, idle = UTCP_SEC(s->keepidle);

	if (!s->keepalive || !UTCP_HAVEESTABLISHED(s->state) ||
	    s->state == UTCP_TIME_WAIT)
		return;
	/* Only an idle connection is probed: data in flight or waiting
	 * has the retransmission or persist timer watching it. */
	if (s->snd_max != s->snd_una || s->snd.len > 0) {
		timer_set(s, TCPT_KEEP, now + idle);
		return;
	}
	elapsed = now - s->last_rcv;
	if (elapsed < idle) {
		timer_set(s, TCPT_KEEP, now + idle - elapsed);
		return;
	}
	if ((s->user_timeout && elapsed >= UTCP_MS(s->user_timeout) &&
	     s->probes > 0) ||
	    (!s->user_timeout && s->probes >= s->keepcnt)) {
		stat_inc(s->st, UTCP_STAT_tcp_keepalive_timeout);
		tcp_send_rst(s, "keepalive timeout", now);
		tcp_drop(s, timeout_errno(s), "keepalive timeout", now);
		return;
	}
	tcp_send_probe(s, now);
	s->probes++;
	stat_inc(s->st, UTCP_STAT_tcp_keepalive_probe);
	{
		struct utcp_event ev = {
		    .type = UTCP_EV_KEEPALIVE,
		    .sock = s,
		    .old_state = s->state,
		    .new_state = s->state,
		    .arg = s->probes,
		    .seq = s->snd_una - 1,
		    .cause = "keepalive probe",
		    .now = now,
		};

		ev_emit_full(s->st, &ev);
	}
	timer_set(s, TCPT_KEEP, now + UTCP_SEC(s->keepintvl));
}

static void
twomsl_fire(struct utcp_sock *s, utcp_time_t now)
{
	if (s->state == UTCP_TIME_WAIT || s->state == UTCP_FIN_WAIT_2)
		tcp_closed(s, now);
}

static void
fire(struct utcp_sock *s, enum tcpt t, utcp_time_t now)
{
	switch (t) {
	case TCPT_REXMT:
		rexmt_fire(s, now);
		break;
	case TCPT_PERSIST:
		persist_fire(s, now);
		break;
	case TCPT_KEEP:
		keep_fire(s, now);
		break;
	case TCPT_DELACK:
		if (s->state != UTCP_CLOSED && s->state != UTCP_LISTEN)
			tcp_send_ack(s, now);
		break;
	case TCPT_2MSL:
		twomsl_fire(s, now);
		break;
	case TCPT_N:
		break;
	}
}

utcp_time_t
utcp_poll(struct utcp_stack *st, utcp_time_t now)
{
	stack_time(st, now);
	while (st->heap_len > 0 && st->heap[0]->t_earliest <= now) {
		struct utcp_sock *s = st->heap[0];

		for (int t = 0; t < TCPT_N && !s->dead; t++) {
			if (s->t_deadline[t] > now)
				continue;
			s->t_deadline[t] = UTCP_TIME_NEVER;
			heap_update(s);
			fire(s, (enum tcpt)t, now);
		}
		if (!s->dead)
			heap_update(s);
		stack_reap(st);
	}
	stack_reap(st);
	return utcp_next_deadline(st);
}
