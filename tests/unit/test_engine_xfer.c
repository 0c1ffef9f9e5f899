/*
 * test_engine_xfer.c — bulk transfers at virtual time: clean, lossy,
 * reordered, both directions at once, window scaling, zero windows.
 */
#include "internal.h"
#include "test_engine_net.h"

#include <errno.h>

struct xfer {
	struct utcp_sock *tx, *rx;
	size_t total, sent, rcvd;
	bool shut, eof, bad;
	unsigned short_writes;
};

static uint8_t
pattern(size_t i, unsigned salt)
{
	return (uint8_t)((i * 2654435761u + salt) >> 11);
}

static uint8_t buf[65536];

/* One step of application work; true when the reader saw EOF. */
static bool
xfer_step(struct tnet *n, struct xfer *x, unsigned salt)
{
	ssize_t r;

	while (x->sent < x->total) {
		size_t chunk = x->total - x->sent;

		if (chunk > sizeof(buf))
			chunk = sizeof(buf);
		for (size_t i = 0; i < chunk; i++)
			buf[i] = pattern(x->sent + i, salt);
		r = utcp_send(x->tx, buf, chunk, 0, n->now);
		if (r <= 0)
			break;
		if ((size_t)r < chunk)
			x->short_writes++;
		x->sent += (size_t)r;
	}
	if (x->sent == x->total && !x->shut) {
		CHECK_EQ(utcp_shutdown(x->tx, SHUT_WR, n->now), 0);
		x->shut = true;
	}
	while (!x->eof) {
		r = utcp_recv(x->rx, buf, sizeof(buf), 0, n->now);
		if (r == 0)
			x->eof = true;
		if (r <= 0)
			break;
		for (ssize_t i = 0; i < r; i++)
			if (buf[i] != pattern(x->rcvd + (size_t)i, salt))
				x->bad = true;
		x->rcvd += (size_t)r;
	}
	return x->eof;
}

struct both {
	struct xfer ab, ba;
};

static bool
both_done(struct tnet *n, void *arg)
{
	struct both *b = arg;
	bool d1 = xfer_step(n, &b->ab, 1);
	bool d2 = b->ba.tx == NULL || xfer_step(n, &b->ba, 2);

	return d1 && d2;
}

static void
finish(struct tnet *n, struct tnet_pair *p)
{
	utcp_close(p->c, n->now);
	utcp_close(p->s, n->now);
	utcp_close(p->l, n->now);
	tnet_run(n, UTCP_SEC(200));
	CHECK_EQ(utcp_sock_count(tnet_st(n, 0)), 0);
	CHECK_EQ(utcp_sock_count(tnet_st(n, 1)), 0);
	CHECK_EQ(n->bad_event, 0);
}

static void
run_xfer(unsigned loss, unsigned reorder, size_t size, bool bidir,
	 utcp_time_t limit)
{
	struct tnet n;
	struct tnet_pair p;
	struct both b;
	utcp_time_t t0;
	bool ok;

	tnet_init(&n, NULL);
	CHECK_EQ(tnet_connect_pair(&n, 5001, &p), 0);
	n.loss_pct = loss;
	n.reorder_pct = reorder;
	memset(&b, 0, sizeof(b));
	b.ab.tx = p.c;
	b.ab.rx = p.s;
	b.ab.total = size;
	if (bidir) {
		b.ba.tx = p.s;
		b.ba.rx = p.c;
		b.ba.total = size;
	}
	t0 = n.now;
	ok = tnet_run_until(&n, both_done, &b, limit);
	CHECK(ok);
	CHECK_EQ(b.ab.rcvd, size);
	CHECK(!b.ab.bad);
	if (bidir) {
		CHECK_EQ(b.ba.rcvd, size);
		CHECK(!b.ba.bad);
	}
	if (loss > 0)
		CHECK(tnet_stat(&n, 0, UTCP_STAT_tcp_retransmit) > 0);
	if (!ok || getenv("VERBOSE"))
		printf("  loss %u reorder %u: %zu/%zu after %llu ms\n", loss,
		       reorder, b.ab.rcvd, size,
		       (unsigned long long)(n.now - t0) / 1000);
	if (getenv("VERBOSE"))
		printf("  rexmit %llu/%llu fast %llu/%llu rto %llu/%llu\n",
		       (unsigned long long)tnet_stat(&n, 0,
						     UTCP_STAT_tcp_retransmit),
		       (unsigned long long)tnet_stat(&n, 1,
						     UTCP_STAT_tcp_retransmit),
		       (unsigned long long)tnet_stat(
			   &n, 0, UTCP_STAT_tcp_fast_retransmit),
		       (unsigned long long)tnet_stat(
			   &n, 1, UTCP_STAT_tcp_fast_retransmit),
		       (unsigned long long)tnet_stat(&n, 0,
						     UTCP_STAT_tcp_rto_expired),
		       (unsigned long long)tnet_stat(
			   &n, 1, UTCP_STAT_tcp_rto_expired));
	n.loss_pct = n.reorder_pct = 0;
	finish(&n, &p);
	tnet_free(&n);
}

static void
test_clean_1mib(void)
{
	run_xfer(0, 0, 1 << 20, false, UTCP_SEC(10));
}

static void
test_clean_bidir(void)
{
	run_xfer(0, 0, 1 << 20, true, UTCP_SEC(10));
}

static void
test_lossy_bidir(void)
{
	run_xfer(2, 0, 1 << 20, true, UTCP_SEC(300));
}

static void
test_lossy_reorder_bidir(void)
{
	run_xfer(3, 5, 1 << 20, true, UTCP_SEC(300));
}

static void
test_heavy_loss(void)
{
	run_xfer(15, 10, 256 << 10, true, UTCP_SEC(3000));
}

/* A 10 MiB one-way transfer on a clean 5 ms path must use a window
 * beyond 64 KiB (window scaling) and be fast in virtual time. */
static void
test_window_scaling_speed(void)
{
	struct tnet n;
	struct tnet_pair p;
	struct both b;
	utcp_time_t t0;

	tnet_init(&n, NULL);
	CHECK_EQ(tnet_connect_pair(&n, 5001, &p), 0);
	memset(&b, 0, sizeof(b));
	b.ab.tx = p.c;
	b.ab.rx = p.s;
	b.ab.total = 10 << 20;
	t0 = n.now;
	CHECK(tnet_run_until(&n, both_done, &b, UTCP_SEC(60)));
	CHECK_EQ(b.ab.rcvd, (size_t)10 << 20);
	/* 10 MiB in well under 2 virtual seconds needs > 64 KiB/RTT. */
	CHECK(n.now - t0 < UTCP_SEC(2));
	CHECK(p.c->max_sndwnd > 65535);
	CHECK_EQ(tnet_stat(&n, 0, UTCP_STAT_tcp_retransmit), 0);
	finish(&n, &p);
	tnet_free(&n);
}

/* The receiver stops reading: the window closes, the sender probes it,
 * and the transfer resumes when reading does. */
struct zw {
	struct xfer x;
	bool reading;
};

static bool
zw_step(struct tnet *n, void *arg)
{
	struct zw *z = arg;

	if (!z->reading) {
		/* Only the writer works. */
		struct utcp_sock *rx = z->x.rx;
		bool r;

		z->x.rx = z->x.tx; /* recv on tx returns -EAGAIN */
		r = xfer_step(n, &z->x, 3);
		z->x.rx = rx;
		(void)r;
		return false;
	}
	return xfer_step(n, &z->x, 3);
}

static void
small_rcvbuf(struct utcp_config *cfg, int side)
{
	if (side == 1)
		cfg->rcvbuf = 16384;
	else
		cfg->sndbuf = 32768;
}

static void
test_zero_window(void)
{
	struct tnet n;
	struct tnet_pair p;
	struct zw z;

	tnet_init(&n, small_rcvbuf);
	CHECK_EQ(tnet_connect_pair(&n, 5001, &p), 0);
	memset(&z, 0, sizeof(z));
	z.x.tx = p.c;
	z.x.rx = p.s;
	z.x.total = 200000;
	tnet_run_until(&n, zw_step, &z, UTCP_SEC(30));
	CHECK_EQ(p.c->snd_wnd, 0);
	CHECK(utcp_recv_avail(p.s) >= 16384 - 1460);
	if (getenv("VERBOSE"))
		printf("  avail %zu snd_wnd %u rcv_adv-nxt %u sent %zu\n",
		       utcp_recv_avail(p.s), p.c->snd_wnd,
		       p.s->rcv_adv - p.s->rcv_nxt, z.x.sent);
	CHECK(tnet_count(&n, 0, UTCP_EV_ZERO_WINDOW, p.c) >= 3);
	CHECK(tnet_stat(&n, 0, UTCP_STAT_tcp_zero_window_probe) >= 3);
	CHECK_EQ(utcp_sock_state(p.c), UTCP_ESTABLISHED);
	CHECK(z.x.short_writes > 0 || z.x.sent < z.x.total);
	/* Read again: everything arrives. */
	z.reading = true;
	CHECK(tnet_run_until(&n, zw_step, &z, UTCP_SEC(60)));
	CHECK_EQ(z.x.rcvd, z.x.total);
	CHECK(!z.x.bad);
	CHECK(tnet_count(&n, 0, UTCP_EV_WRITABLE, p.c) > 0);
	finish(&n, &p);
	tnet_free(&n);
}

/* The loss of one segment is repaired by fast retransmit, and the
 * receiver's duplicate ACKs carry SACK blocks. */
static int drop_nth_data_from;
static int drop_nth_count;
static int sack_seen;

static int
drop_third_data(struct tnet *n, int from, uint8_t *pkt, size_t len)
{
	struct wire_ip ip;
	struct wire_tcp seg;

	if (!tnet_parse(pkt, len, &ip, &seg))
		return 0;
	if (from == 1 && (seg.opt.present & WOPT_SACK))
		sack_seen++;
	if (from == drop_nth_data_from && seg.len > 0 && ++drop_nth_count == 3)
		return 1;
	return 0;
}

static void
test_fast_retransmit_sack(void)
{
	struct tnet n;
	struct tnet_pair p;
	struct both b;

	tnet_init(&n, NULL);
	CHECK_EQ(tnet_connect_pair(&n, 5001, &p), 0);
	drop_nth_data_from = 0;
	drop_nth_count = 0;
	sack_seen = 0;
	n.filter = drop_third_data;
	memset(&b, 0, sizeof(b));
	b.ab.tx = p.c;
	b.ab.rx = p.s;
	b.ab.total = 100000;
	CHECK(tnet_run_until(&n, both_done, &b, UTCP_SEC(10)));
	CHECK_EQ(b.ab.rcvd, 100000);
	CHECK(!b.ab.bad);
	CHECK_EQ(tnet_stat(&n, 0, UTCP_STAT_tcp_fast_retransmit), 1);
	CHECK_EQ(tnet_stat(&n, 0, UTCP_STAT_tcp_rto_expired), 0);
	CHECK(tnet_stat(&n, 1, UTCP_STAT_tcp_ooo_queued) > 0);
	CHECK(sack_seen >= 3);
	n.filter = NULL;
	finish(&n, &p);
	tnet_free(&n);
}

int
main(void)
{
	RUN(test_clean_1mib);
	RUN(test_clean_bidir);
	RUN(test_lossy_bidir);
	RUN(test_lossy_reorder_bidir);
	RUN(test_heavy_loss);
	RUN(test_window_scaling_speed);
	RUN(test_zero_window);
	RUN(test_fast_retransmit_sack);
	return CHECK_DONE();
}
