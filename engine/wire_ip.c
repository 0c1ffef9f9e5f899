/* wire_ip.c — IPv4/IPv6 headers and the internet checksum. */
#include "wire.h"

#include <string.h>
#include <sys/socket.h>

uint64_t
wire_sum(const void *data, size_t len, uint64_t acc)
{
	const uint8_t *p = data;

	/* 32-bit words summed into 64 bits fold to the same 16-bit
	 * one's-complement sum (2^16 = 1 mod 0xffff). */
	while (len >= 4) {
		uint32_t w;

		memcpy(&w, p, 4);
		acc += w;
		p += 4;
		len -= 4;
	}
	if (len >= 2) {
		uint16_t w;

		memcpy(&w, p, 2);
		acc += w;
		p += 2;
		len -= 2;
	}
	if (len != 0) {
		uint8_t b[2] = {p[0], 0};
		uint16_t w;

		memcpy(&w, b, 2);
		acc += w;
	}
	return acc;
}

uint16_t
wire_fold(uint64_t acc)
{
	while (acc >> 16)
		acc = (acc & 0xffff) + (acc >> 16);
	return (uint16_t)~acc;
}

uint64_t
wire_pseudo_sum(uint8_t family, const uint8_t *src, const uint8_t *dst,
		uint8_t proto, uint32_t len)
{
	uint8_t tail[8];
	size_t alen = family == AF_INET6 ? 16 : 4;
	uint64_t acc = 0;

	acc = wire_sum(src, alen, acc);
	acc = wire_sum(dst, alen, acc);
	if (family == AF_INET6) {
		/* RFC 8200 8.1: 32-bit length, 3 zero bytes, next header. */
		tail[0] = (uint8_t)(len >> 24);
		tail[1] = (uint8_t)(len >> 16);
		tail[2] = (uint8_t)(len >> 8);
		tail[3] = (uint8_t)len;
		tail[4] = tail[5] = tail[6] = 0;
		tail[7] = proto;
		return wire_sum(tail, 8, acc);
	}
	tail[0] = 0;
	tail[1] = proto;
	tail[2] = (uint8_t)(len >> 8);
	tail[3] = (uint8_t)len;
	return wire_sum(tail, 4, acc);
}

static uint16_t
get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static int
parse_ip4(const uint8_t *pkt, size_t len, struct wire_ip *ip)
{
	size_t hlen, total;
	uint16_t frag;

	if (len < WIRE_IP4_HLEN)
		return UTCP_STAT_drop_ip_short;
	hlen = (size_t)(pkt[0] & 0x0f) * 4;
	total = get16(pkt + 2);
	if (hlen < WIRE_IP4_HLEN || hlen > len || total < hlen || total > len)
		return UTCP_STAT_drop_ip_bad_header;
	if (wire_fold(wire_sum(pkt, hlen, 0)) != 0)
		return UTCP_STAT_drop_ip_bad_checksum;
	/* No reassembly: MF set or a non-zero offset is a fragment. */
	frag = get16(pkt + 6);
	if ((frag & 0x2000) != 0 || (frag & 0x1fff) != 0)
		return UTCP_STAT_drop_ip_fragment;
	ip->family = AF_INET;
	ip->tos = pkt[1];
	ip->ttl = pkt[8];
	ip->proto = pkt[9];
	memset(ip->src, 0, sizeof(ip->src));
	memset(ip->dst, 0, sizeof(ip->dst));
	memcpy(ip->src, pkt + 12, 4);
	memcpy(ip->dst, pkt + 16, 4);
	/* Bytes past the total length (link padding) are not ours. */
	ip->payload = pkt + hlen;
	ip->payload_len = total - hlen;
	return 0;
}

static int
parse_ip6(const uint8_t *pkt, size_t len, struct wire_ip *ip)
{
	size_t plen, off;
	uint8_t nh;
	int hops;

	if (len < WIRE_IP6_HLEN)
		return UTCP_STAT_drop_ip_short;
	plen = get16(pkt + 4);
	if (WIRE_IP6_HLEN + plen > len)
		return UTCP_STAT_drop_ip_bad_header;
	ip->family = AF_INET6;
	ip->tos = (uint8_t)((get16(pkt) >> 4) & 0xff);
	ip->ttl = pkt[7];
	memcpy(ip->src, pkt + 8, 16);
	memcpy(ip->dst, pkt + 24, 16);
	nh = pkt[6];
	off = WIRE_IP6_HLEN;
	len = WIRE_IP6_HLEN + plen;
	/* Walk a bounded chain of extension headers (RFC 8200 4). */
	for (hops = 0; hops < 8; hops++) {
		size_t elen;

		if (nh == 44)
			return UTCP_STAT_drop_ip_fragment;
		if (nh != 0 && nh != 43 && nh != 60)
			break;
		if (off + 8 > len)
			return UTCP_STAT_drop_ip_bad_header;
		elen = ((size_t)pkt[off + 1] + 1) * 8;
		if (off + elen > len)
			return UTCP_STAT_drop_ip_bad_header;
		nh = pkt[off];
		off += elen;
	}
	if (hops == 8)
		return UTCP_STAT_drop_ip_bad_header;
	ip->proto = nh;
	ip->payload = pkt + off;
	ip->payload_len = len - off;
	return 0;
}

int
wire_ip_parse(const uint8_t *pkt, size_t len, struct wire_ip *ip)
{
	if (len < 1)
		return UTCP_STAT_drop_ip_short;
	switch (pkt[0] >> 4) {
	case 4:
		return parse_ip4(pkt, len, ip);
	case 6:
		return parse_ip6(pkt, len, ip);
	default:
		return UTCP_STAT_drop_ip_version;
	}
}

size_t
wire_ip_hlen(uint8_t family)
{
	return family == AF_INET6 ? WIRE_IP6_HLEN : WIRE_IP4_HLEN;
}

size_t
wire_ip_emit(uint8_t *buf, uint8_t family, const uint8_t *src,
	     const uint8_t *dst, uint8_t tos, uint8_t ttl, uint16_t id,
	     size_t payload_len)
{
	uint16_t ck;

	if (family == AF_INET6) {
		buf[0] = (uint8_t)(0x60 | tos >> 4);
		buf[1] = (uint8_t)(tos << 4);
		buf[2] = buf[3] = 0;
		buf[4] = (uint8_t)(payload_len >> 8);
		buf[5] = (uint8_t)payload_len;
		buf[6] = WIRE_IPPROTO_TCP;
		buf[7] = ttl;
		memcpy(buf + 8, src, 16);
		memcpy(buf + 24, dst, 16);
		return WIRE_IP6_HLEN;
	}
	size_t total = WIRE_IP4_HLEN + payload_len;

	buf[0] = 0x45;
	buf[1] = tos;
	buf[2] = (uint8_t)(total >> 8);
	buf[3] = (uint8_t)total;
	buf[4] = (uint8_t)(id >> 8);
	buf[5] = (uint8_t)id;
	buf[6] = 0x40; /* DF: we do path MTU by MSS, never fragment */
	buf[7] = 0;
	buf[8] = ttl;
	buf[9] = WIRE_IPPROTO_TCP;
	buf[10] = buf[11] = 0;
	memcpy(buf + 12, src, 4);
	memcpy(buf + 16, dst, 4);
	ck = wire_fold(wire_sum(buf, WIRE_IP4_HLEN, 0));
	memcpy(buf + 10, &ck, 2);
	return WIRE_IP4_HLEN;
}
