/*
 * test_wire.c — parse/emit round trips, checksum vectors, and malformed
 * packets of every kind: each one dropped with its named counter and a
 * UTCP_EV_DROP event, never a crash.
 */
#include "check.h"
#include "utcp.h"
#include "wire.h"

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static const uint8_t ip_a[4] = {10, 0, 0, 1}, ip_b[4] = {10, 0, 0, 2};
static uint8_t ip6_a[16] = {0xfd, [15] = 1}, ip6_b[16] = {0xfd, [15] = 2};

static void
test_checksum_vectors(void)
{
	/* RFC 1071 4.1: the sum of these words is ddf2, checksum 220d. */
	static const uint8_t v[] = {0x00, 0x01, 0xf2, 0x03,
				    0xf4, 0xf5, 0xf6, 0xf7};
	/* A real IPv4 header with its checksum b861. */
	static const uint8_t h[20] = {0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40,
				      0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
				      0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7};
	uint8_t h2[20];
	uint16_t ck;
	uint8_t b[2];

	ck = wire_fold(wire_sum(v, sizeof(v), 0));
	memcpy(b, &ck, 2);
	CHECK_EQ(b[0], 0x22);
	CHECK_EQ(b[1], 0x0d);
	CHECK_EQ(wire_fold(wire_sum(h, sizeof(h), 0)), 0);
	memcpy(h2, h, 20);
	h2[10] = h2[11] = 0;
	ck = wire_fold(wire_sum(h2, 20, 0));
	memcpy(b, &ck, 2);
	CHECK_EQ(b[0], 0xb8);
	CHECK_EQ(b[1], 0x61);
	/* Odd length: the last byte is padded with zero. */
	{
		static const uint8_t o[3] = {0x12, 0x34, 0x56};
		static const uint8_t e[4] = {0x12, 0x34, 0x56, 0x00};

		CHECK_EQ(wire_fold(wire_sum(o, 3, 0)),
			 wire_fold(wire_sum(e, 4, 0)));
	}
	/* Split sums at even offsets equal the whole. */
	CHECK_EQ(wire_fold(wire_sum(v + 4, 4, wire_sum(v, 4, 0))),
		 wire_fold(wire_sum(v, 8, 0)));
}

/* Build a full IPv4 or IPv6 TCP packet. */
static size_t
build(uint8_t *buf, uint8_t fam, const struct wire_tcp *seg)
{
	const uint8_t *src = fam == AF_INET ? ip_a : ip6_a;
	const uint8_t *dst = fam == AF_INET ? ip_b : ip6_b;
	size_t iph = wire_ip_hlen(fam);
	size_t olen = wire_tcp_opts_len(&seg->opt);
	size_t tl = WIRE_TCP_HLEN + olen + seg->len;

	if (seg->len)
		memcpy(buf + iph + WIRE_TCP_HLEN + olen, seg->data, seg->len);
	CHECK_EQ(wire_tcp_emit(buf + iph, seg, fam, src, dst),
		 WIRE_TCP_HLEN + olen);
	CHECK_EQ(wire_ip_emit(buf, fam, src, dst, 0x28, 64, 7, tl), iph);
	return iph + tl;
}

static void
roundtrip(uint8_t fam, uint8_t present, uint8_t nsack, uint32_t dlen)
{
	uint8_t buf[2048], data[1500];
	struct wire_tcp seg, got;
	struct wire_ip ip;
	size_t len;

	for (uint32_t i = 0; i < dlen; i++)
		data[i] = (uint8_t)(i * 7);
	memset(&seg, 0, sizeof(seg));
	seg.sport = 12345;
	seg.dport = 80;
	seg.seq = 0xdeadbeef;
	seg.ack = 0x01020304;
	seg.flags = TH_ACK | TH_PSH;
	seg.wnd = 4321;
	seg.urp = 0;
	seg.data = data;
	seg.len = dlen;
	seg.opt.present = present;
	seg.opt.mss = 1460;
	seg.opt.wscale = 7;
	seg.opt.tsval = 0x11223344;
	seg.opt.tsecr = 0x55667788;
	seg.opt.nsack = nsack;
	for (int i = 0; i < nsack; i++) {
		seg.opt.sack[i].left = 1000u * (uint32_t)i;
		seg.opt.sack[i].right = 1000u * (uint32_t)i + 500;
	}
	len = build(buf, fam, &seg);
	CHECK_EQ(wire_ip_parse(buf, len, &ip), 0);
	CHECK_EQ(ip.family, fam);
	CHECK_EQ(ip.proto, WIRE_IPPROTO_TCP);
	CHECK_EQ(ip.tos, 0x28);
	CHECK_EQ(ip.ttl, 64);
	CHECK_EQ(wire_tcp_parse(&ip, &got), 0);
	CHECK_EQ(got.sport, 12345);
	CHECK_EQ(got.dport, 80);
	CHECK_EQ(got.seq, 0xdeadbeef);
	CHECK_EQ(got.ack, 0x01020304);
	CHECK_EQ(got.flags, TH_ACK | TH_PSH);
	CHECK_EQ(got.wnd, 4321);
	CHECK_EQ(got.len, dlen);
	CHECK(dlen == 0 || memcmp(got.data, data, dlen) == 0);
	CHECK_EQ(got.opt.present, present);
	if (present & WOPT_MSS)
		CHECK_EQ(got.opt.mss, 1460);
	if (present & WOPT_WSCALE)
		CHECK_EQ(got.opt.wscale, 7);
	if (present & WOPT_TS) {
		CHECK_EQ(got.opt.tsval, 0x11223344);
		CHECK_EQ(got.opt.tsecr, 0x55667788);
	}
	if (present & WOPT_SACK) {
		CHECK_EQ(got.opt.nsack, nsack);
		for (int i = 0; i < nsack; i++) {
			CHECK_EQ(got.opt.sack[i].left, 1000u * (uint32_t)i);
			CHECK_EQ(got.opt.sack[i].right,
				 1000u * (uint32_t)i + 500);
		}
	}
}

static void
test_roundtrips(void)
{
	static const uint8_t sets[] = {
	    0,
	    WOPT_MSS,
	    WOPT_MSS | WOPT_WSCALE | WOPT_SACK_PERM | WOPT_TS,
	    WOPT_MSS | WOPT_SACK_PERM,
	    WOPT_MSS | WOPT_WSCALE,
	    WOPT_TS,
	    WOPT_SACK_PERM | WOPT_WSCALE,
	};

	for (size_t i = 0; i < sizeof(sets); i++) {
		roundtrip(AF_INET, sets[i], 0, 0);
		roundtrip(AF_INET, sets[i], 0, 1);
		roundtrip(AF_INET6, sets[i], 0, 1000);
	}
	for (uint8_t n = 1; n <= 3; n++) {
		roundtrip(AF_INET, WOPT_TS | WOPT_SACK, n, 100);
		roundtrip(AF_INET6, WOPT_TS | WOPT_SACK, n, 7);
	}
	roundtrip(AF_INET, WOPT_SACK, 4, 1);
}

/* Linux's SYN layout: MSS, SACK-permitted+TS, NOP, WS = 20 bytes. */
static void
test_linux_layout(void)
{
	struct wire_tcp_opts o;
	uint8_t b[40];
	static const uint8_t syn[20] = {2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0,
					0, 1, 0, 0,    0, 0, 1, 3,  3, 7};
	static const uint8_t nots[12] = {2, 4, 5, 0xb4, 1, 1, 4, 2, 1, 3, 3, 7};
	static const uint8_t data[24] = {1, 1, 8, 10, 0, 0, 0, 9, 0, 0, 0, 8,
					 1, 1, 5, 10, 0, 0, 0, 1, 0, 0, 0, 2};

	memset(&o, 0, sizeof(o));
	o.present = WOPT_MSS | WOPT_SACK_PERM | WOPT_TS | WOPT_WSCALE;
	o.mss = 1460;
	o.wscale = 7;
	o.tsval = 1;
	CHECK_EQ(wire_tcp_opts_emit(b, &o), 20);
	CHECK(memcmp(b, syn, 20) == 0);
	o.present = WOPT_MSS | WOPT_SACK_PERM | WOPT_WSCALE;
	CHECK_EQ(wire_tcp_opts_emit(b, &o), 12);
	CHECK(memcmp(b, nots, 12) == 0);
	memset(&o, 0, sizeof(o));
	o.present = WOPT_TS | WOPT_SACK;
	o.tsval = 9;
	o.tsecr = 8;
	o.nsack = 1;
	o.sack[0].left = 1;
	o.sack[0].right = 2;
	CHECK_EQ(wire_tcp_opts_emit(b, &o), 24);
	CHECK(memcmp(b, data, 24) == 0);
}

static void
test_options_parse(void)
{
	struct wire_tcp_opts o;

	/* EOL ends parsing; what follows is ignored. */
	{
		static const uint8_t p[] = {1, 0, 2, 1};

		CHECK_EQ(wire_tcp_parse_opts(p, sizeof(p), &o), 0);
		CHECK_EQ(o.present, 0);
	}
	/* A length byte missing, zero, one, or past the end. */
	{
		static const uint8_t p1[] = {1, 1, 1, 2};
		static const uint8_t p2[] = {8, 0, 1, 1};
		static const uint8_t p3[] = {8, 1, 1, 1};
		static const uint8_t p4[] = {2, 4, 5};
		static const uint8_t p5[] = {99, 5, 0, 0};

		CHECK_EQ(wire_tcp_parse_opts(p1, sizeof(p1), &o),
			 UTCP_STAT_drop_tcp_bad_options);
		CHECK_EQ(wire_tcp_parse_opts(p2, sizeof(p2), &o),
			 UTCP_STAT_drop_tcp_bad_options);
		CHECK_EQ(wire_tcp_parse_opts(p3, sizeof(p3), &o),
			 UTCP_STAT_drop_tcp_bad_options);
		CHECK_EQ(wire_tcp_parse_opts(p4, sizeof(p4), &o),
			 UTCP_STAT_drop_tcp_bad_options);
		CHECK_EQ(wire_tcp_parse_opts(p5, sizeof(p5), &o),
			 UTCP_STAT_drop_tcp_bad_options);
	}
	/* Known options of the wrong size are skipped (Linux), unknown
	 * ones stepped over. */
	{
		static const uint8_t p[] = {2, 3, 5, 3, 4, 7, 4, 99,
					    4, 0, 0, 3, 3, 9, 0};

		CHECK_EQ(wire_tcp_parse_opts(p, sizeof(p), &o), 0);
		CHECK_EQ(o.present, WOPT_WSCALE);
		CHECK_EQ(o.wscale, 9);
	}
	/* A window shift above 14 means 14 (RFC 7323 2.3). */
	{
		static const uint8_t p[] = {3, 3, 200, 0};

		CHECK_EQ(wire_tcp_parse_opts(p, sizeof(p), &o), 0);
		CHECK_EQ(o.wscale, 14);
	}
	/* SACK: lengths that are not 2 + 8n are ignored. */
	{
		uint8_t p[40] = {5, 11};

		CHECK_EQ(wire_tcp_parse_opts(p, 12, &o), 0);
		CHECK_EQ(o.present, 0);
		p[1] = 34;
		CHECK_EQ(wire_tcp_parse_opts(p, 40, &o), 0);
		CHECK_EQ(o.present, WOPT_SACK);
		CHECK_EQ(o.nsack, 4);
	}
}

/* ---- utcp_input on a stack: drops by name ---- */

static struct {
	uint8_t pkt[2048];
	size_t len;
	unsigned n;
} out;
static unsigned drop_events;
static uint32_t last_drop;

static void
cap_output(void *ctx, const uint8_t *pkt, size_t len)
{
	(void)ctx;
	memcpy(out.pkt, pkt, len < sizeof(out.pkt) ? len : sizeof(out.pkt));
	out.len = len;
	out.n++;
}

static void
cap_event(void *ctx, const struct utcp_event *ev)
{
	(void)ctx;
	if (ev->type == UTCP_EV_DROP) {
		drop_events++;
		last_drop = ev->arg;
	}
}

static struct utcp_stack *
new_stack(void)
{
	struct utcp_config cfg;

	utcp_config_defaults(&cfg);
	cfg.local4.family = AF_INET;
	memcpy(cfg.local4.ip, ip_b, 4);
	cfg.local6.family = AF_INET6;
	memcpy(cfg.local6.ip, ip6_b, 16);
	cfg.output = cap_output;
	cfg.event = cap_event;
	cfg.seed = 42;
	return utcp_stack_new(&cfg);
}

static void
expect_drop(struct utcp_stack *st, const uint8_t *pkt, size_t len, int stat)
{
	uint64_t before = utcp_stats(st)[stat];
	unsigned ev = drop_events;

	utcp_input(st, pkt, len, UTCP_SEC(1));
	CHECK_EQ(utcp_stats(st)[stat], before + 1);
	CHECK_EQ(drop_events, ev + 1);
	CHECK_EQ(last_drop, (uint32_t)stat);
}

static size_t
good_syn(uint8_t *buf, uint8_t fam)
{
	struct wire_tcp seg;

	memset(&seg, 0, sizeof(seg));
	seg.sport = 40000;
	seg.dport = 9;
	seg.seq = 100;
	seg.flags = TH_SYN;
	seg.wnd = 65535;
	seg.opt.present = WOPT_MSS;
	seg.opt.mss = 1460;
	return build(buf, fam, &seg);
}

static void
refix_ip4(uint8_t *b)
{
	uint16_t ck;

	b[10] = b[11] = 0;
	ck = wire_fold(wire_sum(b, (size_t)(b[0] & 15) * 4, 0));
	memcpy(b + 10, &ck, 2);
}

static void
test_malformed_ip(void)
{
	struct utcp_stack *st = new_stack();
	uint8_t b[256], m[256];
	size_t len = good_syn(b, AF_INET);

	/* Every truncation is dropped. */
	for (size_t l = 0; l < len; l++) {
		uint64_t before = utcp_stats(st)[UTCP_STAT_tcp_in];

		utcp_input(st, b, l, UTCP_SEC(1));
		CHECK_EQ(utcp_stats(st)[UTCP_STAT_tcp_in], before);
	}
	expect_drop(st, b, 0, UTCP_STAT_drop_ip_short);
	expect_drop(st, b, 19, UTCP_STAT_drop_ip_short);
	expect_drop(st, b, len - 1, UTCP_STAT_drop_ip_bad_header);
	memcpy(m, b, len);
	m[0] = 0x55;
	expect_drop(st, m, len, UTCP_STAT_drop_ip_version);
	memcpy(m, b, len);
	m[0] = 0x44; /* IHL 16 bytes */
	refix_ip4(m);
	expect_drop(st, m, len, UTCP_STAT_drop_ip_bad_header);
	memcpy(m, b, len);
	m[0] = 0x4f; /* IHL 60 > total */
	expect_drop(st, m, len, UTCP_STAT_drop_ip_bad_header);
	memcpy(m, b, len);
	m[3] = 10; /* total < header */
	refix_ip4(m);
	expect_drop(st, m, len, UTCP_STAT_drop_ip_bad_header);
	memcpy(m, b, len);
	m[11] ^= 1;
	expect_drop(st, m, len, UTCP_STAT_drop_ip_bad_checksum);
	memcpy(m, b, len);
	m[6] = 0x20; /* MF */
	refix_ip4(m);
	expect_drop(st, m, len, UTCP_STAT_drop_ip_fragment);
	memcpy(m, b, len);
	m[6] = 0x00;
	m[7] = 0x10; /* offset */
	refix_ip4(m);
	expect_drop(st, m, len, UTCP_STAT_drop_ip_fragment);
	memcpy(m, b, len);
	m[19] = 99; /* not our address */
	refix_ip4(m);
	expect_drop(st, m, len, UTCP_STAT_drop_ip_not_ours);
	memcpy(m, b, len);
	m[9] = 17; /* UDP */
	refix_ip4(m);
	expect_drop(st, m, len, UTCP_STAT_drop_ip_proto);
	memcpy(m, b, len);
	m[12] = 224; /* multicast source */
	refix_ip4(m);
	expect_drop(st, m, len, UTCP_STAT_drop_ip_bad_src);
	/* Link padding past the total length is ignored. */
	memcpy(m, b, len);
	memset(m + len, 0xee, 6);
	{
		uint64_t before = utcp_stats(st)[UTCP_STAT_tcp_in];

		utcp_input(st, m, len + 6, UTCP_SEC(1));
		CHECK_EQ(utcp_stats(st)[UTCP_STAT_tcp_in], before + 1);
	}
	utcp_stack_free(st);
}

static void
test_malformed_ip6(void)
{
	struct utcp_stack *st = new_stack();
	uint8_t b[256], m[256];
	size_t len = good_syn(b, AF_INET6);
	uint64_t before;

	before = utcp_stats(st)[UTCP_STAT_tcp_in];
	utcp_input(st, b, len, UTCP_SEC(1));
	CHECK_EQ(utcp_stats(st)[UTCP_STAT_tcp_in], before + 1);
	expect_drop(st, b, 39, UTCP_STAT_drop_ip_short);
	expect_drop(st, b, len - 1, UTCP_STAT_drop_ip_bad_header);
	/* A hop-by-hop header in front of TCP is walked over. */
	memcpy(m, b, 40);
	m[6] = 0;
	m[40] = 6;
	m[41] = 0;
	memset(m + 42, 0, 6);
	m[42] = 1; /* PadN */
	m[43] = 4;
	memcpy(m + 48, b + 40, len - 40);
	m[5] = (uint8_t)(b[5] + 8);
	before = utcp_stats(st)[UTCP_STAT_tcp_in];
	utcp_input(st, m, len + 8, UTCP_SEC(1));
	CHECK_EQ(utcp_stats(st)[UTCP_STAT_tcp_in], before + 1);
	/* A fragment header is not reassembled. */
	m[40] = 44;
	m[48 + 0] = 6;
	expect_drop(st, m, len + 8, UTCP_STAT_drop_ip_fragment);
	/* An extension header running past the packet. */
	m[40] = 6;
	m[41] = 200;
	expect_drop(st, m, len + 8, UTCP_STAT_drop_ip_bad_header);
	memcpy(m, b, len);
	m[6] = 17; /* UDP */
	expect_drop(st, m, len, UTCP_STAT_drop_ip_proto);
	/* ICMPv6 whose checksum (a TCP SYN's bytes) does not hold */
	m[6] = 58;
	expect_drop(st, m, len, UTCP_STAT_drop_icmp_bad);
	utcp_stack_free(st);
}

static void
test_malformed_tcp(void)
{
	struct utcp_stack *st = new_stack();
	uint8_t b[256], m[256];
	struct wire_tcp seg;
	size_t len;

	len = good_syn(b, AF_INET);
	/* An IP packet whose TCP header is cut short. */
	memcpy(m, b, len);
	m[2] = 0;
	m[3] = 20 + 10;
	refix_ip4(m);
	expect_drop(st, m, 30, UTCP_STAT_drop_tcp_short);
	memcpy(m, b, len);
	m[32] = 0x40; /* offset 4 */
	expect_drop(st, m, len, UTCP_STAT_drop_tcp_bad_offset);
	memcpy(m, b, len);
	m[32] = 0xf0; /* offset 60 > segment */
	expect_drop(st, m, len, UTCP_STAT_drop_tcp_bad_offset);
	memcpy(m, b, len);
	m[36] ^= 0xff;
	expect_drop(st, m, len, UTCP_STAT_drop_tcp_bad_checksum);
	/* Bad option length, with a correct checksum. */
	memset(&seg, 0, sizeof(seg));
	seg.sport = 40000;
	seg.dport = 9;
	seg.flags = TH_SYN;
	seg.opt.present = WOPT_MSS;
	seg.opt.mss = 1460;
	len = build(m, AF_INET, &seg);
	m[41] = 9; /* MSS option claims 9 bytes */
	{
		uint16_t ck;

		m[36] = m[37] = 0;
		ck = wire_fold(wire_sum(m + 20, len - 20,
					wire_pseudo_sum(AF_INET, ip_a, ip_b, 6,
							(uint32_t)(len - 20))));
		memcpy(m + 36, &ck, 2);
	}
	expect_drop(st, m, len, UTCP_STAT_drop_tcp_bad_options);
	/* Impossible flags and port 0. */
	seg.opt.present = 0;
	seg.flags = TH_SYN | TH_FIN;
	len = build(m, AF_INET, &seg);
	expect_drop(st, m, len, UTCP_STAT_drop_tcp_bad_flags);
	seg.flags = TH_SYN | TH_RST;
	len = build(m, AF_INET, &seg);
	expect_drop(st, m, len, UTCP_STAT_drop_tcp_bad_flags);
	seg.flags = TH_SYN;
	seg.sport = 0;
	len = build(m, AF_INET, &seg);
	expect_drop(st, m, len, UTCP_STAT_drop_tcp_bad_port);
	utcp_stack_free(st);
}

/* RFC 9293 3.10.7.1: what a closed port answers. */
static void
test_rst_no_socket(void)
{
	struct utcp_stack *st = new_stack();
	uint8_t m[256];
	struct wire_tcp seg, got;
	struct wire_ip ip;
	size_t len;

	memset(&seg, 0, sizeof(seg));
	seg.sport = 40000;
	seg.dport = 9;
	seg.seq = 1000;
	seg.flags = TH_SYN;
	seg.wnd = 100;
	out.n = 0;
	len = build(m, AF_INET, &seg);
	expect_drop(st, m, len, UTCP_STAT_drop_no_socket);
	CHECK_EQ(out.n, 1);
	CHECK(wire_ip_parse(out.pkt, out.len, &ip) == 0 &&
	      wire_tcp_parse(&ip, &got) == 0);
	CHECK_EQ(got.flags, TH_RST | TH_ACK);
	CHECK_EQ(got.seq, 0);
	CHECK_EQ(got.ack, 1001);
	CHECK_EQ(got.sport, 9);
	CHECK_EQ(got.dport, 40000);
	CHECK(memcmp(ip.dst, ip_a, 4) == 0);
	/* Data with FIN and no ACK: ACK = SEQ + LEN (+1 for FIN). */
	seg.flags = TH_FIN;
	seg.data = (const uint8_t *)"abcde";
	seg.len = 5;
	len = build(m, AF_INET, &seg);
	expect_drop(st, m, len, UTCP_STAT_drop_no_socket);
	CHECK(wire_ip_parse(out.pkt, out.len, &ip) == 0 &&
	      wire_tcp_parse(&ip, &got) == 0);
	CHECK_EQ(got.ack, 1006);
	/* With ACK: <SEQ=SEG.ACK><CTL=RST>. */
	seg.flags = TH_ACK;
	seg.ack = 777;
	seg.len = 0;
	len = build(m, AF_INET, &seg);
	expect_drop(st, m, len, UTCP_STAT_drop_no_socket);
	CHECK(wire_ip_parse(out.pkt, out.len, &ip) == 0 &&
	      wire_tcp_parse(&ip, &got) == 0);
	CHECK_EQ(got.flags, TH_RST);
	CHECK_EQ(got.seq, 777);
	/* A RST is never answered. */
	seg.flags = TH_RST;
	len = build(m, AF_INET, &seg);
	out.n = 0;
	expect_drop(st, m, len, UTCP_STAT_drop_no_socket);
	CHECK_EQ(out.n, 0);
	/* IPv6 too. */
	seg.flags = TH_SYN;
	len = build(m, AF_INET6, &seg);
	expect_drop(st, m, len, UTCP_STAT_drop_no_socket);
	CHECK_EQ(out.n, 1);
	CHECK(wire_ip_parse(out.pkt, out.len, &ip) == 0 &&
	      wire_tcp_parse(&ip, &got) == 0);
	CHECK_EQ(ip.family, AF_INET6);
	CHECK_EQ(got.flags, TH_RST | TH_ACK);
	CHECK_EQ(utcp_stats(st)[UTCP_STAT_tcp_rst_sent], 4);
	utcp_stack_free(st);
}

/* Random mutations of valid packets against a stack with a listener and
 * an embryo: every packet is either dropped by name or reaches TCP. */
static void
test_fuzz(void)
{
	struct utcp_stack *st = new_stack();
	struct utcp_sock *l = utcp_socket(st, AF_INET);
	struct utcp_addr any = {.family = AF_INET, .port = 9};
	uint8_t base[4][256], m[300];
	size_t blen[4];
	uint64_t rng = 0x9e3779b97f4a7c15ULL;
	struct wire_tcp seg;
	unsigned iters =
	    getenv("FUZZ_ITERS") ? (unsigned)atoi(getenv("FUZZ_ITERS")) : 30000;

	CHECK_EQ(utcp_bind(l, &any), 0);
	CHECK_EQ(utcp_listen(l, 100), 0);
	blen[0] = good_syn(base[0], AF_INET);
	blen[1] = good_syn(base[1], AF_INET6);
	memset(&seg, 0, sizeof(seg));
	seg.sport = 40000;
	seg.dport = 9;
	seg.seq = 101;
	seg.ack = 5;
	seg.flags = TH_ACK | TH_PSH;
	seg.data = (const uint8_t *)"payload!";
	seg.len = 8;
	seg.opt.present = WOPT_TS | WOPT_SACK;
	seg.opt.nsack = 2;
	blen[2] = build(base[2], AF_INET, &seg);
	seg.flags = TH_RST;
	blen[3] = build(base[3], AF_INET, &seg);
	utcp_input(st, base[0], blen[0], UTCP_SEC(1));
	for (unsigned i = 0; i < iters; i++) {
		int k = (int)(rng % 4);
		size_t len = blen[k];
		int flips;

		memcpy(m, base[k], len);
		rng ^= rng << 13;
		rng ^= rng >> 7;
		rng ^= rng << 17;
		flips = 1 + (int)(rng % 4);
		for (int f = 0; f < flips; f++) {
			rng ^= rng << 13;
			rng ^= rng >> 7;
			rng ^= rng << 17;
			m[(rng >> 8) % len] = (uint8_t)(rng >> 40);
		}
		/* Half the time keep the checksums right, so the deeper
		 * parsers see the damage. */
		if (rng & 1) {
			if ((m[0] >> 4) == 4 && (m[0] & 15) >= 5 &&
			    (size_t)(m[0] & 15) * 4 <= len) {
				refix_ip4(m);
				if ((size_t)(m[0] & 15) * 4 + 20 <= len &&
				    (m[0] & 15) == 5) {
					uint16_t ck;

					m[36] = m[37] = 0;
					ck = wire_fold(wire_sum(
					    m + 20, len - 20,
					    wire_pseudo_sum(
						AF_INET, m + 12, m + 16, m[9],
						(uint32_t)(len - 20))));
					memcpy(m + 36, &ck, 2);
				}
			}
		}
		if ((rng >> 3) % 8 == 0)
			len = (size_t)((rng >> 20) % (len + 1));
		utcp_input(st, m, len, UTCP_SEC(1) + i);
	}
	{
		const uint64_t *s = utcp_stats(st);
		uint64_t drops = 0;

		/* Drops before TCP processing; the rest come after
		 * tcp_in was counted. */
		for (int i = 0; i < UTCP_NSTATS; i++)
			if (strncmp(utcp_stat_name(i), "drop_ip", 7) == 0)
				drops += s[i];
		drops += s[UTCP_STAT_drop_tcp_short] +
			 s[UTCP_STAT_drop_tcp_bad_offset] +
			 s[UTCP_STAT_drop_tcp_bad_checksum] +
			 s[UTCP_STAT_drop_tcp_bad_options] +
			 s[UTCP_STAT_drop_tcp_bad_port];
		CHECK_EQ(s[UTCP_STAT_ip_in], iters + 1);
		CHECK_EQ(drops + s[UTCP_STAT_tcp_in], iters + 1);
	}
	utcp_poll(st, UTCP_SEC(1000));
	utcp_close(l, UTCP_SEC(1000));
	utcp_poll(st, UTCP_SEC(2000));
	CHECK_EQ(utcp_sock_count(st), 0);
	utcp_stack_free(st);
}

static void
test_stat_names(void)
{
	CHECK(strcmp(utcp_stat_name(UTCP_STAT_drop_tcp_bad_checksum),
		     "drop_tcp_bad_checksum") == 0);
	CHECK(strcmp(utcp_stat_desc(UTCP_STAT_ip_in), "IP packets received") ==
	      0);
	CHECK(strcmp(utcp_stat_name(-1), "?") == 0);
	CHECK(strcmp(utcp_stat_name(UTCP_NSTATS), "?") == 0);
	CHECK(strcmp(utcp_state_name(UTCP_TIME_WAIT), "TIME-WAIT") == 0);
	CHECK(strcmp(utcp_state_name(UTCP_SYN_RECEIVED), "SYN-RECEIVED") == 0);
	CHECK(strcmp(utcp_state_name(99), "?") == 0);
}

int
main(void)
{
	RUN(test_checksum_vectors);
	RUN(test_roundtrips);
	RUN(test_linux_layout);
	RUN(test_options_parse);
	RUN(test_malformed_ip);
	RUN(test_malformed_ip6);
	RUN(test_malformed_tcp);
	RUN(test_rst_no_socket);
	RUN(test_fuzz);
	RUN(test_stat_names);
	return CHECK_DONE();
}
