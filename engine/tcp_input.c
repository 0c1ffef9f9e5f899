/*
 * tcp_input.c — SEGMENT ARRIVES (RFC 9293 3.10.7), in the RFC's order:
 * LISTEN, SYN-SENT, then the synchronized states (sequence check, RST,
 * SYN, ACK, text, FIN), with RFC 5961, RFC 7323 (PAWS) and RFC 5681/6582
 * (dup ACKs, NewReno) folded in.
 */
#include "internal.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

static void
rst_rcvd_event(struct utcp_sock *s, const struct wire_tcp *seg, utcp_time_t now)
{
	struct utcp_event ev = {
	    .type = UTCP_EV_RST_RCVD,
	    .sock = s,
	    .old_state = s->state,
	    .new_state = s->state,
	    .seq = seg->seq,
	    .cause = "rcvd RST",
	    .now = now,
	};

	stat_inc(s->st, UTCP_STAT_tcp_rst_rcvd);
	ev_emit_full(s->st, &ev);
}

/* Linux (tcp_oow_rate_limited): segments without data that are invalid
 * get at most one ACK per 500 ms, so two stacks cannot ACK each other in
 * a loop; data (and FIN) is always answered. */
static bool
oow_limited(struct utcp_sock *s, const struct wire_tcp *seg, utcp_time_t now)
{
	if ((seg->len > 0 || (seg->flags & TH_FIN)) && !(seg->flags & TH_SYN))
		return false;
	if (s->oow_acked && now - s->last_oow_ack < TCP_OOW_RATELIMIT)
		return true;
	s->oow_acked = true;
	s->last_oow_ack = now;
	return false;
}

/* Drop an invalid segment, answering with an ACK unless rate-limited. */
static void
drop_with_ack(struct utcp_sock *s, const struct wire_tcp *seg, int stat,
	      utcp_time_t now)
{
	drop_pkt(s->st, s, stat, now);
	if (oow_limited(s, seg, now))
		stat_inc(s->st, UTCP_STAT_tcp_ack_ratelimited);
	else
		tcp_send_ack(s, now);
}

static void
challenge_ack(struct utcp_sock *s, const struct wire_tcp *seg, utcp_time_t now)
{
	/* RFC 5961: answer with an ACK at the exact RCV.NXT; a genuine
	 * peer will reply with an acceptable RST. */
	if (oow_limited(s, seg, now)) {
		drop_pkt(s->st, s, UTCP_STAT_tcp_ack_ratelimited, now);
		return;
	}
	drop_pkt(s->st, s, UTCP_STAT_tcp_challenge_ack, now);
	tcp_send_ack(s, now);
}

/* Options from a SYN or SYN|ACK decide what the connection uses. */
static void
take_syn_options(struct utcp_sock *s, const struct wire_tcp *seg,
		 utcp_time_t now)
{
	const struct wire_tcp_opts *o = &seg->opt;

	s->peer_mss = (o->present & WOPT_MSS) ? o->mss : 0;
	/* RFC 7323 2.2: scaling only when both sides sent the option. */
	s->ws_ok = s->want_ws && (o->present & WOPT_WSCALE);
	s->snd_wscale = s->ws_ok ? o->wscale : 0;
	if (!s->ws_ok)
		s->rcv_wscale = 0;
	s->sack_ok = s->want_sack && (o->present & WOPT_SACK_PERM);
	s->ts_ok = s->want_ts && (o->present & WOPT_TS);
	if (s->ts_ok) {
		s->ts_recent = o->tsval;
		s->ts_recent_age = now;
	}
	tcp_set_mss(s);
}

/* ---- LISTEN ---- */

static void
listen_input(struct utcp_sock *l, const struct wire_ip *ip,
	     const struct wire_tcp *seg, const struct utcp_tuple *t,
	     utcp_time_t now)
{
	struct utcp_stack *st = l->st;
	struct utcp_sock *c;
	unsigned synmax = l->backlog > 0 ? (unsigned)l->backlog : 1;

	/* RFC 9293 3.10.7.2: ignore RST; an ACK gets <SEQ=SEG.ACK><RST>. */
	if (seg->flags & TH_RST) {
		drop_pkt(st, l, UTCP_STAT_drop_listen_no_syn, now);
		return;
	}
	if (seg->flags & TH_ACK) {
		drop_pkt(st, l, UTCP_STAT_drop_bad_ack, now);
		tcp_respond_rst(st, ip, seg, "ACK to a listener", l, now);
		return;
	}
	if (!(seg->flags & TH_SYN)) {
		drop_pkt(st, l, UTCP_STAT_drop_listen_no_syn, now);
		return;
	}
	/* Linux: the accept queue holds backlog + 1; the SYN queue is
	 * bounded by the backlog too. Excess SYNs are dropped, so the
	 * peer retries later. */
	if (l->accq_len + l->acc_held > (unsigned)l->backlog ||
	    l->synq_len >= synmax) {
		drop_pkt(st, l, UTCP_STAT_drop_listen_overflow, now);
		return;
	}
	c = sock_alloc(st, l->family);
	if (c == NULL) {
		drop_pkt(st, l, UTCP_STAT_drop_nomem, now);
		return;
	}
	c->app_owned = false;
	c->passive = true;
	c->tuple = *t;
	if (port_ref(st, t->lport, false) != 0) {
		sock_release(c);
		drop_pkt(st, l, UTCP_STAT_drop_nomem, now);
		return;
	}
	c->bound = true;
	/* Options a listener passes to what it accepts (Linux). */
	c->sndbuf = l->sndbuf;
	c->rcvbuf = l->rcvbuf;
	c->nodelay = l->nodelay;
	c->cork = l->cork;
	c->keepalive = l->keepalive;
	c->keepidle = l->keepidle;
	c->keepintvl = l->keepintvl;
	c->keepcnt = l->keepcnt;
	c->user_timeout = l->user_timeout;
	c->linger_on = l->linger_on;
	c->linger = l->linger;
	c->user_mss = l->user_mss;
	c->tos = l->tos;
	c->cc = l->cc;
	c->want_ws = l->want_ws;
	c->want_ts = l->want_ts;
	c->want_sack = l->want_sack;
	c->v6only = l->v6only;
	if (conn_hash(c) != 0) {
		sock_release(c); /* drops the port reference too */
		drop_pkt(st, l, UTCP_STAT_drop_nomem, now);
		return;
	}
	c->parent = l;
	TAILQ_INSERT_TAIL(&l->synq, c, qe);
	l->synq_len++;
	c->on_synq = true;

	c->irs = seg->seq;
	c->rcv_nxt = seg->seq + 1;
	c->rcv_adv = c->rcv_nxt;
	c->rcv_wscale = tcp_pick_wscale(c->rcvbuf);
	take_syn_options(c, seg, now);
	c->iss = isn_make(st, t, now);
	c->snd_una = c->snd_nxt = c->snd_max = c->iss;
	c->recover = c->iss;
	c->ts_offset = ts_offset_make(st, t);
	c->ip_id = (uint16_t)c->ts_offset;
	/* RFC 7323 2.2: the window in a SYN is never scaled. */
	c->snd_wnd = seg->wnd;
	c->max_sndwnd = c->snd_wnd;
	c->snd_wl1 = seg->seq;
	c->snd_wl2 = c->iss;
	c->rcv_mss = c->mss < UTCP_MSS_DEFAULT ? c->mss : UTCP_MSS_DEFAULT;
	c->last_rcv = now;
	c->segs_in = 1;
	c->state = UTCP_LISTEN;
	stat_inc(st, UTCP_STAT_tcp_passive_open);
	tcp_set_state(c, UTCP_SYN_RECEIVED, "rcvd SYN", now);
	/* Data in a SYN is not queued (no TFO): the peer resends it. */
	tcp_output(c, now);
}

/* ---- SYN-SENT (RFC 9293 3.10.7.3) ---- */

static void
syn_sent_input(struct utcp_sock *s, const struct wire_ip *ip,
	       const struct wire_tcp *seg, utcp_time_t now)
{
	struct utcp_stack *st = s->st;
	bool ack = (seg->flags & TH_ACK) != 0;

	/* First: an ACK must acknowledge our SYN exactly. */
	if (ack &&
	    (SEQ_LEQ(seg->ack, s->iss) || SEQ_GT(seg->ack, s->snd_max))) {
		drop_pkt(st, s, UTCP_STAT_drop_bad_ack, now);
		tcp_respond_rst(st, ip, seg, "bad ACK in SYN-SENT", s, now);
		return;
	}
	/* Second: a RST counts only with an acceptable ACK. */
	if (seg->flags & TH_RST) {
		if (!ack) {
			drop_pkt(st, s, UTCP_STAT_drop_rst_out_of_window, now);
			return;
		}
		rst_rcvd_event(s, seg, now);
		tcp_drop(s, ECONNREFUSED, "rcvd RST in SYN-SENT", now);
		return;
	}
	if (!(seg->flags & TH_SYN)) {
		drop_pkt(st, s, UTCP_STAT_drop_tcp_bad_flags, now);
		return;
	}
	/* Fourth: the SYN. */
	s->irs = seg->seq;
	s->rcv_nxt = seg->seq + 1;
	s->rcv_adv = s->rcv_nxt;
	s->last_ack_sent = s->rcv_nxt;
	take_syn_options(s, seg, now);
	s->rcv_mss = s->mss < UTCP_MSS_DEFAULT ? s->mss : UTCP_MSS_DEFAULT;
	s->last_rcv = now;
	s->snd_wnd = seg->wnd;
	s->max_sndwnd = s->snd_wnd;
	s->snd_wl1 = seg->seq;
	s->snd_wl2 = seg->ack;
	if (ack) {
		/* Our SYN is acknowledged: ESTABLISHED. Karn: only an
		 * unretransmitted SYN gives an RTT sample. */
		if (s->backoff == 0)
			tcp_rtt_sample(s, now - s->rtx_start);
		s->backoff = 0;
		s->retransmits = 0;
		s->snd_una = seg->ack;
		s->syn_acked = true;
		if (SEQ_LT(s->snd_nxt, s->snd_una))
			s->snd_nxt = s->snd_una;
		timer_cancel(s, TCPT_REXMT);
		s->last_ack_recv = now;
		tcp_established(s, "rcvd SYN|ACK", now);
		s->ack_now = true;
		tcp_output(s, now);
		return;
	}
	/* Simultaneous open: SYN-RECEIVED, answer with our SYN|ACK. */
	tcp_set_state(s, UTCP_SYN_RECEIVED, "rcvd SYN (simultaneous open)",
		      now);
	s->snd_nxt = s->iss;
	tcp_output(s, now);
}

/* ---- synchronized states ---- */

static bool
seq_acceptable(struct utcp_sock *s, const struct wire_tcp *seg)
{
	uint32_t wnd =
	    SEQ_GT(s->rcv_adv, s->rcv_nxt) ? s->rcv_adv - s->rcv_nxt : 0;
	uint32_t slen =
	    seg->len + !!(seg->flags & TH_SYN) + !!(seg->flags & TH_FIN);

	/* RFC 9293 3.10.7.4, the four cases. */
	if (slen == 0)
		return wnd == 0
			   ? seg->seq == s->rcv_nxt
			   : SEQ_IN(seg->seq, s->rcv_nxt, s->rcv_nxt + wnd);
	if (wnd == 0) {
		/* Linux takes a bare FIN at RCV.NXT into a zero window. */
		return seg->len == 0 && (seg->flags & TH_FIN) &&
		       seg->seq == s->rcv_nxt;
	}
	return SEQ_IN(seg->seq, s->rcv_nxt, s->rcv_nxt + wnd) ||
	       SEQ_IN(seg->seq + slen - 1, s->rcv_nxt, s->rcv_nxt + wnd);
}

static void
writable_check(struct utcp_sock *s, utcp_time_t now)
{
	uint32_t space = s->sndbuf > s->snd.len ? s->sndbuf - s->snd.len : 0;

	/* Linux's sk_stream_wspace >= sk_stream_min_wspace: free space
	 * at least half of what is queued, so writers wake in batches. */
	if (s->wants_writable && space > 0 && space >= s->snd.len / 2 &&
	    s->app_owned && !s->shut_wr) {
		s->wants_writable = false;
		ev_emit(s, UTCP_EV_WRITABLE, "send space", now);
	}
}

/* New data acknowledged: SND.UNA moves (RFC 9293, RFC 6298, RFC 6582). */
static void
ack_advance(struct utcp_sock *s, const struct wire_tcp *seg, utcp_time_t now)
{
	uint32_t acked = seg->ack - s->snd_una;
	uint32_t data = acked < s->snd.len ? acked : s->snd.len;
	bool sampled = false;

	ring_consume(&s->snd, data);
	s->bytes_acked += data;
	if (s->fin_queued && acked > data)
		s->fin_acked = true;
	s->snd_una = seg->ack;
	if (SEQ_LT(s->snd_nxt, s->snd_una))
		s->snd_nxt = s->snd_una;
	if (s->rtt_timing && SEQ_GEQ(seg->ack, s->rtt_seq)) {
		s->rtt_timing = false;
		tcp_rtt_sample(s, now - s->rtt_start);
		sampled = true;
	} else if (s->ts_ok && (seg->opt.present & WOPT_TS) &&
		   seg->opt.tsecr != 0) {
		/* RFC 7323 4.1: the echoed timestamp times even a
		 * retransmitted segment. */
		uint32_t ms = tcp_now_ts(s, now) - seg->opt.tsecr;

		if (ms < 60000) {
			tcp_rtt_sample(s, UTCP_MS(ms ? ms : 1));
			sampled = true;
		}
	}
	/* RFC 6298 5.7 / Karn: the backed-off RTO stays until a valid
	 * RTT sample (Linux: "only reset backoff on valid RTT"). */
	if (sampled)
		s->backoff = 0;
	s->retransmits = 0;
	s->tlp_sent = false; /* the flight moved: a new probe may go */
	sack_prune(s);
	if (s->in_recovery) {
		if (SEQ_GEQ(seg->ack, s->recover)) {
			/* Full ACK: leave fast recovery. NewReno (RFC 6582
			 * 3.2.3, option 1) deflates to what is in flight plus
			 * one segment, against a burst; with SACK the pipe
			 * already kept the flight near cwnd = ssthresh
			 * (RFC 6675), which stays, as Linux's does: a flight
			 * that the recovery drained must not collapse the
			 * window to one segment. */
			uint32_t fl = tcp_flight(s) + s->mss;

			if (!s->sack_recovery && fl < s->ssthresh)
				s->cwnd = fl;
			else
				s->cwnd = s->ssthresh;
			s->in_recovery = false;
			s->sack_recovery = false;
			s->dupacks = 0;
		} else if (s->sack_recovery) {
			/* RFC 6675: the holes are refilled by output(),
			 * paced by the pipe estimate; no deflation. */
			if (SEQ_LT(s->rtx_hi, s->snd_una))
				s->rtx_hi = s->snd_una;
		} else {
			/* Partial ACK: resend the next hole, deflate. */
			tcp_retransmit_una(s, now);
			s->cwnd = s->cwnd > data ? s->cwnd - data : 0;
			if (data >= s->mss)
				s->cwnd += s->mss;
			if (s->cwnd < s->mss)
				s->cwnd = s->mss;
		}
	} else {
		s->dupacks = 0;
		s->cc->on_ack(s, data, now);
	}
	/* RFC 6298 5.2/5.3: stop or restart the timer. */
	s->rtx_start = now;
	tcp_rearm_rexmt(s, now);
	writable_check(s, now);
}

/* Fast retransmit, then fast recovery: with SACK information the holes
 * are refilled as the pipe allows (RFC 6675), without it NewReno
 * (RFC 6582) inflates cwnd by one segment per duplicate ACK. */
static void
enter_recovery(struct utcp_sock *s, utcp_time_t now)
{
	stat_inc(s->st, UTCP_STAT_tcp_fast_retransmit);
	s->ssthresh = s->cc->ssthresh(s, now);
	s->recover = s->snd_max;
	s->in_recovery = true;
	s->rtx_hi = s->snd_una;
	s->sack_recovery = s->sack_ok && s->sacked.n > 0;
	tcp_retransmit_una(s, now);
	if (s->sack_recovery)
		s->cwnd = s->ssthresh;
	else
		s->cwnd = s->ssthresh + 3 * s->mss;
	tcp_rearm_rexmt(s, now);
}

static void
dup_ack(struct utcp_sock *s, utcp_time_t now)
{
	s->dupacks++;
	if (s->in_recovery) {
		/* RFC 5681 3.2.4: each dup ACK is a segment that left. */
		if (!s->sack_recovery)
			s->cwnd += s->mss;
		return;
	}
	/* RFC 6582 3.2.2: a new recovery only past the old one. */
	if (s->dupacks == 3 && SEQ_GEQ(s->snd_una, s->recover))
		enter_recovery(s, now);
}

/* The ACK field (RFC 9293 3.10.7.4, fifth). Returns false when the
 * segment is done with (dropped, or the socket closed). */
static bool
ack_input(struct utcp_sock *s, const struct wire_ip *ip,
	  const struct wire_tcp *seg, utcp_time_t now)
{
	struct utcp_stack *st = s->st;
	uint32_t nwnd = (uint32_t)seg->wnd << s->snd_wscale;
	bool wnd_changed = false;

	/* Our SYN|ACK awaits its ACK: SYN-RECEIVED, or FIN-WAIT-1 after a
	 * close() during the handshake. */
	if (!s->syn_acked) {
		struct utcp_sock *l = s->parent;

		/* SND.UNA < SEG.ACK =< SND.NXT, else <SEQ=SEG.ACK><RST>. */
		if (!SEQ_GT(seg->ack, s->snd_una) ||
		    SEQ_GT(seg->ack, s->snd_max)) {
			drop_pkt(st, s, UTCP_STAT_drop_bad_ack, now);
			tcp_respond_rst(st, ip, seg, "bad ACK in SYN-RECEIVED",
					s, now);
			return false;
		}
		/* Linux: a full accept queue drops the final ACK; the
		 * SYN|ACK timer keeps the embryo alive meanwhile. */
		if (l != NULL && s->on_synq &&
		    l->accq_len + l->acc_held > (unsigned)l->backlog) {
			drop_pkt(st, s, UTCP_STAT_drop_listen_overflow, now);
			return false;
		}
		if (s->backoff == 0)
			tcp_rtt_sample(s, now - s->rtx_start);
		s->backoff = 0;
		s->retransmits = 0;
		s->snd_una = s->iss + 1;
		s->syn_acked = true;
		if (SEQ_LT(s->snd_nxt, s->snd_una))
			s->snd_nxt = s->snd_una;
		s->snd_wnd = nwnd;
		s->max_sndwnd = nwnd;
		s->snd_wl1 = seg->seq;
		s->snd_wl2 = seg->ack;
		timer_cancel(s, TCPT_REXMT);
		tcp_rearm_rexmt(s, now); /* a FIN may be out already */
		tcp_established(s, "rcvd ACK", now);
	}
	/* RFC 5961 5.2: an ACK older than the window's worth is suspect. */
	if (SEQ_LT(seg->ack, s->snd_una - s->max_sndwnd)) {
		challenge_ack(s, seg, now);
		return false;
	}
	/* An ACK for something not yet sent: ACK and drop (RFC 9293). */
	if (SEQ_GT(seg->ack, s->snd_max)) {
		drop_with_ack(s, seg, UTCP_STAT_drop_bad_ack, now);
		return false;
	}
	s->last_ack_recv = now;
	s->probes = 0;
	/* Window update, if the segment is newer (SND.WL1/WL2 rule). */
	if (SEQ_LT(s->snd_wl1, seg->seq) ||
	    (s->snd_wl1 == seg->seq && SEQ_LEQ(s->snd_wl2, seg->ack))) {
		wnd_changed = nwnd != s->snd_wnd;
		s->snd_wnd = nwnd;
		s->snd_wl1 = seg->seq;
		s->snd_wl2 = seg->ack;
		if (nwnd > s->max_sndwnd)
			s->max_sndwnd = nwnd;
		if (nwnd > 0 && timer_on(s, TCPT_PERSIST)) {
			timer_cancel(s, TCPT_PERSIST);
			s->persist_backoff = 0;
		}
	}
	sack_update(s, seg);
	if (SEQ_GT(seg->ack, s->snd_una)) {
		ack_advance(s, seg, now);
	} else if (seg->ack == s->snd_una && seg->len == 0 &&
		   !(seg->flags & (TH_SYN | TH_FIN)) && !wnd_changed &&
		   s->snd_max != s->snd_una) {
		/* RFC 5681 2: a duplicate ACK. */
		dup_ack(s, now);
	}
	/* RFC 6675 IsLost(): more than (DupThresh - 1) * SMSS SACKed above
	 * the first hole starts recovery even without three dup ACKs. */
	if (!s->in_recovery && s->sacked.n > 0 && s->snd_max != s->snd_una &&
	    sack_bytes(s) > 2 * s->mss && SEQ_GEQ(s->snd_una, s->recover))
		enter_recovery(s, now);
	if (!s->fin_acked)
		return true;
	/* Our FIN is acknowledged. */
	switch (s->state) {
	case UTCP_FIN_WAIT_1:
		tcp_set_state(s, UTCP_FIN_WAIT_2, "rcvd ACK of FIN", now);
		timer_cancel(s, TCPT_REXMT);
		/* An orphan does not wait forever for the peer's FIN. */
		if (!s->app_owned)
			timer_set(s, TCPT_2MSL, now + st->cfg.fin_timeout);
		break;
	case UTCP_CLOSING:
		tcp_enter_time_wait(s, "rcvd ACK of FIN", now);
		break;
	case UTCP_LAST_ACK:
		tcp_closed(s, now);
		return false;
	default:
		break;
	}
	return true;
}

/* Text (RFC 9293 3.10.7.4, seventh): place the payload in the ring, in
 * order or parked past a gap. */
static void
data_input(struct utcp_sock *s, const struct wire_tcp *seg, bool *fin,
	   utcp_time_t now)
{
	struct utcp_stack *st = s->st;
	uint32_t seq = seg->seq, len = seg->len, off, limit, direct = 0;
	const uint8_t *data = seg->data;
	bool gap_before = s->ooo.n > 0 || s->ooo_fin; /* a FIN waits too */

	/* Trim what we already have. */
	if (SEQ_LT(seq, s->rcv_nxt)) {
		uint32_t d = s->rcv_nxt - seq;

		if (d >= len) {
			if (d > len)
				*fin = false; /* an old FIN */
			len = 0;
		} else {
			data += d;
			len -= d;
		}
		seq = s->rcv_nxt;
		s->ack_now = true; /* a duplicate: tell the peer */
	}
	/* Trim what lies past the offered window (and the FIN with it). */
	if (len > 0) {
		uint32_t edge =
		    SEQ_GT(s->rcv_adv, s->rcv_nxt) ? s->rcv_adv : s->rcv_nxt;

		if (SEQ_GT(seq + len, edge)) {
			len = SEQ_GT(edge, seq) ? edge - seq : 0;
			*fin = false;
			s->ack_now = true;
		}
	}
	if (len == 0) {
		if (*fin && seq != s->rcv_nxt) {
			/* A bare FIN past a gap: it counts once the gap
			 * fills. */
			s->ooo_fin = true;
			s->ooo_fin_seq = seq;
			*fin = false;
			s->ack_now = true;
		}
		if (seg->len > 0)
			s->ack_now = true;
		return;
	}
	off = s->rcv.len + (seq - s->rcv_nxt);
	limit = s->rcvbuf + TCP_RCV_SLACK;
	if (off >= limit) {
		drop_pkt(st, s, UTCP_STAT_drop_rcvbuf_full, now);
		s->ack_now = true;
		*fin = false;
		return;
	}
	if (off + len > limit) {
		len = limit - off;
		*fin = false;
	}
	if (seg->len > s->rcv_mss)
		s->rcv_mss = seg->len;
	if (seq != s->rcv_nxt) {
		/* Out of order: keep it, SACK it, ACK at once. */
		int err =
		    reass_add(&s->ooo, seq, seq + len, TCP_MAX_OOO_BLOCKS);

		if (err == 0)
			err = ring_write_at(&s->rcv, off, data, len);
		if (err != 0) {
			drop_pkt(st, s,
				 err == -ENOBUFS ? UTCP_STAT_drop_ooo_limit
						 : UTCP_STAT_drop_nomem,
				 now);
			s->ack_now = true;
			*fin = false;
			return;
		}
		stat_inc(st, UTCP_STAT_tcp_ooo_queued);
		if (*fin) {
			s->ooo_fin = true;
			s->ooo_fin_seq = seq + len;
			*fin = false;
		}
		s->ack_now = true;
		s->quickack = TCP_MAX_QUICKACKS;
		return;
	}
	/* Nothing unread: the application may take the bytes from the
	 * packet itself, one copy fewer (cfg.deliver). */
	if (s->rcv.len == 0 && s->ooo.n == 0 && st->cfg.deliver != NULL &&
	    s->app_owned && !s->shut_rd) {
		size_t t = st->cfg.deliver(st->cfg.ctx, s, data, len);

		direct = t < len ? (uint32_t)t : len;
	}
	if (direct < len &&
	    ring_write_at(&s->rcv, off, data + direct, len - direct) != 0) {
		drop_pkt(st, s, UTCP_STAT_drop_nomem, now);
		s->ack_now = true;
		*fin = false;
		if (direct == 0)
			return;
		len = direct; /* what the application took stays taken */
	}
	s->rcv.len += len - direct;
	s->rcv_nxt += len;
	s->bytes_received += len;
	s->rcv_unacked += len;
	s->last_data_recv = now;
	/* Parked data that now follows on. */
	{
		uint32_t right;

		while (reass_pop(&s->ooo, s->rcv_nxt, &right)) {
			uint32_t n = right - s->rcv_nxt;

			s->rcv.len += n;
			s->bytes_received += n;
			s->rcv_nxt = right;
		}
	}
	if (s->ooo_fin && s->rcv_nxt == s->ooo_fin_seq) {
		s->ooo_fin = false;
		*fin = true;
	}
	/* When to ACK: at once while filling a gap or in quick-ACK mode,
	 * on every second full segment, else within cfg.delack. */
	if (gap_before || s->ooo.n > 0) {
		s->ack_now = true;
	} else if (s->quickack > 0 && !*fin) {
		/* (with a FIN, Linux leaves quick-ACK mode: fin_input) */
		s->quickack--;
		s->ack_now = true;
	} else if (s->rcv_unacked >= 2 * s->rcv_mss) {
		s->ack_now = true;
	} else if (st->cfg.delack == 0) {
		s->ack_now = true;
	} else if (!timer_on(s, TCPT_DELACK)) {
		timer_set(s, TCPT_DELACK, now + st->cfg.delack);
	}
	if (s->rcv.len > 0) /* not all of it delivered already */
		tcp_rcv_avail_event(s, now);
}

static void
fin_input(struct utcp_sock *s, utcp_time_t now)
{
	/* RFC 9293 3.10.7.4, eighth: the FIN is in order. */
	bool open = s->state == UTCP_SYN_RECEIVED ||
		    s->state == UTCP_ESTABLISHED;

	s->fin_rcvd = true;
	s->rcv_nxt++;
	/* While we are still open, our answer (often a FIN of our own, when
	 * the application closes in turn) may carry the ACK. So it waits as
	 * a delayed ACK would, as Linux's does (tcp_fin enters ping-pong
	 * mode): the close takes three segments instead of four when the
	 * application is quick. Otherwise it goes at once. */
	if (!open || s->st->cfg.delack == 0)
		s->ack_now = true;
	else if (!timer_on(s, TCPT_DELACK))
		timer_set(s, TCPT_DELACK, now + s->st->cfg.delack);
	switch (s->state) {
	case UTCP_SYN_RECEIVED:
	case UTCP_ESTABLISHED:
		tcp_set_state(s, UTCP_CLOSE_WAIT, "rcvd FIN", now);
		break;
	case UTCP_FIN_WAIT_1:
		if (s->fin_acked)
			tcp_enter_time_wait(s, "rcvd FIN", now);
		else
			tcp_set_state(s, UTCP_CLOSING,
				      "rcvd FIN (simultaneous close)", now);
		break;
	case UTCP_FIN_WAIT_2:
		tcp_enter_time_wait(s, "rcvd FIN", now);
		break;
	default:
		break;
	}
	tcp_rcv_avail_event(s, now);
}

/* RFC 7323 5.3 (PAWS): true when the segment must be dropped. */
static bool
paws_reject(struct utcp_sock *s, const struct wire_tcp *seg, utcp_time_t now)
{
	if (!s->ts_ok || !(seg->opt.present & WOPT_TS) || (seg->flags & TH_RST))
		return false;
	if (SEQ_GEQ(seg->opt.tsval, s->ts_recent))
		return false;
	/* A TS.Recent idle for 24 days is stale: forget it (R3). */
	if (now - s->ts_recent_age > TCP_PAWS_24DAYS) {
		s->ts_recent = seg->opt.tsval;
		s->ts_recent_age = now;
		return false;
	}
	return true;
}

/* RFC 6191: a SYN may reopen a TIME-WAIT connection when its sequence
 * number (or timestamp) shows it is newer. */
static bool
time_wait_reuse(struct utcp_sock *s, const struct wire_tcp *seg)
{
	if ((seg->flags & (TH_SYN | TH_ACK | TH_RST)) != TH_SYN)
		return false;
	if (s->ts_ok && (seg->opt.present & WOPT_TS))
		return SEQ_GT(seg->opt.tsval, s->ts_recent);
	return SEQ_GT(seg->seq, s->rcv_nxt);
}

static void
sync_input(struct utcp_sock *s, const struct wire_ip *ip,
	   const struct wire_tcp *seg, const struct utcp_tuple *t,
	   utcp_time_t now)
{
	struct utcp_stack *st = s->st;
	bool fin = (seg->flags & TH_FIN) != 0;
	struct wire_tcp trimmed;

	if (s->state == UTCP_TIME_WAIT && time_wait_reuse(s, seg)) {
		struct utcp_sock *l = listen_select(st, t);

		if (l != NULL && l->state == UTCP_LISTEN) {
			tcp_closed(s, now);
			listen_input(l, ip, seg, t, now);
			return;
		}
	}
	if (!s->syn_acked && (seg->flags & TH_SYN) && seg->seq == s->irs) {
		/* Their SYN again: a lost SYN|ACK (Linux resends it), or
		 * the SYN|ACK of a simultaneous open, whose SYN is old and
		 * whose ACK counts (RFC 9293 figure 7). */
		if (!(seg->flags & TH_ACK)) {
			if (!oow_limited(s, seg, now))
				tcp_send_ack(s, now);
			return;
		}
		trimmed = *seg;
		trimmed.flags &= (uint8_t)~TH_SYN;
		trimmed.seq++;
		seg = &trimmed;
	}
	if (paws_reject(s, seg, now)) {
		drop_with_ack(s, seg, UTCP_STAT_drop_paws, now);
		return;
	}
	/* First: sequence number. */
	if (!seq_acceptable(s, seg)) {
		if (seg->flags & TH_RST) {
			/* RFC 5961 3.2: out-of-window RST, silently. */
			drop_pkt(st, s, UTCP_STAT_drop_rst_out_of_window, now);
			return;
		}
		/* RFC 5961 4.2: a SYN, whatever its sequence number, gets
		 * a challenge ACK (Linux: syn_challenge). */
		if ((seg->flags & TH_SYN) && s->state != UTCP_TIME_WAIT) {
			challenge_ack(s, seg, now);
			return;
		}
		/* RFC 9293 3.10.7.4: TIME-WAIT restarts 2MSL on a
		 * retransmitted FIN. */
		if (s->state == UTCP_TIME_WAIT && fin)
			timer_set(s, TCPT_2MSL, now + st->cfg.time_wait);
		drop_with_ack(s, seg, UTCP_STAT_drop_out_of_window, now);
		return;
	}
	s->last_rcv = now;
	/* RFC 7323 4.3: remember the newest timestamp at or before the
	 * last ACK we sent. */
	if (s->ts_ok && (seg->opt.present & WOPT_TS) &&
	    SEQ_LEQ(seg->seq, s->last_ack_sent) &&
	    SEQ_GEQ(seg->opt.tsval, s->ts_recent)) {
		s->ts_recent = seg->opt.tsval;
		s->ts_recent_age = now;
	}
	/* Second: RST. */
	if (seg->flags & TH_RST) {
		/* RFC 5961 3.2: only the exact RCV.NXT resets. */
		if (seg->seq != s->rcv_nxt) {
			challenge_ack(s, seg, now);
			return;
		}
		rst_rcvd_event(s, seg, now);
		switch (s->state) {
		case UTCP_SYN_RECEIVED:
			if (s->passive) {
				/* Back to LISTEN: the embryo goes. */
				tcp_set_state(s, UTCP_CLOSED, "rcvd RST", now);
				sock_release(s);
			} else {
				tcp_drop(s, ECONNREFUSED, "rcvd RST", now);
			}
			break;
		case UTCP_CLOSE_WAIT:
			/* Linux reports EPIPE once our side saw FIN. */
			tcp_drop(s, EPIPE, "rcvd RST", now);
			break;
		case UTCP_ESTABLISHED:
		case UTCP_FIN_WAIT_1:
		case UTCP_FIN_WAIT_2:
			tcp_drop(s, ECONNRESET, "rcvd RST", now);
			break;
		default:
			tcp_drop(s, 0, "rcvd RST", now);
			break;
		}
		return;
	}
	/* Fourth: SYN in a synchronized state (RFC 5961 4.2). */
	if (seg->flags & TH_SYN) {
		challenge_ack(s, seg, now);
		return;
	}
	/* Fifth: ACK. */
	if (!(seg->flags & TH_ACK)) {
		drop_pkt(st, s, UTCP_STAT_drop_tcp_no_ack, now);
		return;
	}
	if (!ack_input(s, ip, seg, now))
		return;
	if (s->dead || s->state == UTCP_CLOSED)
		return;
	/* Seventh: text, in the states that still receive. */
	if (seg->len > 0 || fin) {
		switch (s->state) {
		case UTCP_ESTABLISHED:
		case UTCP_FIN_WAIT_1:
		case UTCP_FIN_WAIT_2:
			/* Linux: new data for a socket the application has
			 * closed cannot be delivered: reset. */
			if (!s->app_owned && s->parent == NULL &&
			    seg->len > 0 &&
			    SEQ_GT(seg->seq + seg->len, s->rcv_nxt)) {
				drop_pkt(st, s, UTCP_STAT_drop_data_after_close,
					 now);
				tcp_respond_rst(st, ip, seg, "data after close",
						s, now);
				tcp_drop(s, ECONNRESET, "data after close",
					 now);
				return;
			}
			data_input(s, seg, &fin, now);
			break;
		default:
			/* After their FIN nothing more can arrive; a
			 * retransmitted FIN was caught as a duplicate. */
			fin = false;
			break;
		}
	}
	/* Eighth: FIN. */
	if (fin && !s->fin_rcvd)
		fin_input(s, now);
	tcp_output(s, now);
}

void
tcp_input(struct utcp_stack *st, const struct wire_ip *ip,
	  const struct wire_tcp *seg, utcp_time_t now)
{
	struct utcp_tuple t;
	struct utcp_sock *s, *l;

	/* Impossible combinations (Linux drops SYN|FIN and SYN|RST). */
	if ((seg->flags & TH_SYN) && (seg->flags & (TH_FIN | TH_RST))) {
		drop_pkt(st, NULL, UTCP_STAT_drop_tcp_bad_flags, now);
		return;
	}
	memset(&t, 0, sizeof(t));
	t.family = ip->family;
	t.lport = seg->dport;
	t.rport = seg->sport;
	memcpy(t.laddr, ip->dst, sizeof(t.laddr));
	memcpy(t.raddr, ip->src, sizeof(t.raddr));
	s = conn_lookup(st, &t);
	if (s != NULL) {
		s->segs_in++;
		if (s->state == UTCP_SYN_SENT)
			syn_sent_input(s, ip, seg, now);
		else
			sync_input(s, ip, seg, &t, now);
		return;
	}
	l = listen_select(st, &t);
	if (l != NULL && l->state == UTCP_LISTEN) {
		l->segs_in++;
		listen_input(l, ip, seg, &t, now);
		return;
	}
	/* RFC 9293 3.10.7.1: no connection — answer with a RST. */
	drop_pkt(st, NULL, UTCP_STAT_drop_no_socket, now);
	tcp_respond_rst(st, ip, seg, "no socket", NULL, now);
}

/* ---- the receive buffer without a copy (utcp.h) ---- */

size_t
utcp_recv_peek(const struct utcp_sock *s, struct utcp_iov iov[2])
{
	const struct ring *r = &s->rcv;
	uint32_t pos, first;

	iov[0].len = iov[1].len = 0;
	if (r->len == 0)
		return 0;
	pos = r->head & (r->cap - 1);
	first = r->cap - pos;
	if (first > r->len)
		first = r->len;
	iov[0].base = r->buf + pos;
	iov[0].len = first;
	iov[1].base = r->buf;
	iov[1].len = r->len - first;
	return r->len;
}

void
utcp_recv_consume(struct utcp_sock *s, size_t n, utcp_time_t now)
{
	stack_time(s->st, now);
	if (n > s->rcv.len)
		n = s->rcv.len;
	if (n == 0)
		return;
	ring_consume(&s->rcv, (uint32_t)n);
	/* Reading opens the window, as in utcp_recv. */
	tcp_maybe_window_update(s, now);
	stack_reap(s->st);
}
