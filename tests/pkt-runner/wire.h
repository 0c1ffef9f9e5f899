/*
 * wire.h — IPv4/TCP segments for the packet-script runner and the
 * packetdrill driver: build an inbound packet from fields, parse an outbound
 * one back into fields, and print either in script notation.
 *
 * Sequence numbers here are absolute (live); the runner translates them to
 * and from the script's relative numbers.
 */
#ifndef PKT_WIRE_H
#define PKT_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TH_FIN 0x01
#define TH_SYN 0x02
#define TH_RST 0x04
#define TH_PSH 0x08
#define TH_ACK 0x10
#define TH_URG 0x20
#define TH_ECE 0x40
#define TH_CWR 0x80

enum opt_kind {
	OPT_EOL,
	OPT_NOP,
	OPT_MSS,
	OPT_WSCALE,
	OPT_SACKOK,
	OPT_SACK,
	OPT_TS,
	OPT_GENERIC, /* kind + data bytes, length byte computed */
	OPT_RAW,     /* bytes copied verbatim (may be malformed) */
};

#define MAX_SACK_BLOCKS 4
#define MAX_OPTS 20

struct tcp_opt {
	enum opt_kind kind;
	uint32_t val;                       /* mss, wscale; TS val */
	uint32_t ecr;                       /* TS ecr */
	uint32_t sack[MAX_SACK_BLOCKS][2]; /* left, right */
	int nsack;
	uint8_t bytes[40]; /* GENERIC: [0] = kind, data after; RAW: all */
	int nbytes;
};

struct seg {
	uint8_t src[4], dst[4];
	uint16_t sport, dport;
	uint32_t seq, ack;
	uint8_t flags;
	uint16_t win;
	uint16_t urp;
	uint8_t ttl;
	struct tcp_opt opts[MAX_OPTS];
	int nopts;
	const uint8_t *payload;
	size_t len;
	/* Parse results. */
	bool opts_bad;
	bool csum_ok;
	bool ip_csum_ok;
};

/* Deliberate damage for drop tests (all zero: a well-formed packet). */
struct wire_damage {
	bool tcp_csum;   /* corrupt the TCP checksum */
	bool ip_csum;    /* corrupt the IPv4 header checksum */
	bool frag;       /* set More Fragments */
	int proto;       /* IP protocol instead of 6 (0: TCP) */
	int doff;        /* TCP data offset in words instead of the real one */
	int truncate;    /* cut the packet to this many bytes (IP total too) */
	int ip_version;  /* version nibble instead of 4 */
};

/* Build an IPv4/TCP packet; returns its length or 0 if cap is too small.
 * ip_id is the IP identification; dmg may be NULL. */
size_t wire_build(uint8_t *buf, size_t cap, const struct seg *s,
		  uint16_t ip_id, const struct wire_damage *dmg);
/* Parse an IPv4/TCP packet. Returns 0, or -1 with a reason in *why. The
 * payload points into pkt. */
int wire_parse(const uint8_t *pkt, size_t len, struct seg *s,
	       const char **why);
/* Encode options, padded with EOL to a multiple of 4. Returns the length
 * or -1 if they do not fit in 40 bytes. */
int wire_encode_opts(const struct tcp_opt *o, int n, uint8_t *out);

/* The Internet checksum over buf, folded with an initial partial sum. */
uint16_t wire_csum(const void *buf, size_t len, uint32_t sum);

/* "S.", "P.", "F.", "R", ".". Returns buf. */
char *wire_flags_str(uint8_t flags, char *buf);
/* Parse packetdrill flag letters; -1 on an unknown letter. */
int wire_flags_parse(const char *s);

#endif
