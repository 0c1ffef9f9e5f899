/* wire_tcp.c — TCP header and options: parse, validate, emit. */
#include "wire.h"

#include <string.h>

static uint16_t
get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t
get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

static void
put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void
put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

int
wire_tcp_parse_opts(const uint8_t *p, size_t len, struct wire_tcp_opts *o)
{
	memset(o, 0, sizeof(*o));
	while (len > 0) {
		uint8_t kind = p[0], olen;

		if (kind == TCPOPT_EOL)
			break;
		if (kind == TCPOPT_NOP) {
			p++;
			len--;
			continue;
		}
		/* Every other option has a length byte covering itself. */
		if (len < 2)
			return UTCP_STAT_drop_tcp_bad_options;
		olen = p[1];
		if (olen < 2 || olen > len)
			return UTCP_STAT_drop_tcp_bad_options;
		/* A known option with the wrong size is ignored, as Linux
		 * does; the rest of the segment is still good. */
		switch (kind) {
		case TCPOPT_MSS:
			if (olen == 4) {
				o->present |= WOPT_MSS;
				o->mss = get16(p + 2);
			}
			break;
		case TCPOPT_WSCALE:
			if (olen == 3) {
				o->present |= WOPT_WSCALE;
				/* RFC 7323 2.3: a shift above 14 means 14. */
				o->wscale = p[2] > WIRE_MAX_WSCALE
						? WIRE_MAX_WSCALE
						: p[2];
			}
			break;
		case TCPOPT_SACK_PERM:
			if (olen == 2)
				o->present |= WOPT_SACK_PERM;
			break;
		case TCPOPT_TS:
			if (olen == 10) {
				o->present |= WOPT_TS;
				o->tsval = get32(p + 2);
				o->tsecr = get32(p + 6);
			}
			break;
		case TCPOPT_SACK:
			if (olen >= 10 && (olen - 2) % 8 == 0 &&
			    (olen - 2) / 8 <= WIRE_MAX_SACK) {
				o->present |= WOPT_SACK;
				o->nsack = (uint8_t)((olen - 2) / 8);
				for (int i = 0; i < o->nsack; i++) {
					o->sack[i].left = get32(p + 2 + 8 * i);
					o->sack[i].right = get32(p + 6 + 8 * i);
				}
			}
			break;
		default:
			break;
		}
		p += olen;
		len -= olen;
	}
	return 0;
}

int
wire_tcp_parse(const struct wire_ip *ip, struct wire_tcp *seg)
{
	return wire_tcp_parse_ex(ip, seg, 0);
}

int
wire_tcp_parse_ex(const struct wire_ip *ip, struct wire_tcp *seg,
		  unsigned link_flags)
{
	const uint8_t *p = ip->payload;
	size_t len = ip->payload_len, off;
	uint64_t acc;

	if (len < WIRE_TCP_HLEN)
		return UTCP_STAT_drop_tcp_short;
	off = (size_t)(p[12] >> 4) * 4;
	if (off < WIRE_TCP_HLEN || off > len)
		return UTCP_STAT_drop_tcp_bad_offset;
	if (!(link_flags & UTCP_IN_CSUM_OK)) {
		acc = wire_pseudo_sum(ip->family, ip->src, ip->dst,
				      WIRE_IPPROTO_TCP, (uint32_t)len);
		if (wire_fold(wire_sum(p, len, acc)) != 0)
			return UTCP_STAT_drop_tcp_bad_checksum;
	}
	seg->sport = get16(p);
	seg->dport = get16(p + 2);
	seg->seq = get32(p + 4);
	seg->ack = get32(p + 8);
	seg->flags = p[13];
	seg->wnd = get16(p + 14);
	seg->urp = get16(p + 18);
	seg->data = p + off;
	seg->len = (uint32_t)(len - off);
	return wire_tcp_parse_opts(p + WIRE_TCP_HLEN, off - WIRE_TCP_HLEN,
				   &seg->opt);
}

size_t
wire_tcp_opts_len(const struct wire_tcp_opts *o)
{
	size_t n = 0;

	if (o->present & WOPT_MSS)
		n += 4;
	if (o->present & WOPT_TS)
		n += 12; /* SACK-permitted rides in the TS word when both */
	else if (o->present & WOPT_SACK_PERM)
		n += 4;
	if (o->present & WOPT_WSCALE)
		n += 4;
	if ((o->present & WOPT_SACK) && o->nsack > 0)
		n += 4 + 8 * (size_t)o->nsack;
	return n;
}

size_t
wire_tcp_opts_emit(uint8_t *p, const struct wire_tcp_opts *o)
{
	uint8_t *start = p;

	if (o->present & WOPT_MSS) {
		*p++ = TCPOPT_MSS;
		*p++ = 4;
		put16(p, o->mss);
		p += 2;
	}
	if (o->present & WOPT_TS) {
		if (o->present & WOPT_SACK_PERM) {
			*p++ = TCPOPT_SACK_PERM;
			*p++ = 2;
		} else {
			*p++ = TCPOPT_NOP;
			*p++ = TCPOPT_NOP;
		}
		*p++ = TCPOPT_TS;
		*p++ = 10;
		put32(p, o->tsval);
		put32(p + 4, o->tsecr);
		p += 8;
	} else if (o->present & WOPT_SACK_PERM) {
		*p++ = TCPOPT_NOP;
		*p++ = TCPOPT_NOP;
		*p++ = TCPOPT_SACK_PERM;
		*p++ = 2;
	}
	if (o->present & WOPT_WSCALE) {
		*p++ = TCPOPT_NOP;
		*p++ = TCPOPT_WSCALE;
		*p++ = 3;
		*p++ = o->wscale;
	}
	if ((o->present & WOPT_SACK) && o->nsack > 0) {
		*p++ = TCPOPT_NOP;
		*p++ = TCPOPT_NOP;
		*p++ = TCPOPT_SACK;
		*p++ = (uint8_t)(2 + 8 * o->nsack);
		for (int i = 0; i < o->nsack; i++) {
			put32(p, o->sack[i].left);
			put32(p + 4, o->sack[i].right);
			p += 8;
		}
	}
	return (size_t)(p - start);
}

/* Header and options; the checksum field zero. */
static size_t
emit_hdr(uint8_t *buf, const struct wire_tcp *seg)
{
	size_t olen = wire_tcp_opts_emit(buf + WIRE_TCP_HLEN, &seg->opt);
	size_t hlen = WIRE_TCP_HLEN + olen;

	put16(buf, seg->sport);
	put16(buf + 2, seg->dport);
	put32(buf + 4, seg->seq);
	put32(buf + 8, seg->ack);
	buf[12] = (uint8_t)((hlen / 4) << 4);
	buf[13] = seg->flags;
	put16(buf + 14, seg->wnd);
	buf[16] = buf[17] = 0;
	put16(buf + 18, seg->urp);
	return hlen;
}

size_t
wire_tcp_emit(uint8_t *buf, const struct wire_tcp *seg, uint8_t family,
	      const uint8_t *src, const uint8_t *dst)
{
	size_t hlen = emit_hdr(buf, seg);
	uint64_t acc;
	uint16_t ck;

	acc = wire_pseudo_sum(family, src, dst, WIRE_IPPROTO_TCP,
			      (uint32_t)(hlen + seg->len));
	ck = wire_fold(wire_sum(buf, hlen + seg->len, acc));
	memcpy(buf + 16, &ck, 2);
	return hlen;
}

size_t
wire_tcp_emit_partial(uint8_t *buf, const struct wire_tcp *seg,
		      uint8_t family, const uint8_t *src, const uint8_t *dst)
{
	size_t hlen = emit_hdr(buf, seg);
	uint64_t acc;
	uint16_t ck;

	/* Linux's CHECKSUM_PARTIAL convention: the pseudo-header sum,
	 * folded but not complemented; the link sums from the TCP header
	 * on and stores the complement. */
	acc = wire_pseudo_sum(family, src, dst, WIRE_IPPROTO_TCP,
			      (uint32_t)(hlen + seg->len));
	ck = (uint16_t)~wire_fold(acc);
	memcpy(buf + 16, &ck, 2);
	return hlen;
}
