/*
 * test_engine_offload.c — the data-path contract of issue 7: partial TCP
 * checksums for a link that completes them (UTCP_OFFLOAD_TX_CSUM with
 * output_iov), packets whose checksum the link vouches for
 * (UTCP_IN_CSUM_OK), receiving without a copy (utcp_recv_peek/consume)
 * and delivery straight from the packet (cfg.deliver).
 */
#include "internal.h"
#include "test_engine_net.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* What a virtio-net device does with NEEDS_CSUM: sum from the TCP header
 * to the end (the field holds the pseudo-header sum), store the
 * complement. */
static void
complete_csum(uint8_t *pkt, size_t len)
{
	size_t iph = (pkt[0] >> 4) == 6 ? 40 : (size_t)(pkt[0] & 0x0f) * 4;
	uint16_t ck = wire_fold(wire_sum(pkt + iph, len - iph, 0));

	memcpy(pkt + iph + 16, &ck, 2);
}

static void
test_partial_checksum(void)
{
	uint8_t full[WIRE_TCP_HLEN + 40 + 333], part[sizeof(full)];
	uint8_t src[4] = {10, 0, 0, 1}, dst[4] = {10, 0, 0, 2};
	struct wire_tcp seg;
	size_t h1, h2;

	memset(&seg, 0, sizeof(seg));
	seg.sport = 40000;
	seg.dport = 80;
	seg.seq = 0x12345678;
	seg.ack = 0x9abcdef0;
	seg.flags = TH_ACK | TH_PSH;
	seg.wnd = 512;
	seg.opt.present = WOPT_TS;
	seg.opt.tsval = 7;
	seg.opt.tsecr = 9;
	seg.len = 333; /* odd: the last byte is padded */
	h1 = wire_tcp_opts_len(&seg.opt) + WIRE_TCP_HLEN;
	for (size_t i = 0; i < seg.len; i++)
		full[h1 + i] = part[h1 + i] = (uint8_t)(i * 31 + 7);
	h1 = wire_tcp_emit(full, &seg, AF_INET, src, dst);
	h2 = wire_tcp_emit_partial(part, &seg, AF_INET, src, dst);
	CHECK_EQ(h1, h2);
	CHECK(memcmp(full, part, 16) == 0);
	CHECK(memcmp(full + 16, part + 16, 2) != 0);
	{
		/* The link's completion gives the full checksum. */
		uint16_t ck = wire_fold(wire_sum(part, h2 + seg.len, 0));

		memcpy(part + 16, &ck, 2);
	}
	CHECK(memcmp(full, part, h1 + seg.len) == 0);
}

/* ---- a link that completes checksums and takes packets in pieces ---- */

static unsigned iov_calls, iov_split;

static void
link_iov(void *ctx, const struct utcp_iov *iov, unsigned n, size_t len)
{
	uint8_t *pkt = malloc(len);
	size_t at = 0;

	for (unsigned i = 0; i < n; i++) {
		memcpy(pkt + at, iov[i].base, iov[i].len);
		at += iov[i].len;
	}
	CHECK_EQ(at, len);
	iov_calls++;
	if (n > 1)
		iov_split++;
	complete_csum(pkt, len);
	tnet_output(ctx, pkt, len);
	free(pkt);
}

/* Side B takes at most take_max bytes per packet straight from it. */
static uint8_t *delivered;
static size_t ndelivered, take_max;

static size_t
take(void *ctx, struct utcp_sock *s, const uint8_t *data, size_t len)
{
	size_t n = len < take_max ? len : take_max;

	(void)ctx;
	(void)s;
	memcpy(delivered + ndelivered, data, n);
	ndelivered += n;
	return n;
}

static void
tweak(struct utcp_config *cfg, int side)
{
	if (side == 0) {
		cfg->output_iov = link_iov;
		cfg->offload = UTCP_OFFLOAD_TX_CSUM;
	} else {
		cfg->deliver = take;
	}
}

static void
test_offload_transfer(void)
{
	enum { N = 300000 };
	struct tnet n;
	struct tnet_pair p;
	uint8_t *src = malloc(N), *got = malloc(N);
	size_t sent = 0, have = 0;

	delivered = malloc(N);
	ndelivered = 0;
	take_max = 1000; /* part taken from the packet, the rest buffered */
	for (size_t i = 0; i < N; i++)
		src[i] = (uint8_t)(i * 131 + (i >> 9));
	tnet_init(&n, tweak);
	CHECK_EQ(tnet_connect_pair(&n, 80, &p), 0);
	for (int round = 0; round < 2000 && have < N; round++) {
		struct utcp_iov v[2];
		size_t avail;

		if (sent < N && round % 2 == 0) {
			ssize_t k = utcp_send(p.c, src + sent, N - sent, 0,
					      n.now);
			if (k > 0)
				sent += (size_t)k;
		} else if (sent < N) {
			/* In place, as utcpd's readv does; part of the
			 * room only. */
			struct utcp_iov w[2];
			size_t room = utcp_send_reserve(p.c, 40000, w), k, at;

			CHECK(room <= 40000);
			k = room < N - sent ? room : N - sent;
			k -= k / 3;
			at = 0;
			for (int i = 0; i < 2 && at < k; i++) {
				size_t c = w[i].len < k - at ? w[i].len
							      : k - at;

				memcpy((uint8_t *)w[i].base, src + sent + at,
				       c);
				at += c;
			}
			utcp_send_commit(p.c, k, 0, n.now);
			sent += k;
		}
		tnet_run(&n, UTCP_MS(5));
		/* The reader: what went straight to it, then the buffer. */
		memcpy(got + have, delivered, ndelivered);
		have += ndelivered;
		ndelivered = 0;
		avail = utcp_recv_peek(p.s, v);
		CHECK_EQ(avail, utcp_recv_avail(p.s));
		if (avail > 0) {
			/* Half now, the rest next round: a partial consume. */
			size_t k = avail > 1 ? avail / 2 : avail, at = 0;

			for (int i = 0; i < 2 && at < k; i++) {
				size_t c = v[i].len < k - at ? v[i].len : k - at;

				memcpy(got + have + at, v[i].base, c);
				at += c;
			}
			utcp_recv_consume(p.s, k, n.now);
			have += k;
		}
		if (round == 50)
			take_max = 0; /* the reader stops taking */
		if (round == 100)
			take_max = 65536;
	}
	CHECK_EQ(sent, N);
	CHECK_EQ(have, N);
	CHECK(memcmp(src, got, N) == 0);
	CHECK(iov_calls > 0);
	CHECK(iov_split > 0); /* payload straight from the send ring */
	CHECK_EQ(tnet_stat(&n, 1, UTCP_STAT_drop_tcp_bad_checksum), 0);
	CHECK_EQ(tnet_stat(&n, 0, UTCP_STAT_drop_tcp_bad_checksum), 0);
	CHECK_EQ(n.bad_event, 0);
	tnet_free(&n);
	free(src);
	free(got);
	free(delivered);
}

/* A segment with a wrong checksum: dropped, unless the link vouches. */
static void
test_csum_ok_flag(void)
{
	struct tnet n;
	struct tnet_pair p;
	struct tnet_side *a;
	uint8_t pkt[2048];
	size_t len;
	uint64_t before;

	tnet_init(&n, NULL);
	CHECK_EQ(tnet_connect_pair(&n, 80, &p), 0);
	CHECK_EQ(utcp_send(p.c, "hello", 5, 0, n.now), 5);
	a = &n.side[0];
	/* The data segment just sent, before it is delivered. */
	len = a->cap[(a->sent - 1) % TNET_NCAP].len;
	CHECK(len > 40 && len <= sizeof(pkt));
	memcpy(pkt, a->cap[(a->sent - 1) % TNET_NCAP].data, len);
	tnet_run(&n, UTCP_MS(50));
	CHECK_EQ(utcp_recv_avail(p.s), 5);
	pkt[len - 1] ^= 0x55; /* the payload changes, the checksum not */
	before = tnet_stat(&n, 1, UTCP_STAT_drop_tcp_bad_checksum);
	utcp_input(tnet_st(&n, 1), pkt, len, n.now);
	CHECK_EQ(tnet_stat(&n, 1, UTCP_STAT_drop_tcp_bad_checksum),
		 before + 1);
	utcp_input_flags(tnet_st(&n, 1), pkt, len, UTCP_IN_CSUM_OK, n.now);
	CHECK_EQ(tnet_stat(&n, 1, UTCP_STAT_drop_tcp_bad_checksum),
		 before + 1);
	CHECK_EQ(utcp_recv_avail(p.s), 5); /* an old duplicate, ignored */
	tnet_free(&n);
}

/* Reserving is for a connected socket with room; the rest is utcp_send's
 * to say. An empty reservation leaves no buffer behind. */
static void
test_send_reserve_edges(void)
{
	struct tnet n;
	struct tnet_pair p;
	struct utcp_iov w[2];
	struct utcp_sock *fresh;

	tnet_init(&n, NULL);
	fresh = tnet_socket(&n, 0);
	CHECK_EQ(utcp_send_reserve(fresh, 100, w), 0);
	CHECK_EQ(tnet_connect_pair(&n, 80, &p), 0);
	CHECK_EQ(utcp_send_reserve(p.c, 100, w), 100);
	CHECK_EQ(w[0].len + w[1].len, 100);
	utcp_send_commit(p.c, 0, 0, n.now);
	CHECK(p.c->snd.buf == NULL);
	CHECK_EQ(utcp_send_reserve(p.c, (size_t)1 << 40, w), p.c->sndbuf);
	utcp_send_commit(p.c, 0, 0, n.now);
	CHECK_EQ(utcp_shutdown(p.c, SHUT_WR, n.now), 0);
	CHECK_EQ(utcp_send_reserve(p.c, 100, w), 0);
	CHECK_EQ(utcp_send(p.c, "x", 1, 0, n.now), -EPIPE);
	tnet_run(&n, UTCP_MS(50));
	tnet_free(&n);
}

int
main(void)
{
	RUN(test_partial_checksum);
	RUN(test_offload_transfer);
	RUN(test_csum_ok_flag);
	RUN(test_send_reserve_edges);
	return CHECK_DONE();
}
