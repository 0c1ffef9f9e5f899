/*
 * tcp_output.c — what to send and building it: SYN, data, FIN, ACK, RST,
 * probes; the advertised window; sender silly-window avoidance, Nagle
 * and cork.
 */
#include "internal.h"

#include <string.h>
#include <sys/socket.h>

uint32_t
tcp_now_ts(const struct utcp_sock *s, utcp_time_t now)
{
	/* Millisecond TSval ticks, as Linux. */
	return (uint32_t)(now / 1000) + s->ts_offset;
}

uint32_t
tcp_flight(const struct utcp_sock *s)
{
	return s->snd_max - s->snd_una;
}

uint32_t
tcp_seg_opts_len(const struct utcp_sock *s)
{
	return s->ts_ok ? 12 : 0;
}

static uint32_t
sack_opt_len(const struct utcp_sock *s)
{
	uint32_t n = s->ooo.n, max = s->ts_ok ? 3 : 4;

	if (!s->sack_ok || n == 0)
		return 0;
	return 4 + 8 * (n < max ? n : max);
}

uint16_t
tcp_adv_mss(const struct utcp_sock *s)
{
	uint32_t mss = s->st->cfg.mtu -
		       (uint32_t)wire_ip_hlen(s->tuple.family) - WIRE_TCP_HLEN;

	if (s->user_mss && s->user_mss < mss)
		mss = s->user_mss;
	return (uint16_t)(mss > 65535 ? 65535 : mss);
}

void
tcp_set_mss(struct utcp_sock *s)
{
	/* RFC 9293 3.7.1: 536 (IPv4) when the peer sent no MSS option. */
	uint32_t peer =
	    s->peer_mss
		? s->peer_mss
		: (s->tuple.family == AF_INET6 ? 1220 : UTCP_MSS_DEFAULT);
	uint32_t mss = tcp_adv_mss(s);

	if (peer < mss)
		mss = peer;
	/* Room for at least some payload after options (RFC 6691). */
	if (mss < 64)
		mss = 64;
	s->mss = mss;
}

uint8_t
tcp_pick_wscale(uint32_t rcvbuf)
{
	uint8_t ws = 0;

	/* The smallest shift whose window covers the whole buffer. */
	while (ws < WIRE_MAX_WSCALE && ((uint64_t)65535 << ws) < rcvbuf)
		ws++;
	return ws;
}

/* The largest window the header can carry with our scale. */
static uint32_t
max_window(const struct utcp_sock *s)
{
	uint64_t m = (uint64_t)65535 << s->rcv_wscale;

	return m < s->rcvbuf ? (uint32_t)m : s->rcvbuf;
}

uint32_t
tcp_rcv_window(struct utcp_sock *s)
{
	uint32_t space = s->rcvbuf > s->rcv.len ? s->rcvbuf - s->rcv.len : 0;
	uint32_t cur =
	    SEQ_GT(s->rcv_adv, s->rcv_nxt) ? s->rcv_adv - s->rcv_nxt : 0;
	uint32_t thresh = s->rcvbuf / 2;

	if (s->mss < thresh)
		thresh = s->mss;
	if (space > max_window(s))
		space = max_window(s);
	/* RFC 9293 3.8.6.2.2: never shrink what was offered, and open the
	 * window only by min(RCV.BUFF / 2, MSS) or more (receiver SWS). */
	if (space <= cur || space - cur < thresh)
		return cur;
	return space;
}

/* The link completes TCP checksums (and takes packets in pieces). */
static bool
tx_csum_offload(const struct utcp_stack *st)
{
	return (st->cfg.offload & UTCP_OFFLOAD_TX_CSUM) &&
	       st->cfg.output_iov != NULL;
}

/* Hand a finished packet to the link: st->pkt holds its headers (hlen
 * bytes), then either its payload too (pay == NULL) or the payload is
 * `plen` bytes of the send ring at `off`, sent from there without a
 * copy. */
static void
link_output(struct utcp_stack *st, size_t hlen, const struct ring *pay,
	    uint32_t off, uint32_t plen)
{
	struct utcp_iov iov[3];
	unsigned n = 1;

	if (st->cfg.output_iov == NULL) {
		st->cfg.output(st->cfg.ctx, st->pkt, hlen + plen);
		return;
	}
	iov[0].base = st->pkt;
	iov[0].len = hlen + (pay == NULL ? plen : 0);
	if (pay != NULL && plen > 0) {
		uint32_t pos = (pay->head + off) & (pay->cap - 1);
		uint32_t first = pay->cap - pos;

		if (first > plen)
			first = plen;
		iov[n].base = pay->buf + pos;
		iov[n++].len = first;
		if (plen > first) {
			iov[n].base = pay->buf;
			iov[n++].len = plen - first;
		}
	}
	st->cfg.output_iov(st->cfg.ctx, iov, n, hlen + plen);
}

/* Build and send one segment. Returns the payload bytes sent. */
static uint32_t
tcp_xmit(struct utcp_sock *s, uint32_t seq, uint32_t len, uint8_t flags,
	 utcp_time_t now)
{
	struct utcp_stack *st = s->st;
	uint8_t fam = s->tuple.family;
	size_t iph = wire_ip_hlen(fam), olen, hlen, room;
	struct wire_tcp seg;
	uint32_t win;
	uint8_t *tcp;
	bool zc;

	memset(&seg, 0, sizeof(seg));
	seg.sport = s->tuple.lport;
	seg.dport = s->tuple.rport;
	seg.seq = seq;
	seg.flags = flags;
	if (flags & TH_ACK)
		seg.ack = s->rcv_nxt;
	if (flags & TH_SYN) {
		bool synack = (flags & TH_ACK) != 0;

		seg.opt.present = WOPT_MSS;
		seg.opt.mss = tcp_adv_mss(s);
		if (synack ? s->ws_ok : s->want_ws) {
			seg.opt.present |= WOPT_WSCALE;
			seg.opt.wscale = s->rcv_wscale;
		}
		if (synack ? s->sack_ok : s->want_sack)
			seg.opt.present |= WOPT_SACK_PERM;
		if (synack ? s->ts_ok : s->want_ts) {
			seg.opt.present |= WOPT_TS;
			seg.opt.tsval = tcp_now_ts(s, now);
			seg.opt.tsecr = synack ? s->ts_recent : 0;
		}
	} else {
		if (s->ts_ok) {
			seg.opt.present |= WOPT_TS;
			seg.opt.tsval = tcp_now_ts(s, now);
			seg.opt.tsecr = s->ts_recent;
		}
		if ((flags & TH_ACK) && !(flags & TH_RST) && sack_opt_len(s)) {
			seg.opt.present |= WOPT_SACK;
			seg.opt.nsack = (uint8_t)reass_sack(
			    &s->ooo, seg.opt.sack, s->ts_ok ? 3 : 4);
		}
	}
	/* The window: unscaled in a SYN (RFC 7323 2.2). */
	win = tcp_rcv_window(s);
	if (flags & TH_SYN) {
		/* Linux quantises the initial window to whole segments:
		 * 64240 with MSS 1460, 65160 in a SYN|ACK using TS. */
		uint32_t q = tcp_adv_mss(s) - (s->ts_ok ? 12 : 0);

		if (win > 65535)
			win = 65535;
		if (win > q)
			win -= win % q;
		seg.wnd = (uint16_t)win;
	} else {
		/* Scaling rounds down: the edge may seem to move back by
		 * less than one unit (RFC 7323 2.4), but never past the
		 * buffer. We still accept data up to what we offered. */
		uint32_t field = win >> s->rcv_wscale;

		if (field > 65535)
			field = 65535;
		seg.wnd = (uint16_t)field;
		win = field << s->rcv_wscale;
	}
	olen = wire_tcp_opts_len(&seg.opt);
	hlen = WIRE_TCP_HLEN + olen;
	room = st->pkt_cap - iph - hlen;
	if (len > room)
		len = (uint32_t)room;
	seg.len = len;
	tcp = st->pkt + iph;
	/* With the checksum left to the link, the payload need not pass
	 * through here: it goes to the link from the send ring. */
	zc = tx_csum_offload(st);
	if (zc) {
		wire_tcp_emit_partial(tcp, &seg, fam, s->tuple.laddr,
				      s->tuple.raddr);
	} else {
		if (len > 0)
			ring_read_at(&s->snd, seq - s->snd_una, tcp + hlen,
				     len);
		wire_tcp_emit(tcp, &seg, fam, s->tuple.laddr, s->tuple.raddr);
	}
	wire_ip_emit(st->pkt, fam, s->tuple.laddr, s->tuple.raddr, s->tos,
		     TCP_TTL, s->ip_id++, hlen + len);
	stat_inc(st, UTCP_STAT_ip_out);
	stat_inc(st, UTCP_STAT_tcp_out);
	s->segs_out++;
	if ((flags & TH_ACK) && !(flags & TH_RST)) {
		uint32_t edge = s->rcv_nxt + win;

		if (SEQ_GT(edge, s->rcv_adv) || (flags & TH_SYN))
			s->rcv_adv = edge;
		s->last_ack_sent = s->rcv_nxt;
		s->rcv_wup = s->rcv_nxt;
		s->rcv_unacked = 0;
		s->ack_now = false;
		if (timer_on(s, TCPT_DELACK))
			timer_cancel(s, TCPT_DELACK);
	}
	link_output(st, iph + hlen, zc ? &s->snd : NULL, seq - s->snd_una,
		    len);
	return len;
}

void
tcp_send_ack(struct utcp_sock *s, utcp_time_t now)
{
	uint8_t flags = TH_ACK;

	/* A lost SYN|ACK is repeated as such, not as a bare ACK. */
	if (s->state == UTCP_SYN_RECEIVED)
		flags |= TH_SYN;
	tcp_xmit(s, flags & TH_SYN ? s->iss : s->snd_max, 0, flags, now);
}

void
tcp_send_probe(struct utcp_sock *s, utcp_time_t now)
{
	/* SEG.SEQ = SND.UNA - 1: an old sequence number forces an ACK. */
	tcp_xmit(s, s->snd_una - 1, 0, TH_ACK, now);
}

static void
rst_event(struct utcp_stack *st, struct utcp_sock *s, uint32_t seq,
	  const char *cause, utcp_time_t now)
{
	struct utcp_event ev = {
	    .type = UTCP_EV_RST_SENT,
	    .sock = s,
	    .seq = seq,
	    .cause = cause,
	    .now = now,
	};

	if (s != NULL)
		ev.old_state = ev.new_state = s->state;
	stat_inc(st, UTCP_STAT_tcp_rst_sent);
	ev_emit_full(st, &ev);
}

void
tcp_send_rst(struct utcp_sock *s, const char *cause, utcp_time_t now)
{
	/* Linux's active reset: RST|ACK at SND.NXT. */
	tcp_xmit(s, s->snd_max, 0, TH_RST | TH_ACK, now);
	rst_event(s->st, s, s->snd_max, cause, now);
}

void
tcp_respond_rst(struct utcp_stack *st, const struct wire_ip *ip,
		const struct wire_tcp *in, const char *cause,
		struct utcp_sock *s, utcp_time_t now)
{
	size_t iph = wire_ip_hlen(ip->family);
	struct wire_tcp seg;

	/* RFC 9293 3.10.7.1: never answer a RST. */
	if (in->flags & TH_RST)
		return;
	memset(&seg, 0, sizeof(seg));
	seg.sport = in->dport;
	seg.dport = in->sport;
	if (in->flags & TH_ACK) {
		/* <SEQ=SEG.ACK><CTL=RST> */
		seg.seq = in->ack;
		seg.flags = TH_RST;
	} else {
		/* <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK> */
		seg.seq = 0;
		seg.ack = in->seq + in->len + !!(in->flags & TH_SYN) +
			  !!(in->flags & TH_FIN);
		seg.flags = TH_RST | TH_ACK;
	}
	if (tx_csum_offload(st))
		wire_tcp_emit_partial(st->pkt + iph, &seg, ip->family, ip->dst,
				      ip->src);
	else
		wire_tcp_emit(st->pkt + iph, &seg, ip->family, ip->dst,
			      ip->src);
	wire_ip_emit(st->pkt, ip->family, ip->dst, ip->src, 0, TCP_TTL, 0,
		     WIRE_TCP_HLEN);
	stat_inc(st, UTCP_STAT_ip_out);
	stat_inc(st, UTCP_STAT_tcp_out);
	link_output(st, iph + WIRE_TCP_HLEN, NULL, 0, 0);
	rst_event(st, s, seg.seq, cause, now);
}

static void
retransmit_event(struct utcp_sock *s, uint32_t seq, const char *cause,
		 utcp_time_t now)
{
	struct utcp_event ev = {
	    .type = UTCP_EV_RETRANSMIT,
	    .sock = s,
	    .old_state = s->state,
	    .new_state = s->state,
	    .seq = seq,
	    .arg = s->backoff,
	    .cause = cause,
	    .now = now,
	};

	stat_inc(s->st, UTCP_STAT_tcp_retransmit);
	/* Karn: an ACK for timed data may now be for either copy. */
	s->rtt_timing = false;
	s->total_retrans++;
	ev_emit_full(s->st, &ev);
}

static void
send_syn(struct utcp_sock *s, utcp_time_t now)
{
	uint8_t flags = TH_SYN;

	if (s->state != UTCP_SYN_SENT)
		flags |= TH_ACK;
	if (s->snd_max != s->iss)
		retransmit_event(s, s->iss, "timeout", now);
	else
		s->rtx_start = now;
	tcp_xmit(s, s->iss, 0, flags, now);
	s->snd_nxt = s->iss + 1;
	if (SEQ_GT(s->snd_nxt, s->snd_max))
		s->snd_max = s->snd_nxt;
	if (!timer_on(s, TCPT_REXMT)) {
		utcp_time_t rto = s->st->cfg.rto_initial;

		for (unsigned b = s->backoff; b > 0 && rto < s->st->cfg.rto_max;
		     b--)
			rto *= 2;
		if (rto > s->st->cfg.rto_max)
			rto = s->st->cfg.rto_max;
		timer_set(s, TCPT_REXMT, now + rto);
	}
}

/* Send what the windows, Nagle and cork allow. force: one segment goes out
 * regardless of silly-window avoidance (the persist timer's override). */
static int
output(struct utcp_sock *s, utcp_time_t now, bool force)
{
	bool sent_any = false;

	if (s->dead)
		return 0;
	switch (s->state) {
	case UTCP_CLOSED:
	case UTCP_LISTEN:
		return 0;
	case UTCP_SYN_SENT:
	case UTCP_SYN_RECEIVED:
		if (s->snd_nxt == s->iss)
			send_syn(s, now);
		else if (s->ack_now)
			tcp_send_ack(s, now);
		return 0;
	case UTCP_TIME_WAIT:
		if (s->ack_now)
			tcp_send_ack(s, now);
		return 0;
	default:
		break;
	}
	if (!s->syn_acked) {
		/* Closed during the handshake: SYN|ACK, then FIN. */
		if (SEQ_LEQ(s->snd_nxt, s->iss))
			send_syn(s, now);
		if (s->fin_queued && s->snd_nxt == s->iss + 1) {
			tcp_xmit(s, s->iss + 1, 0, TH_ACK | TH_FIN, now);
			s->snd_nxt = s->iss + 2;
			if (SEQ_GT(s->snd_nxt, s->snd_max))
				s->snd_max = s->snd_nxt;
		} else if (s->ack_now) {
			tcp_send_ack(s, now);
		}
		return 0;
	}
	for (;;) {
		uint32_t off = s->snd_nxt - s->snd_una;
		uint32_t left = off < s->snd.len ? s->snd.len - off : 0;
		uint32_t maxseg =
		    s->mss - tcp_seg_opts_len(s) - sack_opt_len(s);
		uint32_t flight = off, wroom, croom, usable, lt;
		bool clipped;
		uint32_t len = left, seq = s->snd_nxt, sent, end;
		bool fin;
		uint8_t flags;

		if (s->sack_recovery) {
			/* RFC 6675 5: while pipe < cwnd, the next hole
			 * first, then new data. */
			uint32_t hseq, hlen;

			flight = sack_pipe(s);
			if (flight >= s->cwnd)
				break;
			if (sack_next_hole(s, s->rtx_hi, &hseq, &hlen) &&
			    SEQ_LT(hseq, s->snd_una + s->snd.len)) {
				uint32_t dl = s->snd_una + s->snd.len - hseq;

				len = hlen < maxseg ? hlen : maxseg;
				if (len > dl)
					len = dl;
				retransmit_event(s, hseq, "fast recovery", now);
				sent = tcp_xmit(s, hseq, len, TH_ACK, now);
				s->bytes_retrans += sent;
				s->rtx_hi = hseq + sent;
				s->last_send = now;
				sent_any = true;
				if (sent == 0)
					break;
				continue;
			}
		} else if (SEQ_LT(seq, s->snd_max) && s->sacked.n > 0) {
			/* Going back after a timeout: skip what the peer
			 * holds, and stop each segment at its next SACK. */
			if (sack_covered(s, seq, &end)) {
				s->snd_nxt =
				    SEQ_LT(end, s->snd_max) ? end : s->snd_max;
				continue;
			}
			end = sack_next_start(s, seq);
			if (len > end - seq)
				len = end - seq;
		}
		wroom = s->snd_wnd > off ? s->snd_wnd - off : 0;
		/* RFC 3042 limited transmit: each of the first two
		 * duplicate ACKs lets one new segment out beyond cwnd, so a
		 * small window still earns the third one. */
		lt = !s->in_recovery && s->dupacks < 3 ? s->dupacks * s->mss
						       : 0;
		croom = s->cwnd + lt > flight ? s->cwnd + lt - flight : 0;
		usable = wroom < croom ? wroom : croom;
		/* what the windows leave is less than a segment */
		clipped = len > usable && usable < maxseg;
		if (len > usable)
			len = usable;
		if (len > maxseg)
			len = maxseg;
		/* FIN after the last byte, if the peer's window has room
		 * for it (Linux checks the FIN against the window too). */
		fin = s->fin_queued && !s->fin_acked && off <= s->snd.len &&
		      off + len == s->snd.len &&
		      off + len + 1 <= (s->snd_wnd ? s->snd_wnd : 0);
		if (len > 0 && len < maxseg && !force) {
			bool all = len == left;
			bool idle = s->snd_max == s->snd_una;
			bool corked = s->cork || s->more;
			bool ok = false;

			/* RFC 9293 3.8.6.2.1 and RFC 896 (Nagle). */
			if (all && (s->nodelay || idle) && !corked)
				ok = true;
			else if (SEQ_LT(seq, s->snd_max) && !clipped)
				ok = true; /* retransmission, as first sent */
			else if (all && corked && fin)
				ok = true; /* closing flushes a cork */
			else if (!corked && s->max_sndwnd > 0 &&
				 len >= s->max_sndwnd / 2)
				ok = true;
			if (!ok) {
				len = 0;
				fin = false;
			}
		}
		if (len == 0 && !fin) {
			if (force && left > 0 && s->snd_wnd > off) {
				/* Persist override: a window smaller than
				 * our threshold still gets data. */
				len = s->snd_wnd - off;
				if (len > left)
					len = left;
				if (len > maxseg)
					len = maxseg;
			} else {
				break;
			}
		}
		force = false;
		flags = TH_ACK;
		if (fin)
			flags |= TH_FIN;
		if (len > 0 && off + len == s->snd.len)
			flags |= TH_PSH;
		if (s->snd_max == s->snd_una)
			s->rtx_start = now;
		if (SEQ_LT(seq, s->snd_max))
			retransmit_event(s, seq, "timeout", now);
		sent = tcp_xmit(s, seq, len, flags, now);
		if (sent < len)
			fin = false; /* an MTU clamp: FIN rides later */
		if (sent == 0 && !fin)
			break; /* no room at all: never spin */
		if (SEQ_GEQ(seq, s->snd_max)) {
			if (!s->rtt_timing && sent > 0) {
				s->rtt_timing = true;
				s->rtt_seq = seq + sent;
				s->rtt_start = now;
			}
			s->bytes_sent += sent;
		}
		if (sent > 0)
			s->last_data_sent = now;
		s->last_send = now;
		s->snd_nxt = seq + sent + (fin ? 1 : 0);
		if (SEQ_GT(s->snd_nxt, s->snd_max))
			s->snd_max = s->snd_nxt;
		sent_any = true;
		/* A probe timeout restarts with each segment sent (RFC
		 * 8985 7.2), the RTO does not (RFC 6298 5.1). */
		if (!timer_on(s, TCPT_REXMT) || s->tlp_armed)
			tcp_rearm_rexmt(s, now);
		if (timer_on(s, TCPT_PERSIST))
			timer_cancel(s, TCPT_PERSIST);
		if (fin)
			break;
	}
	if (!sent_any && s->ack_now)
		tcp_send_ack(s, now);
	/* Data waits on the peer's window with nothing in flight: only the
	 * persist timer can get it moving again (RFC 9293 3.8.6.1). */
	if (s->snd_max == s->snd_una && !timer_on(s, TCPT_PERSIST) &&
	    !timer_on(s, TCPT_REXMT)) {
		uint32_t off = s->snd_nxt - s->snd_una;
		uint32_t left = off < s->snd.len ? s->snd.len - off : 0;
		uint32_t maxseg = s->mss - tcp_seg_opts_len(s);
		bool finwait = s->fin_queued && off == s->snd.len;

		/* Held back by the window (not by Nagle or cork). */
		if ((left > 0 && s->snd_wnd < left && s->snd_wnd < maxseg) ||
		    (finwait && s->snd_wnd == 0)) {
			s->persist_backoff = 0;
			s->persist_start = now;
			timer_set(s, TCPT_PERSIST, now + tcp_rto_backed_off(s));
		}
	}
	return 0;
}

int
tcp_output(struct utcp_sock *s, utcp_time_t now)
{
	return output(s, now, false);
}

int
tcp_output_force(struct utcp_sock *s, utcp_time_t now)
{
	return output(s, now, true);
}

void
tcp_maybe_window_update(struct utcp_sock *s, utcp_time_t now)
{
	uint32_t cur, nw;

	if (!UTCP_HAVEESTABLISHED(s->state) || s->state == UTCP_TIME_WAIT ||
	    s->fin_rcvd)
		return;
	cur = SEQ_GT(s->rcv_adv, s->rcv_nxt) ? s->rcv_adv - s->rcv_nxt : 0;
	/* Linux (tcp_cleanup_rbuf): tell the peer once the window we could
	 * offer is at least twice what it still sees. */
	if (2 * (uint64_t)cur > max_window(s))
		return;
	nw = tcp_rcv_window(s);
	if (nw > 0 && nw >= 2 * cur && nw - cur >= s->mss)
		tcp_send_ack(s, now);
}

/* Fast retransmit and NewReno partial ACKs: resend the first unacked
 * segment, whatever the windows say (RFC 5681 3.2, RFC 6582 3.2). */
void
tcp_retransmit_una(struct utcp_sock *s, utcp_time_t now)
{
	uint32_t maxseg = s->mss - tcp_seg_opts_len(s) - sack_opt_len(s);
	uint32_t len = s->snd.len < maxseg ? s->snd.len : maxseg, sent;
	bool fin;
	uint8_t flags = TH_ACK;

	/* Only the hole: not into what the peer SACKed. */
	if (s->sacked.n > 0) {
		uint32_t hole = sack_next_start(s, s->snd_una) - s->snd_una;

		if (len > hole)
			len = hole;
	}
	fin = s->fin_queued && len == s->snd.len &&
	      s->snd_max == s->snd_una + s->snd.len + 1;

	if (len == 0 && !fin)
		return;
	if (fin)
		flags |= TH_FIN;
	if (len > 0 && len == s->snd.len)
		flags |= TH_PSH;
	retransmit_event(s, s->snd_una, "fast retransmit", now);
	sent = tcp_xmit(s, s->snd_una, len, flags, now);
	/* Karn: whatever was being timed may now be ambiguous. */
	s->rtt_timing = false;
	if (sent < len)
		fin = false;
	if (SEQ_GT(s->snd_una + sent + (fin ? 1 : 0), s->snd_nxt))
		s->snd_nxt = s->snd_una + sent + (fin ? 1 : 0);
	if (SEQ_GT(s->snd_una + sent, s->rtx_hi))
		s->rtx_hi = s->snd_una + sent;
	s->bytes_retrans += sent;
}

/* RFC 8985 7.3: a tail loss probe. New data if the peer's window takes
 * it (cwnd does not apply to the probe), else the last segment again, so
 * the peer's ACK (with SACK) reveals a lost tail without waiting for the
 * RTO. */
void
tcp_send_loss_probe(struct utcp_sock *s, utcp_time_t now)
{
	uint32_t maxseg = s->mss - tcp_seg_opts_len(s) - sack_opt_len(s);
	uint32_t before = s->snd_max, cwnd = s->cwnd, len, seq, sent, out;
	bool fin_out = s->fin_queued &&
		       s->snd_max == s->snd_una + s->snd.len + 1;
	uint8_t flags = TH_ACK;

	stat_inc(s->st, UTCP_STAT_tcp_loss_probe);
	if (!fin_out && s->snd_nxt == s->snd_max) {
		s->cwnd = tcp_flight(s) + maxseg;
		tcp_output(s, now);
		s->cwnd = cwnd;
		if (s->snd_max != before)
			return;
	}
	/* The last segment sent, FIN included if it went out: it ends at
	 * SND.MAX, not at the end of the queue, whose tail may be unsent
	 * (held by the peer's window). */
	out = s->snd_max - s->snd_una - (fin_out ? 1 : 0);
	if (out > s->snd.len)
		out = s->snd.len;
	len = out < maxseg ? out : maxseg;
	if (len == 0 && !fin_out)
		return;
	seq = s->snd_una + out - len;
	if (fin_out)
		flags |= TH_FIN;
	if (len > 0)
		flags |= TH_PSH;
	retransmit_event(s, seq, "loss probe", now);
	sent = tcp_xmit(s, seq, len, flags, now);
	s->rtt_timing = false; /* Karn */
	s->bytes_retrans += sent;
}

/* ---- the send buffer without a copy (utcp.h) ---- */

size_t
utcp_send_reserve(struct utcp_sock *s, size_t want, struct utcp_iov iov[2])
{
	struct ring *r = &s->snd;
	uint32_t space, n, pos, first;

	iov[0].len = iov[1].len = 0;
	/* Anything unusual is utcp_send's to report. */
	if (s->so_error || s->shut_wr || s->fin_queued ||
	    (s->state != UTCP_ESTABLISHED && s->state != UTCP_CLOSE_WAIT))
		return 0;
	space = s->sndbuf > s->snd.len ? s->sndbuf - s->snd.len : 0;
	n = want < space ? (uint32_t)want : space;
	if (n == 0 || ring_reserve(r, s->snd.len + n) != 0)
		return 0;
	pos = (r->head + s->snd.len) & (r->cap - 1);
	first = r->cap - pos;
	if (first > n)
		first = n;
	iov[0].base = r->buf + pos;
	iov[0].len = first;
	iov[1].base = r->buf;
	iov[1].len = n - first;
	return n;
}

void
utcp_send_commit(struct utcp_sock *s, size_t n, int flags, utcp_time_t now)
{
	stack_time(s->st, now);
	if (n == 0) {
		/* Nothing came: an idle socket keeps no buffer. */
		if (s->snd.len == 0)
			ring_release_if_empty(&s->snd);
		return;
	}
	ring_wrote(&s->snd, s->snd.len, (uint32_t)n);
	/* RFC 5681 4.1, as in utcp_send: after an idle period longer than
	 * the RTO, restart from the initial window. */
	if (s->snd_max == s->snd_una && s->snd.len == 0 && s->last_send &&
	    now - s->last_send > tcp_rto_backed_off(s)) {
		uint32_t iw = TCP_INIT_CWND * s->mss;

		if (s->cwnd > iw)
			s->cwnd = iw;
	}
	s->snd.len += (uint32_t)n;
	s->more = (flags & UTCP_MSG_MORE) != 0;
	tcp_output(s, now);
	stack_reap(s->st);
}
