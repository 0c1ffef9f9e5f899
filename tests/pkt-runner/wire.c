/*
 * wire.c — IPv4/TCP encode and decode for the packet-script runner.
 */
#include "wire.h"

#include <string.h>

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = v >> 8;
	p[1] = v & 0xff;
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v & 0xff;
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

uint16_t wire_csum(const void *buf, size_t len, uint32_t sum)
{
	const uint8_t *p = buf;

	while (len > 1) {
		sum += (uint32_t)(p[0] << 8 | p[1]);
		p += 2;
		len -= 2;
	}
	if (len)
		sum += (uint32_t)(p[0] << 8);
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/* The TCP pseudo-header sum (RFC 9293 §3.1), not yet folded. */
static uint32_t pseudo_sum(const uint8_t *src, const uint8_t *dst,
			   size_t tcplen)
{
	uint32_t sum = 0;

	sum += (uint32_t)(src[0] << 8 | src[1]) + (uint32_t)(src[2] << 8 | src[3]);
	sum += (uint32_t)(dst[0] << 8 | dst[1]) + (uint32_t)(dst[2] << 8 | dst[3]);
	sum += 6;
	sum += (uint32_t)tcplen;
	return sum;
}

int wire_encode_opts(const struct tcp_opt *o, int n, uint8_t *out)
{
	uint8_t tmp[64];
	int len = 0;

	for (int i = 0; i < n; i++) {
		const struct tcp_opt *x = &o[i];
		int need;

		switch (x->kind) {
		case OPT_EOL:
			need = 1;
			break;
		case OPT_NOP:
			need = 1;
			break;
		case OPT_MSS:
			need = 4;
			break;
		case OPT_WSCALE:
			need = 3;
			break;
		case OPT_SACKOK:
			need = 2;
			break;
		case OPT_SACK:
			need = 2 + 8 * x->nsack;
			break;
		case OPT_TS:
			need = 10;
			break;
		case OPT_GENERIC:
			need = 1 + x->nbytes;
			break;
		case OPT_RAW:
		default:
			need = x->nbytes;
			break;
		}
		if (len + need > 40)
			return -1;
		uint8_t *p = tmp + len;
		switch (x->kind) {
		case OPT_EOL:
			p[0] = 0;
			break;
		case OPT_NOP:
			p[0] = 1;
			break;
		case OPT_MSS:
			p[0] = 2;
			p[1] = 4;
			put16(p + 2, (uint16_t)x->val);
			break;
		case OPT_WSCALE:
			p[0] = 3;
			p[1] = 3;
			p[2] = (uint8_t)x->val;
			break;
		case OPT_SACKOK:
			p[0] = 4;
			p[1] = 2;
			break;
		case OPT_SACK:
			p[0] = 5;
			p[1] = (uint8_t)need;
			for (int b = 0; b < x->nsack; b++) {
				put32(p + 2 + 8 * b, x->sack[b][0]);
				put32(p + 6 + 8 * b, x->sack[b][1]);
			}
			break;
		case OPT_TS:
			p[0] = 8;
			p[1] = 10;
			put32(p + 2, x->val);
			put32(p + 6, x->ecr);
			break;
		case OPT_GENERIC:
			p[0] = x->bytes[0];
			p[1] = (uint8_t)need;
			memcpy(p + 2, x->bytes + 1, (size_t)x->nbytes - 1);
			break;
		case OPT_RAW:
		default:
			memcpy(p, x->bytes, (size_t)x->nbytes);
			break;
		}
		len += need;
	}
	while (len % 4) {
		if (len >= 40)
			return -1;
		tmp[len++] = 0; /* EOL padding */
	}
	memcpy(out, tmp, (size_t)len);
	return len;
}

size_t wire_build(uint8_t *buf, size_t cap, const struct seg *s,
		  uint16_t ip_id, const struct wire_damage *dmg)
{
	static const struct wire_damage none;
	uint8_t opts[40];
	int olen = wire_encode_opts(s->opts, s->nopts, opts);

	if (olen < 0)
		return 0;
	size_t tcplen = 20 + (size_t)olen + s->len;
	size_t total = 20 + tcplen;
	if (total > cap || total > 65535)
		return 0;

	uint8_t *ip = buf;
	if (!dmg)
		dmg = &none;
	memset(ip, 0, 20);
	ip[0] = 0x45;
	put16(ip + 2, (uint16_t)total);
	put16(ip + 4, ip_id);
	put16(ip + 6, dmg->frag ? 0x2000 : 0x4000); /* DF, as Linux sends */
	ip[8] = s->ttl ? s->ttl : 64;
	ip[9] = dmg->proto ? (uint8_t)dmg->proto : 6;
	memcpy(ip + 12, s->src, 4);
	memcpy(ip + 16, s->dst, 4);

	uint8_t *th = buf + 20;
	memset(th, 0, 20);
	put16(th, s->sport);
	put16(th + 2, s->dport);
	put32(th + 4, s->seq);
	put32(th + 8, s->ack);
	th[12] = (uint8_t)(((20 + olen) / 4) << 4);
	th[13] = s->flags;
	put16(th + 14, s->win);
	put16(th + 18, s->urp);
	memcpy(th + 20, opts, (size_t)olen);
	if (s->len)
		memcpy(th + 20 + olen, s->payload, s->len);
	uint16_t c = wire_csum(th, tcplen, pseudo_sum(s->src, s->dst, tcplen));
	if (dmg->tcp_csum)
		c ^= 0x5a5a;
	put16(th + 16, c);
	if (dmg->doff)
		th[12] = (uint8_t)(dmg->doff << 4);
	if (dmg->ip_version)
		ip[0] = (uint8_t)(dmg->ip_version << 4 | 5);
	if (dmg->truncate > 0 && (size_t)dmg->truncate < total) {
		total = (size_t)dmg->truncate;
		if (total >= 4)
			put16(ip + 2, (uint16_t)total);
	}
	if (total >= 20) {
		put16(ip + 10, 0);
		put16(ip + 10, wire_csum(ip, 20, 0));
		if (dmg->ip_csum)
			ip[10] ^= 0x5a;
	}
	return total;
}

static int parse_opts(const uint8_t *p, int len, struct seg *s)
{
	int i = 0;

	s->nopts = 0;
	while (i < len) {
		struct tcp_opt *o;
		uint8_t kind = p[i];
		uint8_t olen;

		if (s->nopts == MAX_OPTS)
			return -1;
		o = &s->opts[s->nopts];
		memset(o, 0, sizeof(*o));
		if (kind == 0) {
			o->kind = OPT_EOL;
			s->nopts++;
			/* The rest must be padding. */
			for (i++; i < len; i++)
				if (p[i] != 0)
					return -1;
			return 0;
		}
		if (kind == 1) {
			o->kind = OPT_NOP;
			s->nopts++;
			i++;
			continue;
		}
		if (i + 1 >= len)
			return -1;
		olen = p[i + 1];
		if (olen < 2 || i + olen > len)
			return -1;
		switch (kind) {
		case 2:
			if (olen != 4)
				return -1;
			o->kind = OPT_MSS;
			o->val = get16(p + i + 2);
			break;
		case 3:
			if (olen != 3)
				return -1;
			o->kind = OPT_WSCALE;
			o->val = p[i + 2];
			break;
		case 4:
			if (olen != 2)
				return -1;
			o->kind = OPT_SACKOK;
			break;
		case 5:
			if ((olen - 2) % 8 || olen < 10 ||
			    (olen - 2) / 8 > MAX_SACK_BLOCKS)
				return -1;
			o->kind = OPT_SACK;
			o->nsack = (olen - 2) / 8;
			for (int b = 0; b < o->nsack; b++) {
				o->sack[b][0] = get32(p + i + 2 + 8 * b);
				o->sack[b][1] = get32(p + i + 6 + 8 * b);
			}
			break;
		case 8:
			if (olen != 10)
				return -1;
			o->kind = OPT_TS;
			o->val = get32(p + i + 2);
			o->ecr = get32(p + i + 6);
			break;
		default:
			o->kind = OPT_GENERIC;
			o->bytes[0] = kind;
			memcpy(o->bytes + 1, p + i + 2, (size_t)olen - 2);
			o->nbytes = olen - 1;
			break;
		}
		s->nopts++;
		i += olen;
	}
	return 0;
}

int wire_parse(const uint8_t *pkt, size_t len, struct seg *s,
	       const char **why)
{
	memset(s, 0, sizeof(*s));
	if (len < 20 || (pkt[0] >> 4) != 4) {
		*why = "not an IPv4 packet";
		return -1;
	}
	size_t ihl = (size_t)(pkt[0] & 0xf) * 4;
	size_t total = get16(pkt + 2);
	if (ihl < 20 || total < ihl || total > len) {
		*why = "bad IPv4 header or total length";
		return -1;
	}
	if (pkt[9] != 6) {
		*why = "not TCP";
		return -1;
	}
	if ((get16(pkt + 6) & 0x3fff) != 0) {
		*why = "IPv4 fragment";
		return -1;
	}
	s->ip_csum_ok = wire_csum(pkt, ihl, 0) == 0;
	s->ttl = pkt[8];
	memcpy(s->src, pkt + 12, 4);
	memcpy(s->dst, pkt + 16, 4);
	const uint8_t *th = pkt + ihl;
	size_t tcplen = total - ihl;
	if (tcplen < 20) {
		*why = "TCP header truncated";
		return -1;
	}
	size_t off = (size_t)(th[12] >> 4) * 4;
	if (off < 20 || off > tcplen) {
		*why = "bad TCP data offset";
		return -1;
	}
	s->csum_ok =
		wire_csum(th, tcplen, pseudo_sum(s->src, s->dst, tcplen)) == 0;
	s->sport = get16(th);
	s->dport = get16(th + 2);
	s->seq = get32(th + 4);
	s->ack = get32(th + 8);
	s->flags = th[13];
	s->win = get16(th + 14);
	s->urp = get16(th + 18);
	s->opts_bad = parse_opts(th + 20, (int)off - 20, s) != 0;
	s->payload = th + off;
	s->len = tcplen - off;
	return 0;
}

char *wire_flags_str(uint8_t f, char *buf)
{
	char *p = buf;

	if (f & TH_SYN)
		*p++ = 'S';
	if (f & TH_FIN)
		*p++ = 'F';
	if (f & TH_RST)
		*p++ = 'R';
	if (f & TH_PSH)
		*p++ = 'P';
	if (f & TH_URG)
		*p++ = 'U';
	if (f & TH_ECE)
		*p++ = 'E';
	if (f & TH_CWR)
		*p++ = 'W';
	if (f & TH_ACK)
		*p++ = '.';
	if (p == buf)
		*p++ = '-'; /* no flags at all */
	*p = 0;
	return buf;
}

int wire_flags_parse(const char *s)
{
	int f = 0;

	if (strcmp(s, "-") == 0)
		return 0;
	for (; *s; s++) {
		switch (*s) {
		case 'S':
			f |= TH_SYN;
			break;
		case 'F':
			f |= TH_FIN;
			break;
		case 'R':
			f |= TH_RST;
			break;
		case 'P':
			f |= TH_PSH;
			break;
		case 'U':
			f |= TH_URG;
			break;
		case 'E':
			f |= TH_ECE;
			break;
		case 'W':
			f |= TH_CWR;
			break;
		case '.':
			f |= TH_ACK;
			break;
		default:
			return -1;
		}
	}
	return f;
}
