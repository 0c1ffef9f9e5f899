/*
 * icmp.c — ICMP and ICMPv6 errors about our own TCP segments.
 *
 * An error quotes the IP header and at least the first 8 bytes of the
 * TCP header that caused it (RFC 792, RFC 4443 2.4), enough for the ports
 * and the sequence number. As Linux does (tcp_v4_err, tcp_v6_err):
 *   - the quoted sequence number must lie in SND.UNA..SND.MAX, else the
 *     message is forged or stale and is dropped (RFC 5927 4.1);
 *   - during the handshake (SYN-SENT) the error is hard: connect() fails
 *     at once with its errno; an embryo of a listener just goes away;
 *   - on a synchronized connection it is soft (RFC 1122 4.2.3.9): it is
 *     remembered, and reported instead of ETIMEDOUT if the connection
 *     later times out.
 * Fragmentation-needed and packet-too-big are counted and ignored: the
 * engine sizes segments by MSS, and its link MTU is its own.
 */
#include "internal.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#define ICMP4_UNREACH 3
#define ICMP4_UNREACH_NEEDFRAG 4
#define ICMP4_TIMXCEED 11
#define ICMP4_PARAMPROB 12
#define ICMP6_UNREACH 1 /* 2, packet too big: ignored, see above */
#define ICMP6_TIMXCEED 3
#define ICMP6_PARAMPROB 4

/* Linux's icmp_err_convert[], by code of a destination unreachable. */
static int
icmp4_unreach_errno(uint8_t code)
{
	static const int err[] = {
	    ENETUNREACH,  /* 0 net unreachable */
	    EHOSTUNREACH, /* 1 host unreachable */
	    ENOPROTOOPT,  /* 2 protocol unreachable */
	    ECONNREFUSED, /* 3 port unreachable */
	    EMSGSIZE,     /* 4 fragmentation needed */
	    EOPNOTSUPP,   /* 5 source route failed */
	    ENETUNREACH,  /* 6 net unknown */
	    EHOSTDOWN,    /* 7 host unknown */
	    ENONET,	      /* 8 host isolated */
	    ENETUNREACH,  /* 9 net administratively prohibited */
	    EHOSTUNREACH, /* 10 host administratively prohibited */
	    ENETUNREACH,  /* 11 net unreachable for TOS */
	    EHOSTUNREACH, /* 12 host unreachable for TOS */
	    EHOSTUNREACH, /* 13 communication administratively filtered */
	    EHOSTUNREACH, /* 14 host precedence violation */
	    EHOSTUNREACH, /* 15 precedence cutoff */
	};
	return code < sizeof(err) / sizeof(err[0]) ? err[code] : 0;
}

/* Linux's icmpv6_err_convert(). */
static int
icmp6_unreach_errno(uint8_t code)
{
	static const int err[] = {
	    ENETUNREACH,  /* 0 no route */
	    EACCES,	      /* 1 administratively prohibited */
	    EHOSTUNREACH, /* 2 beyond scope */
	    EHOSTUNREACH, /* 3 address unreachable */
	    ECONNREFUSED, /* 4 port unreachable */
	    EACCES,	      /* 5 source address failed policy */
	    EACCES,	      /* 6 reject route */
	};
	return code < sizeof(err) / sizeof(err[0]) ? err[code] : 0;
}

/* The quoted segment: its tuple as seen from our side, and its sequence
 * number. Returns false when the quote is too short or not ours. */
static bool
quoted_tcp(const struct wire_ip *outer, const uint8_t *q, size_t len,
	   struct utcp_tuple *t, uint32_t *seq)
{
	size_t hl;

	memset(t, 0, sizeof(*t));
	if (outer->family == AF_INET) {
		if (len < 20 || q[0] >> 4 != 4)
			return false;
		hl = (size_t)(q[0] & 0xf) * 4;
		if (hl < 20 || q[9] != WIRE_IPPROTO_TCP || len < hl + 8)
			return false;
		t->family = AF_INET;
		memcpy(t->laddr, q + 12, 4);
		memcpy(t->raddr, q + 16, 4);
	} else {
		/* No extension headers: we never send any. */
		hl = WIRE_IP6_HLEN;
		if (len < hl + 8 || q[0] >> 4 != 6 || q[6] != WIRE_IPPROTO_TCP)
			return false;
		t->family = AF_INET6;
		memcpy(t->laddr, q + 8, 16);
		memcpy(t->raddr, q + 24, 16);
	}
	/* It quotes what we sent: from us, to the peer. */
	if (memcmp(t->laddr, outer->dst, t->family == AF_INET ? 4 : 16) != 0)
		return false;
	t->lport = (uint16_t)(q[hl] << 8 | q[hl + 1]);
	t->rport = (uint16_t)(q[hl + 2] << 8 | q[hl + 3]);
	*seq = (uint32_t)q[hl + 4] << 24 | (uint32_t)q[hl + 5] << 16 |
	       (uint32_t)q[hl + 6] << 8 | q[hl + 7];
	return true;
}

void
icmp_input(struct utcp_stack *st, const struct wire_ip *ip, utcp_time_t now)
{
	const uint8_t *p = ip->payload;
	size_t len = ip->payload_len;
	struct utcp_tuple t;
	struct utcp_sock *s;
	uint64_t sum;
	uint32_t seq;
	uint8_t type, code;
	int err = 0;

	stat_inc(st, UTCP_STAT_icmp_in);
	if (len < 8) {
		drop_pkt(st, NULL, UTCP_STAT_drop_icmp_bad, now);
		return;
	}
	sum = wire_sum(p, len, 0);
	if (ip->family == AF_INET6)
		sum += wire_pseudo_sum(AF_INET6, ip->src, ip->dst,
				       WIRE_IPPROTO_ICMPV6, len);
	if (wire_fold(sum) != 0) {
		drop_pkt(st, NULL, UTCP_STAT_drop_icmp_bad, now);
		return;
	}
	type = p[0];
	code = p[1];
	if (ip->family == AF_INET) {
		if (type == ICMP4_UNREACH && code != ICMP4_UNREACH_NEEDFRAG)
			err = icmp4_unreach_errno(code);
		else if (type == ICMP4_TIMXCEED)
			err = EHOSTUNREACH;
		else if (type == ICMP4_PARAMPROB)
			err = EPROTO;
	} else {
		if (type == ICMP6_UNREACH)
			err = icmp6_unreach_errno(code);
		else if (type == ICMP6_TIMXCEED)
			err = EHOSTUNREACH;
		else if (type == ICMP6_PARAMPROB)
			err = EPROTO;
	}
	if (err == 0) {
		/* echo, redirects, too-big, and the rest */
		drop_pkt(st, NULL, UTCP_STAT_drop_icmp_ignored, now);
		return;
	}
	if (!quoted_tcp(ip, p + 8, len - 8, &t, &seq)) {
		drop_pkt(st, NULL, UTCP_STAT_drop_icmp_bad, now);
		return;
	}
	s = conn_lookup(st, &t);
	if (s == NULL) {
		drop_pkt(st, NULL, UTCP_STAT_drop_icmp_no_conn, now);
		return;
	}
	/* RFC 5927 4.1: only a segment in flight can have caused it. */
	if (SEQ_LT(seq, s->snd_una) || !SEQ_LT(seq, s->snd_max)) {
		drop_pkt(st, s, UTCP_STAT_drop_icmp_seq, now);
		return;
	}
	switch (s->state) {
	case UTCP_SYN_SENT:
		stat_inc(st, UTCP_STAT_icmp_conn_aborted);
		tcp_drop(s, err, "ICMP error in SYN-SENT", now);
		break;
	case UTCP_SYN_RECEIVED:
		if (s->passive) {
			/* Linux drops the request, silently. */
			stat_inc(st, UTCP_STAT_icmp_conn_aborted);
			tcp_set_state(s, UTCP_CLOSED, "ICMP error in SYN-RECEIVED",
				      now);
			sock_release(s);
			break;
		}
		/* fall through */
	default:
		stat_inc(st, UTCP_STAT_icmp_soft_error);
		s->soft_err = (uint8_t)err;
		break;
	}
}
