/*
 * wire.h — raw bytes ⇄ validated structs for IPv4, IPv6 and TCP.
 *
 * Parsers return 0 for a packet the state machine may look at, or the
 * UTCP_STAT_drop_* counter that names why it must be dropped (never 0:
 * counter 0 is ip_in). Nothing past a parser reads unvalidated bytes.
 * Emitters write into a caller buffer and fill in every checksum.
 */
#ifndef UTCP_WIRE_H
#define UTCP_WIRE_H

#include "utcp.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WIRE_IP4_HLEN 20
#define WIRE_IP6_HLEN 40
#define WIRE_TCP_HLEN 20
#define WIRE_TCP_MAXOPT 40
#define WIRE_IPPROTO_TCP 6
#define WIRE_IPPROTO_ICMP 1
#define WIRE_IPPROTO_ICMPV6 58

/* TCP header flags (RFC 9293 3.1). */
#define TH_FIN 0x01
#define TH_SYN 0x02
#define TH_RST 0x04
#define TH_PSH 0x08
#define TH_ACK 0x10
#define TH_URG 0x20
#define TH_ECE 0x40
#define TH_CWR 0x80

/* TCP option kinds. */
#define TCPOPT_EOL 0
#define TCPOPT_NOP 1
#define TCPOPT_MSS 2
#define TCPOPT_WSCALE 3
#define TCPOPT_SACK_PERM 4
#define TCPOPT_SACK 5
#define TCPOPT_TS 8

#define WIRE_MAX_SACK 4
#define WIRE_MAX_WSCALE 14 /* RFC 7323 2.3 */

/* A validated IP header. Addresses are in network byte order. */
struct wire_ip {
	uint8_t family; /* AF_INET or AF_INET6 */
	uint8_t proto;
	uint8_t tos; /* IPv4 TOS or IPv6 traffic class */
	uint8_t ttl;
	uint8_t src[16], dst[16];
	const uint8_t *payload;
	size_t payload_len;
};

/* Which options a segment carries. */
#define WOPT_MSS 0x01
#define WOPT_WSCALE 0x02
#define WOPT_SACK_PERM 0x04
#define WOPT_TS 0x08
#define WOPT_SACK 0x10

struct wire_sack {
	uint32_t left, right;
};

struct wire_tcp_opts {
	uint8_t present; /* WOPT_* */
	uint8_t wscale;
	uint8_t nsack;
	uint16_t mss;
	uint32_t tsval, tsecr;
	struct wire_sack sack[WIRE_MAX_SACK];
};

/* A validated TCP segment. */
struct wire_tcp {
	uint16_t sport, dport; /* host order */
	uint32_t seq, ack;
	uint8_t flags;
	uint16_t wnd, urp;
	struct wire_tcp_opts opt;
	const uint8_t *data;
	uint32_t len; /* payload bytes */
};

/* Internet checksum (RFC 1071). Sums are kept in native byte order; the
 * folded complement stored with memcpy is right on the wire. */
uint64_t wire_sum(const void *data, size_t len, uint64_t acc);
uint16_t wire_fold(uint64_t acc); /* ~sum, ready to store */
/* Sum of the TCP pseudo-header (RFC 9293 3.1, RFC 8200 8.1). */
uint64_t wire_pseudo_sum(uint8_t family, const uint8_t *src, const uint8_t *dst,
			 uint8_t proto, uint32_t len);

int wire_ip_parse(const uint8_t *pkt, size_t len, struct wire_ip *ip);
int wire_tcp_parse(const struct wire_ip *ip, struct wire_tcp *seg);
/* The same with the link's UTCP_IN_* flags: UTCP_IN_CSUM_OK skips the
 * checksum. */
int wire_tcp_parse_ex(const struct wire_ip *ip, struct wire_tcp *seg,
		      unsigned link_flags);
/* Options only (data offset already checked): 0 or drop_tcp_bad_options. */
int wire_tcp_parse_opts(const uint8_t *p, size_t len, struct wire_tcp_opts *o);

/* IP header length for a family (20 or 40). */
size_t wire_ip_hlen(uint8_t family);
/* Write an IP header at buf for a payload of payload_len bytes. For IPv4,
 * id is the identification field and DF is set. Returns header length. */
size_t wire_ip_emit(uint8_t *buf, uint8_t family, const uint8_t *src,
		    const uint8_t *dst, uint8_t tos, uint8_t ttl, uint16_t id,
		    size_t payload_len);
/* Write options in Linux's layout (MSS, SACK-permitted, timestamps, NOP,
 * window scale; NOP NOP SACK blocks), padded to 4 bytes; returns length. */
size_t wire_tcp_opts_emit(uint8_t *p, const struct wire_tcp_opts *o);
/* Length wire_tcp_opts_emit will produce. */
size_t wire_tcp_opts_len(const struct wire_tcp_opts *o);
/* Write a TCP header with options at buf; the payload (len bytes) must
 * already sit right after where the options end. Fills the checksum.
 * Returns header length. */
size_t wire_tcp_emit(uint8_t *buf, const struct wire_tcp *seg, uint8_t family,
		     const uint8_t *src, const uint8_t *dst);
/* The same with the payload elsewhere (seg->len bytes, not read) and the
 * checksum left partial: the folded pseudo-header sum, for a link that
 * completes it (UTCP_OFFLOAD_TX_CSUM). */
size_t wire_tcp_emit_partial(uint8_t *buf, const struct wire_tcp *seg,
			     uint8_t family, const uint8_t *src,
			     const uint8_t *dst);

#endif
