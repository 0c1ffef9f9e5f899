/*
 * test_engine.c — the engine at virtual time: handshakes, data, closes
 * from either side, TIME-WAIT, resets, listen overflow. Every test ends
 * with utcp_sock_count() == 0 on both stacks (the leak check).
 */
#include "internal.h"
#include "test_engine_net.h"

#include <errno.h>
#include <linux/tcp.h>
#include <netinet/in.h>

static void
test_handshake(void)
{
	struct tnet n;
	struct tnet_pair p;
	struct utcp_addr la, ra;

	tnet_init(&n, NULL);
	CHECK_EQ(tnet_connect_pair(&n, 80, &p), 0);
	CHECK_EQ(utcp_sock_state(p.c), UTCP_ESTABLISHED);
	CHECK_EQ(utcp_sock_state(p.s), UTCP_ESTABLISHED);
	CHECK_EQ(utcp_sock_state(p.l), UTCP_LISTEN);
	CHECK_EQ(tnet_count(&n, 0, UTCP_EV_CONNECTED, p.c), 1);
	CHECK_EQ(tnet_count(&n, 1, UTCP_EV_ACCEPTABLE, p.l), 1);
	CHECK_EQ(tnet_stat(&n, 0, UTCP_STAT_tcp_active_open), 1);
	CHECK_EQ(tnet_stat(&n, 1, UTCP_STAT_tcp_passive_open), 1);
	utcp_sock_names(p.c, &la, &ra);
	CHECK_EQ(ra.port, 80);
	CHECK(la.port >= 32768 && la.port <= 60999);
	CHECK(memcmp(la.ip, tnet_ip[0], 4) == 0);
	utcp_sock_names(p.s, &la, &ra);
	CHECK_EQ(la.port, 80);
	CHECK(memcmp(ra.ip, tnet_ip[0], 4) == 0);
	{
		struct utcp_info in;

		utcp_sock_info(p.c, &in, n.now);
		CHECK_EQ(in.mss_snd, 1460);
		CHECK(in.ts_ok);
		CHECK(in.sack_ok);
		CHECK_EQ(in.wscale_rcv, 7);
		CHECK_EQ(in.wscale_snd, 7);
		CHECK(in.rtt >= UTCP_MS(9) && in.rtt <= UTCP_MS(11));
	}
	/* No further accept. */
	{
		int err = 0;

		CHECK(utcp_accept(p.l, &err) == NULL);
		CHECK_EQ(err, -EAGAIN);
	}
	utcp_close(p.l, n.now);
	utcp_close(p.c, n.now);
	utcp_close(p.s, n.now);
	tnet_leak_check(&n);
	tnet_free(&n);
}

static void
test_data_small(void)
{
	struct tnet n;
	struct tnet_pair p;
	char buf[100];
	ssize_t r;

	tnet_init(&n, NULL);
	CHECK_EQ(tnet_connect_pair(&n, 80, &p), 0);
	CHECK_EQ(utcp_send(p.c, "hello", 5, 0, n.now), 5);
	tnet_run(&n, UTCP_MS(20));
	CHECK_EQ(utcp_recv_avail(p.s), 5);
	CHECK(tnet_count(&n, 1, UTCP_EV_READABLE, p.s) >= 1);
	r = utcp_recv(p.s, buf, sizeof(buf), UTCP_MSG_PEEK, n.now);
	CHECK_EQ(r, 5);
	r = utcp_recv(p.s, buf, sizeof(buf), 0, n.now);
	CHECK_EQ(r, 5);
	CHECK(memcmp(buf, "hello", 5) == 0);
	CHECK_EQ(utcp_recv(p.s, buf, sizeof(buf), 0, n.now), -EAGAIN);
	CHECK_EQ(utcp_send(p.s, "world!", 6, 0, n.now), 6);
	tnet_run(&n, UTCP_MS(20));
	CHECK_EQ(utcp_recv(p.c, buf, sizeof(buf), 0, n.now), 6);
	CHECK(memcmp(buf, "world!", 6) == 0);
	/* Client closes first: FIN-WAIT-1/2 → TIME-WAIT; server
	 * CLOSE-WAIT → LAST-ACK → CLOSED. */
	utcp_close(p.c, n.now);
	CHECK_EQ(utcp_sock_state(p.c), UTCP_FIN_WAIT_1);
	tnet_run(&n, UTCP_MS(20));
	CHECK_EQ(utcp_sock_state(p.s), UTCP_CLOSE_WAIT);
	CHECK_EQ(utcp_recv(p.s, buf, sizeof(buf), 0, n.now), 0);
	CHECK(utcp_sock_eof(p.s));
	/* The FIN's ACK waits (as Linux's, in case our FIN can carry it),
	 * at most the delayed-ACK time. */
	CHECK_EQ(utcp_sock_state(p.c), UTCP_FIN_WAIT_1);
	tnet_run(&n, UTCP_MS(30));
	CHECK_EQ(utcp_sock_state(p.c), UTCP_FIN_WAIT_2);
	utcp_close(p.s, n.now);
	CHECK_EQ(utcp_sock_state(p.s), UTCP_LAST_ACK);
	tnet_run(&n, UTCP_MS(20));
	/* The server's socket is gone (LAST-ACK acked, app closed). */
	CHECK_EQ(utcp_sock_count(tnet_st(&n, 1)), 1); /* the listener */
	CHECK_EQ(tnet_count(&n, 1, UTCP_EV_FREED, NULL), 1);
	CHECK_EQ(utcp_sock_state(p.c), UTCP_TIME_WAIT);
	tnet_run(&n, UTCP_SEC(59));
	CHECK_EQ(utcp_sock_count(tnet_st(&n, 0)), 1);
	tnet_run(&n, UTCP_SEC(2));
	CHECK_EQ(utcp_sock_count(tnet_st(&n, 0)), 0);
	CHECK_EQ(tnet_count(&n, 0, UTCP_EV_FREED, p.c), 1);
	utcp_close(p.l, n.now);
	tnet_leak_check(&n);
	tnet_free(&n);
}

/* The server closes first and the client's application closes at once:
 * the client's FIN carries the ACK of the server's, three segments in
 * all (as between two Linux hosts), and the server goes from FIN-WAIT-1
 * straight to TIME-WAIT. */
static void
test_close_three_segments(void)
{
	struct tnet n;
	struct tnet_pair p;
	char buf[16];
	uint64_t out0;

	tnet_init(&n, NULL);
	CHECK_EQ(tnet_connect_pair(&n, 80, &p), 0);
	tnet_run(&n, UTCP_MS(100)); /* the handshake settles */
	utcp_close(p.s, n.now);
	tnet_run(&n, UTCP_MS(10));
	CHECK_EQ(utcp_sock_state(p.c), UTCP_CLOSE_WAIT);
	CHECK_EQ(utcp_sock_state(p.s), UTCP_FIN_WAIT_1); /* no ACK yet */
	CHECK_EQ(utcp_recv(p.c, buf, sizeof(buf), 0, n.now), 0);
	out0 = tnet_stat(&n, 0, UTCP_STAT_tcp_out);
	utcp_close(p.c, n.now);
	tnet_run(&n, UTCP_MS(100));
	CHECK_EQ(tnet_stat(&n, 0, UTCP_STAT_tcp_out) - out0, 1);
	CHECK_EQ(utcp_sock_state(p.s), UTCP_TIME_WAIT);
	CHECK_EQ(tnet_count(&n, 0, UTCP_EV_FREED, p.c), 1);
	utcp_close(p.l, n.now);
	tnet_run(&n, UTCP_SEC(61));
	tnet_leak_check(&n);
	tnet_free(&n);
}

/* Inject a segment into B as if from A's socket `from`. */
static void
inject(struct tnet *n, struct utcp_sock *from, uint32_t seq, uint32_t ack,
       uint8_t flags, const void *data, uint32_t len)
{
	struct wire_tcp seg;
	uint8_t pkt[2048];
	size_t l;

	memset(&seg, 0, sizeof(seg));
	seg.sport = from->tuple.lport;
	seg.dport = from->tuple.rport;
	seg.seq = seq;
	seg.ack = ack;
	seg.flags = flags;
	seg.wnd = 1000;
	seg.data = data;
	seg.len = len;
	if (from->ts_ok) {
		seg.opt.present = WOPT_TS;
		seg.opt.tsval = tcp_now_ts(from, n->now);
		seg.opt.tsecr = from->ts_recent;
	}
	l = tnet_build(pkt, 0, &seg);
	utcp_input(tnet_st(n, 1), pkt, l, n->now);
}

static bool
has_state_event(struct tnet *n, int side, struct utcp_sock *s,
		enum utcp_state from, enum utcp_state to)
{
	for (size_t i = 0; i < n->side[side].nev; i++) {
		const struct utcp_event *e = &n->side[side].ev[i].ev;

		if (e->type == UTCP_EV_STATE && e->sock == s &&
		    e->old_state == (int)from && e->new_state == (int)to)
			return true;
	}
	return false;
}

static void
test_server_closes_first(void)
{
	struct tnet n;
	struct tnet_pair p;
	char b[16];

	tnet_init(&n, NULL);
	CHECK_EQ(tnet_connect_pair(&n, 80, &p), 0);
	utcp_close(p.s, n.now);
	tnet_run(&n, UTCP_MS(50));
	CHECK_EQ(utcp_sock_state(p.c), UTCP_CLOSE_WAIT);
	CHECK_EQ(utcp_sock_state(p.s), UTCP_FIN_WAIT_2);
	CHECK_EQ(utcp_recv(p.c, b, sizeof(b), 0, n.now), 0);
	/* Half-closed: the client can still send; the orphaned server
	 * answers new data with RST (Linux). */
	CHECK_EQ(utcp_shutdown(p.c, SHUT_WR, n.now), 0);
	CHECK_EQ(utcp_sock_state(p.c), UTCP_LAST_ACK);
	tnet_run(&n, UTCP_MS(50));
	CHECK_EQ(utcp_sock_state(p.c), UTCP_CLOSED);
	CHECK(has_state_event(&n, 1, p.s, UTCP_FIN_WAIT_2, UTCP_TIME_WAIT));
	CHECK_EQ(utcp_sock_count(tnet_st(&n, 0)), 1); /* app holds it */
	CHECK_EQ(utcp_sock_error(p.c, false), 0);
	utcp_close(p.c, n.now);
	CHECK_EQ(utcp_sock_count(tnet_st(&n, 0)), 0);
	CHECK_EQ(utcp_sock_count(tnet_st(&n, 1)), 2); /* listener + TW */
	tnet_run(&n, UTCP_SEC(61));
	CHECK_EQ(utcp_sock_count(tnet_st(&n, 1)), 1);
	utcp_close(p.l, n.now);
	tnet_leak_check(&n);
	tnet_free(&n);
}

static void
test_simultaneous_close(void)
{
	struct tnet n;
	struct tnet_pair p;

	tnet_init(&n, NULL);
	CHECK_EQ(tnet_connect_pair(&n, 80, &p), 0);
	utcp_close(p.c, n.now);
	utcp_close(p.s, n.now);
	tnet_run(&n, UTCP_MS(50));
	CHECK(has_state_event(&n, 0, p.c, UTCP_FIN_WAIT_1, UTCP_CLOSING));
	CHECK(has_state_event(&n, 1, p.s, UTCP_FIN_WAIT_1, UTCP_CLOSING));
	CHECK(has_state_event(&n, 0, p.c, UTCP_CLOSING, UTCP_TIME_WAIT));
	CHECK(has_state_event(&n, 1, p.s, UTCP_CLOSING, UTCP_TIME_WAIT));
	CHECK_EQ(utcp_sock_count(tnet_st(&n, 0)), 1);
	tnet_run(&n, UTCP_SEC(61));
	CHECK_EQ(utcp_sock_count(tnet_st(&n, 0)), 0);
	CHECK_EQ(tnet_count(&n, 0, UTCP_EV_FREED, p.c), 1);
	CHECK_EQ(tnet_count(&n, 1, UTCP_EV_FREED, p.s), 1);
	utcp_close(p.l, n.now);
	tnet_leak_check(&n);
	tnet_free(&n);
}

/* TIME-WAIT answers a retransmitted FIN and restarts 2MSL. */
static int drop_acks_from_a;

static int
drop_pure_acks_a(struct tnet *n, int from, uint8_t *pkt, size_t len)
{
	struct wire_ip ip;
	struct wire_tcp seg;

	if (from != 0 || drop_acks_from_a == 0 ||
	    !tnet_parse(pkt, len, &ip, &seg))
		return 0;
	if (seg.flags == TH_ACK && seg.len == 0) {
		drop_acks_from_a--;
		return 1;
	}
	return 0;
}

static void
test_time_wait_refin(void)
{
	struct tnet n;
	struct tnet_pair p;
	utcp_time_t t0;

	tnet_init(&n, NULL);
	CHECK_EQ(tnet_connect_pair(&n, 80, &p), 0);
	utcp_close(p.c, n.now);
	tnet_run(&n, UTCP_MS(50));
	CHECK_EQ(utcp_sock_state(p.s), UTCP_CLOSE_WAIT);
	/* The ACK of the server's FIN gets lost once. */
	n.filter = drop_pure_acks_a;
	drop_acks_from_a = 1;
	tnet_run(&n, UTCP_SEC(10));
	t0 = n.now;
	utcp_close(p.s, n.now);
	tnet_run(&n, UTCP_MS(50));
	CHECK_EQ(utcp_sock_state(p.c), UTCP_TIME_WAIT);
	CHECK_EQ(utcp_sock_count(tnet_st(&n, 1)), 2); /* still LAST-ACK */
	tnet_run(&n, UTCP_SEC(2));
	CHECK_EQ(utcp_sock_count(tnet_st(&n, 1)), 1); /* FIN resent, acked */
	CHECK(tnet_stat(&n, 1, UTCP_STAT_tcp_retransmit) >= 1);
	CHECK(tnet_stat(&n, 0, UTCP_STAT_drop_out_of_window) >= 1);
	/* 2MSL restarted at the retransmitted FIN (one RTO, > 200 ms,
	 * after the first). */
	tnet_run_to(&n, t0 + UTCP_MS(60100));
	CHECK_EQ(utcp_sock_count(tnet_st(&n, 0)), 1);
	tnet_run_to(&n, t0 + UTCP_MS(61000));
	CHECK_EQ(utcp_sock_count(tnet_st(&n, 0)), 0);
	n.filter = NULL;
	utcp_close(p.l, n.now);
	tnet_leak_check(&n);
	tnet_free(&n);
}

static void
test_refused(void)
{
	struct tnet n;
	struct utcp_sock *c;
	struct utcp_addr a = tnet_addr(1, 81);
	const struct utcp_event *e;
	char b[4];

	tnet_init(&n, NULL);
	c = tnet_socket(&n, 0);
	CHECK_EQ(utcp_connect(c, &a, n.now), 0);
	CHECK_EQ(utcp_connect(c, &a, n.now), -EALREADY);
	CHECK_EQ(utcp_sock_state(c), UTCP_SYN_SENT);
	tnet_run(&n, UTCP_MS(50));
	CHECK_EQ(utcp_sock_state(c), UTCP_CLOSED);
	CHECK_EQ(tnet_stat(&n, 1, UTCP_STAT_drop_no_socket), 1);
	CHECK_EQ(tnet_stat(&n, 1, UTCP_STAT_tcp_rst_sent), 1);
	CHECK_EQ(tnet_stat(&n, 0, UTCP_STAT_tcp_rst_rcvd), 1);
	e = tnet_last(&n, 0, UTCP_EV_ERROR, c);
	CHECK(e != NULL && e->err == ECONNREFUSED);
	CHECK_EQ(tnet_count(&n, 1, UTCP_EV_RST_SENT, NULL), 1);
	CHECK_EQ(tnet_count(&n, 1, UTCP_EV_DROP, NULL), 1);
	CHECK_EQ(utcp_sock_error(c, false), ECONNREFUSED);
	/* Not freed: the application still holds it. */
	CHECK_EQ(utcp_sock_count(tnet_st(&n, 0)), 1);
	CHECK_EQ(utcp_recv(c, b, sizeof(b), 0, n.now), -ECONNREFUSED);
	CHECK_EQ(utcp_sock_error(c, false), 0);
	/* A closed socket may connect again (still refused). */
	CHECK_EQ(utcp_connect(c, &a, n.now), 0);
	tnet_run(&n, UTCP_MS(50));
	CHECK_EQ(utcp_sock_error(c, true), ECONNREFUSED);
	utcp_close(c, n.now);
	CHECK_EQ(tnet_count(&n, 0, UTCP_EV_FREED, c), 1);
	tnet_leak_check(&n);
	tnet_free(&n);
}

static void
test_reset_by_abort(void)
{
	struct tnet n;
	struct tnet_pair p;
	char b[16];
	const struct utcp_event *e;

	tnet_init(&n, NULL);
	CHECK_EQ(tnet_connect_pair(&n, 80, &p), 0);
	CHECK_EQ(utcp_send(p.s, "abc", 3, 0, n.now), 3);
	tnet_run(&n, UTCP_MS(50));
	utcp_abort(p.s, n.now);
	CHECK_EQ(utcp_sock_state(p.s), UTCP_CLOSED);
	tnet_run(&n, UTCP_MS(50));
	CHECK_EQ(utcp_sock_state(p.c), UTCP_CLOSED);
	e = tnet_last(&n, 0, UTCP_EV_ERROR, p.c);
	CHECK(e != NULL && e->err == ECONNRESET);
	CHECK(tnet_count(&n, 0, UTCP_EV_RST_RCVD, p.c) == 1);
	/* Data first, then the error once, then end of stream. */
	CHECK_EQ(utcp_recv(p.c, b, sizeof(b), 0, n.now), 3);
	CHECK_EQ(utcp_recv(p.c, b, sizeof(b), 0, n.now), -ECONNRESET);
	CHECK_EQ(utcp_recv(p.c, b, sizeof(b), 0, n.now), 0);
	CHECK_EQ(utcp_send(p.c, b, 1, 0, n.now), -EPIPE);
	CHECK_EQ(utcp_sock_count(tnet_st(&n, 0)), 1);
	utcp_close(p.c, n.now);
	utcp_close(p.s, n.now);
	utcp_close(p.l, n.now);
	tnet_leak_check(&n);
	tnet_free(&n);
}

static void
test_close_unread_sends_rst(void)
{
	struct tnet n;
	struct tnet_pair p;

	tnet_init(&n, NULL);
	CHECK_EQ(tnet_connect_pair(&n, 80, &p), 0);
	CHECK_EQ(utcp_send(p.c, "unread", 6, 0, n.now), 6);
	tnet_run(&n, UTCP_MS(50));
	CHECK_EQ(utcp_recv_avail(p.s), 6);
	utcp_close(p.s, n.now);
	/* Freed at once: RST, no TIME-WAIT. */
	CHECK_EQ(tnet_count(&n, 1, UTCP_EV_FREED, p.s), 1);
	CHECK_EQ(tnet_count(&n, 1, UTCP_EV_RST_SENT, p.s), 1);
	tnet_run(&n, UTCP_MS(50));
	CHECK_EQ(utcp_sock_error(p.c, false), ECONNRESET);
	utcp_close(p.c, n.now);
	utcp_close(p.l, n.now);
	tnet_leak_check(&n);
	tnet_free(&n);
}

static void
test_linger_zero(void)
{
	struct tnet n;
	struct tnet_pair p;
	struct linger lg = {1, 0}, got;
	size_t len = sizeof(got);

	tnet_init(&n, NULL);
	CHECK_EQ(tnet_connect_pair(&n, 80, &p), 0);
	CHECK_EQ(
	    utcp_setsockopt(p.c, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg), n.now),
	    0);
	CHECK_EQ(utcp_getsockopt(p.c, SOL_SOCKET, SO_LINGER, &got, &len), 0);
	CHECK_EQ(got.l_onoff, 1);
	CHECK_EQ(got.l_linger, 0);
	utcp_close(p.c, n.now);
	CHECK_EQ(utcp_sock_count(tnet_st(&n, 0)), 0);
	tnet_run(&n, UTCP_MS(50));
	CHECK_EQ(utcp_sock_state(p.s), UTCP_CLOSED);
	CHECK_EQ(utcp_sock_error(p.s, false), ECONNRESET);
	utcp_close(p.s, n.now);
	utcp_close(p.l, n.now);
	tnet_leak_check(&n);
	tnet_free(&n);
}

/* A listener with backlog 1 takes two connections (Linux: backlog + 1),
 * drops further SYNs and lets the clients in once accept() drains it. */
static bool
all_established(struct tnet *n, void *arg)
{
	struct utcp_sock **c = arg;

	for (int i = 0; i < 5; i++)
		if (utcp_sock_state(c[i]) != UTCP_ESTABLISHED)
			return false;
	return true;
}

/* A listener on side 1 with backlog 1, and five clients on side 0 whose
 * SYNs are on their way to it. */
static struct utcp_sock *
five_to_backlog_one(struct tnet *n, struct utcp_sock *c[5])
{
	struct utcp_addr any = {.family = AF_INET, .port = 80};
	struct utcp_addr a = tnet_addr(1, 80);
	struct utcp_sock *l;

	tnet_init(n, NULL);
	l = tnet_socket(n, 1);
	CHECK_EQ(utcp_bind(l, &any), 0);
	CHECK_EQ(utcp_listen(l, 1), 0);
	for (int i = 0; i < 5; i++) {
		c[i] = tnet_socket(n, 0);
		CHECK_EQ(utcp_connect(c[i], &a, n->now), 0);
	}
	return l;
}

static void
test_listen_overflow(void)
{
	struct tnet n;
	struct utcp_sock *l, *c[5], *acc[5];
	int nacc = 0, err;

	l = five_to_backlog_one(&n, c);
	tnet_run(&n, UTCP_MS(500));
	CHECK(tnet_stat(&n, 1, UTCP_STAT_drop_listen_overflow) >= 3);
	CHECK(tnet_count(&n, 1, UTCP_EV_ACCEPTABLE, l) <= 2);
	CHECK(l->accq_len <= 2);
	/* Accept as connections come: SYN retransmits get through. */
	for (int round = 0; round < 100 && nacc < 5; round++) {
		struct utcp_sock *s;

		while ((s = utcp_accept(l, &err)) != NULL) {
			tnet_is_dead(&n.side[1], s, true);
			acc[nacc++] = s;
		}
		tnet_run(&n, UTCP_MS(500));
	}
	CHECK_EQ(nacc, 5);
	CHECK(tnet_run_until(&n, all_established, c, UTCP_SEC(30)));
	for (int i = 0; i < nacc; i++)
		utcp_close(acc[i], n.now);
	for (int i = 0; i < 5; i++)
		utcp_close(c[i], n.now);
	utcp_close(l, n.now);
	tnet_leak_check(&n);
	tnet_free(&n);
}

/* Connections the daemon took off the queue but the application has not
 * accepted yet (utcp_listen_hold) still fill the backlog. */
static void
test_listen_hold(void)
{
	struct tnet n;
	struct utcp_sock *l, *c[5], *acc[5];
	int nacc = 0, err;

	l = five_to_backlog_one(&n, c);
	/* Taken as they come, but held: two at most, ever. */
	for (int round = 0; round < 20; round++) {
		struct utcp_sock *s;

		while ((s = utcp_accept(l, &err)) != NULL) {
			utcp_listen_hold(l, 1);
			acc[nacc++] = s;
		}
		tnet_run(&n, UTCP_MS(500));
	}
	CHECK_EQ(nacc, 2);
	CHECK_EQ(l->acc_held, 2);
	CHECK(tnet_stat(&n, 1, UTCP_STAT_drop_listen_overflow) >= 3);
	/* The application has them: the others get in (at their next SYN
	 * retransmission: 63 s after the first, at the latest). */
	utcp_listen_hold(l, -2);
	for (int round = 0; round < 200 && nacc < 5; round++) {
		struct utcp_sock *s;

		while ((s = utcp_accept(l, &err)) != NULL)
			acc[nacc++] = s;
		tnet_run(&n, UTCP_MS(500));
	}
	CHECK_EQ(nacc, 5);
	CHECK(tnet_run_until(&n, all_established, c, UTCP_SEC(30)));
	utcp_listen_hold(l, -7); /* never below zero */
	CHECK_EQ(l->acc_held, 0);
	for (int i = 0; i < nacc; i++)
		utcp_close(acc[i], n.now);
	for (int i = 0; i < 5; i++)
		utcp_close(c[i], n.now);
	utcp_close(l, n.now);
	tnet_leak_check(&n);
	tnet_free(&n);
}

/* Closing a listener resets what nobody accepted. */
static void
test_listener_close_resets_queue(void)
{
	struct tnet n;
	struct tnet_pair p;

	tnet_init(&n, NULL);
	CHECK_EQ(tnet_connect_pair(&n, 80, &p), 0);
	{
		struct utcp_sock *c2 = tnet_socket(&n, 0);
		struct utcp_addr a = tnet_addr(1, 80);

		CHECK_EQ(utcp_connect(c2, &a, n.now), 0);
		tnet_run(&n, UTCP_MS(50));
		CHECK_EQ(utcp_sock_state(c2), UTCP_ESTABLISHED);
		CHECK_EQ(p.l->accq_len, 1);
		utcp_close(p.l, n.now);
		tnet_run(&n, UTCP_MS(50));
		CHECK_EQ(utcp_sock_state(c2), UTCP_CLOSED);
		CHECK_EQ(utcp_sock_error(c2, false), ECONNRESET);
		utcp_close(c2, n.now);
	}
	/* The accepted one lives on. */
	CHECK_EQ(utcp_sock_state(p.s), UTCP_ESTABLISHED);
	utcp_close(p.c, n.now);
	utcp_close(p.s, n.now);
	tnet_leak_check(&n);
	tnet_free(&n);
}

/* Reset before accept(): accept still returns it, with the error. */
static void
test_reset_before_accept(void)
{
	struct tnet n;
	struct utcp_sock *l, *c, *s;
	struct utcp_addr any = {.family = AF_INET, .port = 80};
	struct utcp_addr a = tnet_addr(1, 80);
	char b[4];
	int err;

	tnet_init(&n, NULL);
	l = tnet_socket(&n, 1);
	CHECK_EQ(utcp_bind(l, &any), 0);
	CHECK_EQ(utcp_listen(l, 8), 0);
	c = tnet_socket(&n, 0);
	CHECK_EQ(utcp_connect(c, &a, n.now), 0);
	tnet_run(&n, UTCP_MS(50));
	utcp_abort(c, n.now);
	tnet_run(&n, UTCP_MS(50));
	s = utcp_accept(l, &err);
	CHECK(s != NULL);
	tnet_is_dead(&n.side[1], s, true);
	if (s != NULL) {
		CHECK_EQ(utcp_sock_state(s), UTCP_CLOSED);
		CHECK_EQ(utcp_recv(s, b, sizeof(b), 0, n.now), -ECONNRESET);
		utcp_close(s, n.now);
	}
	utcp_close(c, n.now);
	utcp_close(l, n.now);
	tnet_leak_check(&n);
	tnet_free(&n);
}

/* SYN-RECEIVED → LISTEN on RST: a SYN from a port A has no socket for
 * draws a SYN|ACK that A's stack resets; the embryo goes away. */
static void
test_syn_received_rst(void)
{
	struct tnet n;
	struct utcp_sock *l;
	struct utcp_addr any = {.family = AF_INET, .port = 80};
	struct wire_tcp seg;
	uint8_t pkt[256];
	size_t len;

	tnet_init(&n, NULL);
	l = tnet_socket(&n, 1);
	CHECK_EQ(utcp_bind(l, &any), 0);
	CHECK_EQ(utcp_listen(l, 8), 0);
	memset(&seg, 0, sizeof(seg));
	seg.sport = 4444;
	seg.dport = 80;
	seg.seq = 1000;
	seg.flags = TH_SYN;
	seg.wnd = 65535;
	seg.opt.present = WOPT_MSS;
	seg.opt.mss = 1460;
	len = tnet_build(pkt, 0, &seg);
	utcp_input(tnet_st(&n, 1), pkt, len, n.now);
	CHECK_EQ(utcp_sock_count(tnet_st(&n, 1)), 2);
	CHECK_EQ(l->synq_len, 1);
	tnet_run(&n, UTCP_MS(50));
	CHECK_EQ(tnet_stat(&n, 0, UTCP_STAT_drop_no_socket), 1);
	CHECK_EQ(tnet_stat(&n, 1, UTCP_STAT_tcp_rst_rcvd), 1);
	CHECK_EQ(utcp_sock_count(tnet_st(&n, 1)), 1);
	CHECK_EQ(l->synq_len, 0);
	CHECK_EQ(utcp_sock_state(l), UTCP_LISTEN);
	CHECK_EQ(tnet_count(&n, 1, UTCP_EV_ACCEPTABLE, l), 0);
	utcp_close(l, n.now);
	tnet_leak_check(&n);
	tnet_free(&n);
}

/* RFC 5961: a RST inside the window but not at RCV.NXT, or a SYN, draws a
 * challenge ACK and changes nothing; the exact RST resets. */
static void
test_challenge_ack(void)
{
	struct tnet n;
	struct tnet_pair p;
	struct wire_tcp seg;
	uint32_t nxt;

	tnet_init(&n, NULL);
	CHECK_EQ(tnet_connect_pair(&n, 80, &p), 0);
	nxt = p.s->rcv_nxt;
	inject(&n, p.c, nxt + 100, 0, TH_RST, NULL, 0);
	CHECK_EQ(utcp_sock_state(p.s), UTCP_ESTABLISHED);
	CHECK_EQ(tnet_stat(&n, 1, UTCP_STAT_tcp_challenge_ack), 1);
	CHECK(tnet_sent(&n, 1, 0, &seg, NULL));
	CHECK_EQ(seg.flags, TH_ACK);
	CHECK_EQ(seg.ack, nxt);
	CHECK_EQ(seg.seq, p.s->snd_nxt);
	/* Out of window: silently dropped. */
	inject(&n, p.c, nxt + 0x40000000u, 0, TH_RST, NULL, 0);
	CHECK_EQ(tnet_stat(&n, 1, UTCP_STAT_drop_rst_out_of_window), 1);
	CHECK_EQ(tnet_stat(&n, 1, UTCP_STAT_tcp_challenge_ack), 1);
	/* A SYN in ESTABLISHED, within 500 ms: rate-limited (Linux). */
	inject(&n, p.c, nxt + 5, 0, TH_SYN, NULL, 0);
	CHECK_EQ(tnet_stat(&n, 1, UTCP_STAT_tcp_challenge_ack), 1);
	CHECK_EQ(tnet_stat(&n, 1, UTCP_STAT_tcp_ack_ratelimited), 1);
	tnet_run(&n, UTCP_MS(500));
	inject(&n, p.c, nxt + 5, 0, TH_SYN, NULL, 0);
	CHECK_EQ(tnet_stat(&n, 1, UTCP_STAT_tcp_challenge_ack), 2);
	CHECK_EQ(utcp_sock_state(p.s), UTCP_ESTABLISHED);
	/* An ACK for data never sent. */
	tnet_run(&n, UTCP_MS(500));
	inject(&n, p.c, nxt, p.s->snd_nxt + 1000, TH_ACK, NULL, 0);
	CHECK_EQ(tnet_stat(&n, 1, UTCP_STAT_drop_bad_ack), 1);
	CHECK_EQ(utcp_sock_state(p.s), UTCP_ESTABLISHED);
	/* Exact. */
	inject(&n, p.c, nxt, 0, TH_RST, NULL, 0);
	CHECK_EQ(utcp_sock_state(p.s), UTCP_CLOSED);
	CHECK_EQ(utcp_sock_error(p.s, false), ECONNRESET);
	tnet_run(&n, UTCP_MS(100));
	utcp_close(p.c, n.now);
	utcp_close(p.s, n.now);
	utcp_close(p.l, n.now);
	tnet_leak_check(&n);
	tnet_free(&n);
}

static void
test_paws(void)
{
	struct tnet n;
	struct tnet_pair p;
	struct wire_tcp seg;
	uint8_t pkt[256];
	size_t len;

	tnet_init(&n, NULL);
	CHECK_EQ(tnet_connect_pair(&n, 80, &p), 0);
	memset(&seg, 0, sizeof(seg));
	seg.sport = p.c->tuple.lport;
	seg.dport = p.c->tuple.rport;
	seg.seq = p.s->rcv_nxt;
	seg.ack = p.s->snd_nxt;
	seg.flags = TH_ACK | TH_PSH;
	seg.wnd = 1000;
	seg.data = (const uint8_t *)"old";
	seg.len = 3;
	seg.opt.present = WOPT_TS;
	seg.opt.tsval = p.s->ts_recent - 1000;
	seg.opt.tsecr = 0;
	len = tnet_build(pkt, 0, &seg);
	utcp_input(tnet_st(&n, 1), pkt, len, n.now);
	CHECK_EQ(tnet_stat(&n, 1, UTCP_STAT_drop_paws), 1);
	CHECK_EQ(utcp_recv_avail(p.s), 0);
	utcp_close(p.c, n.now);
	utcp_close(p.s, n.now);
	utcp_close(p.l, n.now);
	tnet_leak_check(&n);
	tnet_free(&n);
}

/* Both sides connect to each other at once (RFC 9293 figure 7). */
static void
test_simultaneous_open(void)
{
	struct tnet n;
	struct utcp_sock *a, *b;
	struct utcp_addr la = {.family = AF_INET, .port = 5000};
	struct utcp_addr lb = {.family = AF_INET, .port = 6000};
	struct utcp_addr ra = tnet_addr(1, 6000), rb = tnet_addr(0, 5000);
	char buf[8];

	tnet_init(&n, NULL);
	a = tnet_socket(&n, 0);
	b = tnet_socket(&n, 1);
	CHECK_EQ(utcp_bind(a, &la), 0);
	CHECK_EQ(utcp_bind(b, &lb), 0);
	CHECK_EQ(utcp_connect(a, &ra, n.now), 0);
	CHECK_EQ(utcp_connect(b, &rb, n.now), 0);
	tnet_run(&n, UTCP_MS(100));
	CHECK_EQ(utcp_sock_state(a), UTCP_ESTABLISHED);
	CHECK_EQ(utcp_sock_state(b), UTCP_ESTABLISHED);
	CHECK(has_state_event(&n, 0, a, UTCP_SYN_SENT, UTCP_SYN_RECEIVED));
	CHECK(has_state_event(&n, 1, b, UTCP_SYN_SENT, UTCP_SYN_RECEIVED));
	CHECK_EQ(tnet_count(&n, 0, UTCP_EV_CONNECTED, a), 1);
	CHECK_EQ(tnet_count(&n, 1, UTCP_EV_CONNECTED, b), 1);
	CHECK_EQ(utcp_send(a, "hi", 2, 0, n.now), 2);
	tnet_run(&n, UTCP_MS(100));
	CHECK_EQ(utcp_recv(b, buf, sizeof(buf), 0, n.now), 2);
	utcp_close(a, n.now);
	utcp_close(b, n.now);
	tnet_leak_check(&n);
	tnet_free(&n);
}

static int drop_all_from = -1;

static int
drop_all(struct tnet *n, int from, uint8_t *pkt, size_t len)
{
	return from == drop_all_from || drop_all_from == 2;
}

/* SYN retransmitted at 1, 2, 4 … s; ETIMEDOUT after syn_retries. */
static void
test_syn_timeout(void)
{
	struct tnet n;
	struct utcp_sock *c;
	struct utcp_addr a = tnet_addr(1, 80);
	utcp_time_t t0;
	const struct utcp_event *e;

	tnet_init(&n, NULL);
	n.filter = drop_all;
	drop_all_from = 0;
	c = tnet_socket(&n, 0);
	t0 = n.now;
	CHECK_EQ(utcp_connect(c, &a, n.now), 0);
	tnet_run(&n, UTCP_SEC(126));
	CHECK_EQ(utcp_sock_state(c), UTCP_SYN_SENT);
	CHECK_EQ(n.side[0].sent, 7); /* SYN + 6 retransmissions */
	{
		utcp_time_t at;
		struct wire_tcp seg;

		CHECK(tnet_sent(&n, 0, 0, &seg, &at));
		CHECK_EQ(at - t0, UTCP_SEC(63));
		CHECK_EQ(seg.flags, TH_SYN);
		CHECK(tnet_sent(&n, 0, 6, &seg, &at));
		CHECK_EQ(at - t0, 0);
	}
	tnet_run(&n, UTCP_SEC(2));
	CHECK_EQ(utcp_sock_state(c), UTCP_CLOSED);
	e = tnet_last(&n, 0, UTCP_EV_ERROR, c);
	CHECK(e != NULL && e->err == ETIMEDOUT && e->now - t0 == UTCP_SEC(127));
	n.filter = NULL;
	utcp_close(c, n.now);
	tnet_leak_check(&n);
	tnet_free(&n);
}

/* RFC 6298 5.7: a handshake that needed a retransmission starts data
 * with a 3 s RTO; TCP_SYNCNT bounds the SYN retries. */
static int drop_first_syn_left;

static int
drop_first_syn(struct tnet *n, int from, uint8_t *pkt, size_t len)
{
	struct wire_ip ip;
	struct wire_tcp seg;

	if (from == 0 && drop_first_syn_left > 0 &&
	    tnet_parse(pkt, len, &ip, &seg) && seg.flags == TH_SYN) {
		drop_first_syn_left--;
		return 1;
	}
	return 0;
}

static void
test_syn_rto_fallback(void)
{
	struct tnet n;
	struct tnet_pair p;
	int two = 2;

	tnet_init(&n, NULL);
	n.filter = drop_first_syn;
	drop_first_syn_left = 1;
	CHECK_EQ(tnet_connect_pair(&n, 80, &p), 0);
	CHECK_EQ(p.c->srtt, 0);
	CHECK_EQ(p.c->rto, UTCP_SEC(3));
	/* The first data ACK brings a sample. */
	CHECK_EQ(utcp_send(p.c, "x", 1, 0, n.now), 1);
	tnet_run(&n, UTCP_MS(50));
	CHECK(p.c->srtt > 0);
	CHECK(p.c->rto < UTCP_SEC(1));
	utcp_close(p.c, n.now);
	utcp_close(p.s, n.now);
	utcp_close(p.l, n.now);
	/* TCP_SYNCNT 2: SYN, two retries, gone after 1 + 2 + 4 s. */
	{
		struct utcp_sock *c = tnet_socket(&n, 0);
		struct utcp_addr a = tnet_addr(1, 80);
		utcp_time_t t0 = n.now;
		const struct utcp_event *e;

		CHECK_EQ(utcp_setsockopt(c, IPPROTO_TCP, TCP_SYNCNT, &two,
					 sizeof(two), n.now),
			 0);
		drop_first_syn_left = 100;
		CHECK_EQ(utcp_connect(c, &a, n.now), 0);
		tnet_run(&n, UTCP_SEC(10));
		e = tnet_last(&n, 0, UTCP_EV_ERROR, c);
		CHECK(e != NULL && e->err == ETIMEDOUT &&
		      e->now - t0 == UTCP_SEC(7));
		utcp_close(c, n.now);
	}
	n.filter = NULL;
	tnet_leak_check(&n);
	tnet_free(&n);
}

/* Data nobody acknowledges: retries2 RTOs, then ETIMEDOUT. */
static void
test_retrans_timeout(void)
{
	struct tnet n;
	struct tnet_pair p;
	const struct utcp_event *e;

	tnet_init(&n, NULL);
	CHECK_EQ(tnet_connect_pair(&n, 80, &p), 0);
	n.filter = drop_all;
	drop_all_from = 0;
	CHECK_EQ(utcp_send(p.c, "x", 1, 0, n.now), 1);
	tnet_run(&n, UTCP_SEC(2000));
	CHECK_EQ(utcp_sock_state(p.c), UTCP_CLOSED);
	e = tnet_last(&n, 0, UTCP_EV_ERROR, p.c);
	CHECK(e != NULL && e->err == ETIMEDOUT);
	/* 15 timeouts (tcp_retries2), after one tail loss probe (RFC 8985:
	 * SACK is on), which does not count as a timeout */
	CHECK_EQ(tnet_stat(&n, 0, UTCP_STAT_tcp_rto_expired), 15);
	CHECK_EQ(tnet_stat(&n, 0, UTCP_STAT_tcp_loss_probe), 1);
	CHECK_EQ(tnet_count(&n, 0, UTCP_EV_RETRANSMIT, p.c), 16);
	CHECK_EQ(tnet_stat(&n, 0, UTCP_STAT_tcp_retrans_timeout), 1);
	n.filter = NULL;
	utcp_close(p.c, n.now);
	utcp_close(p.s, n.now);
	utcp_close(p.l, n.now);
	tnet_leak_check(&n);
	tnet_free(&n);
}

static void
test_user_timeout(void)
{
	struct tnet n;
	struct tnet_pair p;
	const struct utcp_event *e;
	int ut = 5000;
	utcp_time_t t0;

	tnet_init(&n, NULL);
	CHECK_EQ(tnet_connect_pair(&n, 80, &p), 0);
	CHECK_EQ(utcp_setsockopt(p.c, IPPROTO_TCP, TCP_USER_TIMEOUT, &ut,
				 sizeof(ut), n.now),
		 0);
	n.filter = drop_all;
	drop_all_from = 0;
	t0 = n.now;
	CHECK_EQ(utcp_send(p.c, "x", 1, 0, n.now), 1);
	tnet_run(&n, UTCP_SEC(20));
	CHECK_EQ(utcp_sock_state(p.c), UTCP_CLOSED);
	e = tnet_last(&n, 0, UTCP_EV_ERROR, p.c);
	CHECK(e != NULL && e->err == ETIMEDOUT);
	CHECK(e != NULL && e->now - t0 >= UTCP_MS(5000) &&
	      e->now - t0 <= UTCP_MS(5100));
	CHECK_EQ(tnet_stat(&n, 0, UTCP_STAT_tcp_user_timeout), 1);
	n.filter = NULL;
	utcp_close(p.c, n.now);
	utcp_close(p.s, n.now);
	utcp_close(p.l, n.now);
	tnet_leak_check(&n);
	tnet_free(&n);
}

static void
set_keepalive(struct tnet *n, struct utcp_sock *s, int idle, int intvl, int cnt)
{
	int one = 1;

	CHECK_EQ(utcp_setsockopt(s, IPPROTO_TCP, TCP_KEEPIDLE, &idle,
				 sizeof(idle), n->now),
		 0);
	CHECK_EQ(utcp_setsockopt(s, IPPROTO_TCP, TCP_KEEPINTVL, &intvl,
				 sizeof(intvl), n->now),
		 0);
	CHECK_EQ(utcp_setsockopt(s, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt),
				 n->now),
		 0);
	CHECK_EQ(utcp_setsockopt(s, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one),
				 n->now),
		 0);
}

/* Keepalive at virtual time: an answering peer keeps it alive for
 * hours; a dead one is detected after idle + cnt * intvl. */
static void
test_keepalive(void)
{
	struct tnet n;
	struct tnet_pair p;
	const struct utcp_event *e;
	utcp_time_t t0;
	struct wire_tcp seg;

	tnet_init(&n, NULL);
	CHECK_EQ(tnet_connect_pair(&n, 80, &p), 0);
	t0 = n.now;
	set_keepalive(&n, p.c, 10, 5, 3);
	tnet_run(&n, UTCP_SEC(9));
	CHECK_EQ(tnet_count(&n, 0, UTCP_EV_KEEPALIVE, p.c), 0);
	tnet_run(&n, UTCP_SEC(2));
	CHECK_EQ(tnet_count(&n, 0, UTCP_EV_KEEPALIVE, p.c), 1);
	e = tnet_last(&n, 0, UTCP_EV_KEEPALIVE, p.c);
	CHECK(e != NULL && e->now - t0 == UTCP_SEC(10));
	/* The probe is SEG.SEQ = SND.UNA - 1 with no data. */
	CHECK(tnet_sent(&n, 0, 0, &seg, NULL));
	CHECK_EQ(seg.seq, p.c->snd_una - 1);
	CHECK_EQ(seg.len, 0);
	CHECK_EQ(seg.flags, TH_ACK);
	/* Two hours with an answering peer. */
	tnet_run(&n, UTCP_SEC(7200));
	CHECK_EQ(utcp_sock_state(p.c), UTCP_ESTABLISHED);
	CHECK(tnet_count(&n, 0, UTCP_EV_KEEPALIVE, p.c) >= 700);
	/* The peer dies. */
	n.filter = drop_all;
	drop_all_from = 1;
	tnet_run(&n, UTCP_SEC(40));
	CHECK_EQ(utcp_sock_state(p.c), UTCP_CLOSED);
	e = tnet_last(&n, 0, UTCP_EV_ERROR, p.c);
	CHECK(e != NULL && e->err == ETIMEDOUT);
	{
		const struct utcp_event *k =
		    tnet_last(&n, 0, UTCP_EV_KEEPALIVE, p.c);

		CHECK(k != NULL && k->arg == 3);
		CHECK(k != NULL && e != NULL && e->now - k->now == UTCP_SEC(5));
	}
	CHECK_EQ(tnet_stat(&n, 0, UTCP_STAT_tcp_keepalive_timeout), 1);
	CHECK_EQ(tnet_count(&n, 0, UTCP_EV_RST_SENT, p.c), 1);
	n.filter = NULL;
	utcp_close(p.c, n.now);
	utcp_close(p.s, n.now);
	utcp_close(p.l, n.now);
	tnet_leak_check(&n);
	tnet_free(&n);
}

/* Linux's defaults and a listener passing them to what it accepts. */
static void
test_keepalive_inherit(void)
{
	struct tnet n;
	struct tnet_pair p;
	int v;
	size_t len = sizeof(v);
	int idle = 30, one = 1;
	struct utcp_addr any = {.family = AF_INET, .port = 81};
	struct utcp_sock *l, *c, *s;
	struct utcp_addr a = tnet_addr(1, 81);
	int err;

	tnet_init(&n, NULL);
	CHECK_EQ(tnet_connect_pair(&n, 80, &p), 0);
	CHECK_EQ(utcp_getsockopt(p.c, IPPROTO_TCP, TCP_KEEPIDLE, &v, &len), 0);
	CHECK_EQ(v, 7200);
	CHECK_EQ(utcp_getsockopt(p.c, IPPROTO_TCP, TCP_KEEPINTVL, &v, &len), 0);
	CHECK_EQ(v, 75);
	CHECK_EQ(utcp_getsockopt(p.c, IPPROTO_TCP, TCP_KEEPCNT, &v, &len), 0);
	CHECK_EQ(v, 9);
	l = tnet_socket(&n, 1);
	CHECK_EQ(utcp_setsockopt(l, IPPROTO_TCP, TCP_KEEPIDLE, &idle,
				 sizeof(idle), n.now),
		 0);
	CHECK_EQ(utcp_setsockopt(l, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one),
				 n.now),
		 0);
	CHECK_EQ(utcp_bind(l, &any), 0);
	CHECK_EQ(utcp_listen(l, 4), 0);
	c = tnet_socket(&n, 0);
	CHECK_EQ(utcp_connect(c, &a, n.now), 0);
	tnet_run(&n, UTCP_MS(100));
	s = utcp_accept(l, &err);
	CHECK(s != NULL);
	tnet_is_dead(&n.side[1], s, true);
	CHECK_EQ(utcp_getsockopt(s, IPPROTO_TCP, TCP_KEEPIDLE, &v, &len), 0);
	CHECK_EQ(v, 30);
	CHECK_EQ(utcp_getsockopt(s, SOL_SOCKET, SO_KEEPALIVE, &v, &len), 0);
	CHECK_EQ(v, 1);
	tnet_run(&n, UTCP_SEC(31));
	CHECK_EQ(tnet_count(&n, 1, UTCP_EV_KEEPALIVE, s), 1);
	utcp_close(s, n.now);
	utcp_close(c, n.now);
	utcp_close(l, n.now);
	utcp_close(p.c, n.now);
	utcp_close(p.s, n.now);
	utcp_close(p.l, n.now);
	tnet_leak_check(&n);
	tnet_free(&n);
}

/* The orphaned FIN-WAIT-2 gives up after fin_timeout. */
static void
test_fin_wait2_timeout(void)
{
	struct tnet n;
	struct tnet_pair p;

	tnet_init(&n, NULL);
	CHECK_EQ(tnet_connect_pair(&n, 80, &p), 0);
	utcp_close(p.c, n.now);
	tnet_run(&n, UTCP_MS(50));
	CHECK_EQ(utcp_sock_state(p.c), UTCP_FIN_WAIT_2);
	tnet_run(&n, UTCP_SEC(59));
	CHECK_EQ(utcp_sock_count(tnet_st(&n, 0)), 1);
	tnet_run(&n, UTCP_SEC(2));
	CHECK_EQ(utcp_sock_count(tnet_st(&n, 0)), 0);
	/* The peer's late FIN finds no socket: RST. */
	utcp_close(p.s, n.now);
	tnet_run(&n, UTCP_MS(50));
	CHECK_EQ(tnet_stat(&n, 0, UTCP_STAT_drop_no_socket), 1);
	CHECK_EQ(utcp_sock_count(tnet_st(&n, 1)), 1);
	utcp_close(p.l, n.now);
	tnet_leak_check(&n);
	tnet_free(&n);
}

/* A newer SYN reopens a TIME-WAIT 4-tuple (RFC 6191). */
static void
test_time_wait_reuse(void)
{
	struct tnet n;
	struct tnet_pair p;
	struct utcp_sock *c2;
	struct utcp_addr la, ra = tnet_addr(1, 80);
	int one = 1, err;

	tnet_init(&n, NULL);
	CHECK_EQ(tnet_connect_pair(&n, 80, &p), 0);
	utcp_sock_names(p.c, &la, NULL);
	/* The server closes first, so it holds TIME-WAIT. */
	utcp_close(p.s, n.now);
	tnet_run(&n, UTCP_MS(50));
	utcp_close(p.c, n.now);
	tnet_run(&n, UTCP_MS(50));
	CHECK_EQ(utcp_sock_count(tnet_st(&n, 0)), 0);
	CHECK_EQ(utcp_sock_count(tnet_st(&n, 1)), 2);
	tnet_run(&n, UTCP_SEC(1));
	c2 = tnet_socket(&n, 0);
	CHECK_EQ(utcp_setsockopt(c2, SOL_SOCKET, SO_REUSEADDR, &one,
				 sizeof(one), n.now),
		 0);
	la.family = AF_INET;
	memset(la.ip, 0, sizeof(la.ip));
	CHECK_EQ(utcp_bind(c2, &la), 0);
	CHECK_EQ(utcp_connect(c2, &ra, n.now), 0);
	tnet_run(&n, UTCP_MS(50));
	CHECK_EQ(utcp_sock_state(c2), UTCP_ESTABLISHED);
	{
		struct utcp_sock *s2 = utcp_accept(p.l, &err);

		CHECK(s2 != NULL);
		tnet_is_dead(&n.side[1], s2, true);
		if (s2 != NULL)
			utcp_close(s2, n.now);
	}
	utcp_close(c2, n.now);
	utcp_close(p.l, n.now);
	tnet_leak_check(&n);
	tnet_free(&n);
}

/* Nagle holds a second small segment until the first is acknowledged;
 * TCP_NODELAY sends at once; TCP_CORK holds until uncorked. */
static void
test_nagle_nodelay_cork(void)
{
	struct tnet n;
	struct tnet_pair p;
	unsigned sent0;
	int one = 1, zero = 0;
	char b[64];

	tnet_init(&n, NULL);
	CHECK_EQ(tnet_connect_pair(&n, 80, &p), 0);
	sent0 = n.side[0].sent;
	CHECK_EQ(utcp_send(p.c, "a", 1, 0, n.now), 1);
	CHECK_EQ(utcp_send(p.c, "b", 1, 0, n.now), 1);
	CHECK_EQ(n.side[0].sent - sent0, 1);
	tnet_run(&n, UTCP_MS(100));
	CHECK_EQ(utcp_recv(p.s, b, sizeof(b), 0, n.now), 2);
	CHECK_EQ(utcp_setsockopt(p.c, IPPROTO_TCP, TCP_NODELAY, &one,
				 sizeof(one), n.now),
		 0);
	sent0 = n.side[0].sent;
	CHECK_EQ(utcp_send(p.c, "c", 1, 0, n.now), 1);
	CHECK_EQ(utcp_send(p.c, "d", 1, 0, n.now), 1);
	CHECK_EQ(n.side[0].sent - sent0, 2);
	tnet_run(&n, UTCP_MS(100));
	CHECK_EQ(utcp_recv(p.s, b, sizeof(b), 0, n.now), 2);
	CHECK_EQ(utcp_setsockopt(p.c, IPPROTO_TCP, TCP_CORK, &one, sizeof(one),
				 n.now),
		 0);
	sent0 = n.side[0].sent;
	CHECK_EQ(utcp_send(p.c, "e", 1, 0, n.now), 1);
	CHECK_EQ(utcp_send(p.c, "f", 1, 0, n.now), 1);
	tnet_run(&n, UTCP_MS(100));
	CHECK_EQ(n.side[0].sent - sent0, 0);
	CHECK_EQ(utcp_setsockopt(p.c, IPPROTO_TCP, TCP_CORK, &zero,
				 sizeof(zero), n.now),
		 0);
	CHECK_EQ(n.side[0].sent - sent0, 1);
	tnet_run(&n, UTCP_MS(100));
	CHECK_EQ(utcp_recv(p.s, b, sizeof(b), 0, n.now), 2);
	utcp_close(p.c, n.now);
	utcp_close(p.s, n.now);
	utcp_close(p.l, n.now);
	tnet_leak_check(&n);
	tnet_free(&n);
}

/* Past quick-ACK mode, one small segment is ACKed after cfg.delack, two
 * full ones at once. */
static void
test_delayed_ack(void)
{
	struct tnet n;
	struct tnet_pair p;
	struct wire_tcp seg;
	utcp_time_t at, t0;
	char b[4096];

	tnet_init(&n, NULL);
	CHECK_EQ(tnet_connect_pair(&n, 80, &p), 0);
	p.s->quickack = 0;
	t0 = n.now;
	CHECK_EQ(utcp_send(p.c, "x", 1, 0, n.now), 1);
	tnet_run(&n, UTCP_MS(100));
	CHECK(tnet_sent(&n, 1, 0, &seg, &at));
	CHECK_EQ(seg.flags, TH_ACK);
	CHECK_EQ(at - t0, UTCP_MS(5) + UTCP_MS(40));
	CHECK_EQ(utcp_recv(p.s, b, sizeof(b), 0, n.now), 1);
	memset(b, 'y', sizeof(b));
	t0 = n.now;
	CHECK_EQ(utcp_send(p.c, b, 2 * 1448, 0, n.now), 2 * 1448);
	tnet_run(&n, UTCP_MS(100));
	CHECK(tnet_sent(&n, 1, 0, &seg, &at));
	CHECK_EQ(at - t0, UTCP_MS(5));
	utcp_close(p.c, n.now);
	utcp_close(p.s, n.now);
	utcp_close(p.l, n.now);
	tnet_leak_check(&n);
	tnet_free(&n);
}

/* The SYN's options in Linux's layout, and MSS 536 without an option. */
static void
test_syn_options(void)
{
	struct tnet n;
	struct utcp_sock *c;
	struct utcp_addr a = tnet_addr(1, 80);
	const struct tnet_cap *cap;
	static const uint8_t layout[] = {2, 4, 0x05, 0xb4, 4, 2, 8, 10};

	tnet_init(&n, NULL);
	c = tnet_socket(&n, 0);
	CHECK_EQ(utcp_connect(c, &a, n.now), 0);
	cap = &n.side[0].cap[0];
	CHECK_EQ(cap->len, 20 + 40);
	CHECK(memcmp(cap->data + 40, layout, sizeof(layout)) == 0);
	CHECK_EQ(cap->data[40 + 16], 1);		     /* NOP */
	CHECK_EQ(cap->data[40 + 17], 3);		     /* WS */
	CHECK_EQ(cap->data[40 + 19], 7);		     /* shift 7 */
	CHECK_EQ(cap->data[34] << 8 | cap->data[35], 64240); /* window */
	utcp_close(c, n.now);
	{
		/* A bare SYN: the connection uses MSS 536. */
		struct utcp_sock *l = tnet_socket(&n, 1);
		struct utcp_addr any = {.family = AF_INET, .port = 90};
		struct wire_tcp seg;
		uint8_t pkt[128];
		size_t len;
		struct utcp_sock *emb;

		CHECK_EQ(utcp_bind(l, &any), 0);
		CHECK_EQ(utcp_listen(l, 4), 0);
		memset(&seg, 0, sizeof(seg));
		seg.sport = 3333;
		seg.dport = 90;
		seg.seq = 77;
		seg.flags = TH_SYN;
		seg.wnd = 8192;
		len = tnet_build(pkt, 0, &seg);
		utcp_input(tnet_st(&n, 1), pkt, len, n.now);
		emb = TAILQ_FIRST(&l->synq);
		CHECK(emb != NULL);
		if (emb != NULL) {
			CHECK_EQ(emb->mss, 536);
			CHECK(!emb->ts_ok && !emb->sack_ok && !emb->ws_ok);
		}
		CHECK(tnet_sent(&n, 1, 0, &seg, NULL));
		CHECK_EQ(seg.flags, TH_SYN | TH_ACK);
		CHECK_EQ(seg.ack, 78);
		CHECK_EQ(seg.opt.present, WOPT_MSS);
		utcp_close(l, n.now);
	}
	tnet_run(&n, UTCP_SEC(1));
	tnet_leak_check(&n);
	tnet_free(&n);
}

static void
test_sockopts(void)
{
	struct tnet n;
	struct tnet_pair p;
	int v, bad;
	size_t len = sizeof(v);
	char name[16];
	struct tcp_info ti;

	tnet_init(&n, NULL);
	CHECK_EQ(tnet_connect_pair(&n, 80, &p), 0);
	bad = 0;
	CHECK_EQ(utcp_setsockopt(p.c, IPPROTO_TCP, TCP_KEEPIDLE, &bad,
				 sizeof(bad), n.now),
		 -EINVAL);
	bad = 32768;
	CHECK_EQ(utcp_setsockopt(p.c, IPPROTO_TCP, TCP_KEEPIDLE, &bad,
				 sizeof(bad), n.now),
		 -EINVAL);
	bad = 128;
	CHECK_EQ(utcp_setsockopt(p.c, IPPROTO_TCP, TCP_KEEPCNT, &bad,
				 sizeof(bad), n.now),
		 -EINVAL);
	bad = 32767;
	CHECK_EQ(utcp_setsockopt(p.c, IPPROTO_TCP, TCP_KEEPINTVL, &bad,
				 sizeof(bad), n.now),
		 0);
	CHECK_EQ(
	    utcp_setsockopt(p.c, IPPROTO_TCP, TCP_KEEPINTVL, &bad, 2, n.now),
	    -EINVAL);
	CHECK_EQ(
	    utcp_setsockopt(p.c, IPPROTO_TCP, 9999, &bad, sizeof(bad), n.now),
	    -ENOPROTOOPT);
	CHECK_EQ(utcp_setsockopt(p.c, 99, 1, &bad, sizeof(bad), n.now),
		 -ENOPROTOOPT);
	len = sizeof(v);
	CHECK_EQ(utcp_getsockopt(p.c, SOL_SOCKET, SO_ACCEPTCONN, &v, &len), 0);
	CHECK_EQ(v, 0);
	CHECK_EQ(utcp_getsockopt(p.l, SOL_SOCKET, SO_ACCEPTCONN, &v, &len), 0);
	CHECK_EQ(v, 1);
	CHECK_EQ(utcp_getsockopt(p.c, SOL_SOCKET, SO_ERROR, &v, &len), 0);
	CHECK_EQ(v, 0);
	CHECK_EQ(utcp_getsockopt(p.c, IPPROTO_TCP, TCP_MAXSEG, &v, &len), 0);
	CHECK_EQ(v, 1448);
	v = 65536;
	CHECK_EQ(
	    utcp_setsockopt(p.c, SOL_SOCKET, SO_RCVBUF, &v, sizeof(v), n.now),
	    0);
	CHECK_EQ(utcp_getsockopt(p.c, SOL_SOCKET, SO_RCVBUF, &v, &len), 0);
	CHECK_EQ(v, 131072);
	v = 1;
	CHECK_EQ(
	    utcp_setsockopt(p.c, SOL_SOCKET, SO_SNDBUF, &v, sizeof(v), n.now),
	    0);
	CHECK_EQ(utcp_getsockopt(p.c, SOL_SOCKET, SO_SNDBUF, &v, &len), 0);
	CHECK_EQ(v, 4608);
	/* Congestion control by name. */
	len = sizeof(name);
	CHECK_EQ(utcp_getsockopt(p.c, IPPROTO_TCP, TCP_CONGESTION, name, &len),
		 0);
	CHECK(strcmp(name, "cubic") == 0);
	CHECK_EQ(
	    utcp_setsockopt(p.c, IPPROTO_TCP, TCP_CONGESTION, "reno", 4, n.now),
	    0);
	len = sizeof(name);
	CHECK_EQ(utcp_getsockopt(p.c, IPPROTO_TCP, TCP_CONGESTION, name, &len),
		 0);
	CHECK(strcmp(name, "reno") == 0);
	CHECK_EQ(
	    utcp_setsockopt(p.c, IPPROTO_TCP, TCP_CONGESTION, "bbr", 3, n.now),
	    -ENOENT);
	/* IP_TOS reaches the wire. */
	v = 0x10;
	CHECK_EQ(utcp_setsockopt(p.c, IPPROTO_IP, IP_TOS, &v, sizeof(v), n.now),
		 0);
	len = sizeof(v);
	CHECK_EQ(utcp_getsockopt(p.c, IPPROTO_IP, IP_TOS, &v, &len), 0);
	CHECK_EQ(v, 0x10);
	CHECK_EQ(utcp_send(p.c, "t", 1, 0, n.now), 1);
	CHECK_EQ(n.side[0].cap[(n.side[0].sent - 1) % TNET_NCAP].data[1], 0x10);
	tnet_run(&n, UTCP_MS(50));
	/* TCP_INFO */
	len = sizeof(ti);
	CHECK_EQ(utcp_getsockopt(p.c, IPPROTO_TCP, TCP_INFO, &ti, &len), 0);
	CHECK_EQ(len, sizeof(ti));
	CHECK_EQ(ti.tcpi_state, 1);
	CHECK_EQ(ti.tcpi_snd_mss, 1448);
	CHECK(ti.tcpi_options & TCPI_OPT_TIMESTAMPS);
	CHECK(ti.tcpi_options & TCPI_OPT_SACK);
	CHECK(ti.tcpi_options & TCPI_OPT_WSCALE);
	CHECK_EQ(ti.tcpi_snd_wscale, 7);
	CHECK_EQ(ti.tcpi_snd_cwnd, 10);
	CHECK_EQ(ti.tcpi_bytes_acked, 1);
	CHECK(ti.tcpi_rtt >= 9000 && ti.tcpi_rtt <= 11000);
	/* A short buffer gets a prefix. */
	len = 4;
	CHECK_EQ(utcp_getsockopt(p.c, IPPROTO_TCP, TCP_INFO, &ti, &len), 0);
	CHECK_EQ(len, 4);
	/* TCP_MAXSEG before connecting shapes the SYN's MSS. */
	{
		struct utcp_sock *c = tnet_socket(&n, 0);
		struct utcp_addr a = tnet_addr(1, 80);
		struct wire_tcp seg;
		int err;
		struct utcp_sock *s;

		v = 1000;
		CHECK_EQ(utcp_setsockopt(c, IPPROTO_TCP, TCP_MAXSEG, &v,
					 sizeof(v), n.now),
			 0);
		v = 50;
		CHECK_EQ(utcp_setsockopt(c, IPPROTO_TCP, TCP_MAXSEG, &v,
					 sizeof(v), n.now),
			 -EINVAL);
		len = sizeof(v);
		CHECK_EQ(utcp_getsockopt(c, IPPROTO_TCP, TCP_MAXSEG, &v, &len),
			 0);
		CHECK_EQ(v, 1000);
		CHECK_EQ(utcp_connect(c, &a, n.now), 0);
		CHECK(tnet_sent(&n, 0, 0, &seg, NULL));
		CHECK_EQ(seg.opt.mss, 1000);
		tnet_run(&n, UTCP_MS(50));
		s = utcp_accept(p.l, &err);
		CHECK(s != NULL);
		tnet_is_dead(&n.side[1], s, true);
		CHECK(s != NULL && s->mss == 1000);
		if (s != NULL)
			utcp_close(s, n.now);
		utcp_close(c, n.now);
	}
	utcp_close(p.c, n.now);
	utcp_close(p.s, n.now);
	utcp_close(p.l, n.now);
	tnet_leak_check(&n);
	tnet_free(&n);
}

/* Bind conflicts. */
static void
test_bind(void)
{
	struct tnet n;
	struct utcp_sock *a, *b;
	struct utcp_addr any = {.family = AF_INET, .port = 80};
	struct utcp_addr other = tnet_addr(1, 80); /* not A's address */
	struct utcp_addr v6 = {.family = AF_INET6, .port = 80};
	struct utcp_addr zero = {.family = AF_INET, .port = 0}, got;

	tnet_init(&n, NULL);
	a = tnet_socket(&n, 0);
	b = tnet_socket(&n, 0);
	CHECK_EQ(utcp_bind(a, &other), -EADDRNOTAVAIL);
	CHECK_EQ(utcp_bind(a, &v6), -EAFNOSUPPORT);
	CHECK_EQ(utcp_bind(a, &any), 0);
	CHECK_EQ(utcp_bind(a, &any), -EINVAL);
	CHECK_EQ(utcp_bind(b, &any), -EADDRINUSE);
	CHECK_EQ(utcp_listen(a, 5), 0);
	CHECK_EQ(utcp_bind(b, &zero), 0);
	utcp_sock_names(b, &got, NULL);
	CHECK(got.port >= 32768 && got.port <= 60999);
	CHECK_EQ(utcp_listen(b, -1), 0);
	CHECK_EQ(b->backlog, 4096);
	utcp_close(a, n.now);
	utcp_close(b, n.now);
	tnet_leak_check(&n);
	tnet_free(&n);
}

/* Many connections at once: timers and demux at scale. */
static void
test_many_connections(void)
{
	enum { N = 2000 };
	struct tnet n;
	struct utcp_sock *l, **c, **s;
	struct utcp_addr any = {.family = AF_INET, .port = 80};
	struct utcp_addr a = tnet_addr(1, 80);
	int ns = 0, err, bad = 0;

	tnet_init(&n, NULL);
	c = calloc(N, sizeof(*c));
	s = calloc(N, sizeof(*s));
	l = tnet_socket(&n, 1);
	CHECK_EQ(utcp_bind(l, &any), 0);
	CHECK_EQ(utcp_listen(l, 4096), 0);
	for (int i = 0; i < N; i++) {
		c[i] = tnet_socket(&n, 0);
		bad += utcp_connect(c[i], &a, n.now) != 0;
	}
	tnet_run(&n, UTCP_MS(100));
	while (ns < N && (s[ns] = utcp_accept(l, &err)) != NULL) {
		tnet_is_dead(&n.side[1], s[ns], true);
		ns++;
	}
	CHECK_EQ(ns, N);
	for (int i = 0; i < N; i++)
		bad += utcp_send(c[i], "q", 1, 0, n.now) != 1;
	tnet_run(&n, UTCP_MS(100));
	for (int i = 0; i < ns; i++) {
		char b;

		bad += utcp_recv(s[i], &b, 1, 0, n.now) != 1;
		utcp_close(s[i], n.now);
	}
	CHECK_EQ(bad, 0);
	for (int i = 0; i < N; i++)
		utcp_close(c[i], n.now);
	utcp_close(l, n.now);
	free(c);
	free(s);
	tnet_leak_check(&n);
	tnet_free(&n);
}

int
main(void)
{
	RUN(test_handshake);
	RUN(test_listen_hold);
	RUN(test_data_small);
	RUN(test_close_three_segments);
	RUN(test_server_closes_first);
	RUN(test_simultaneous_close);
	RUN(test_time_wait_refin);
	RUN(test_refused);
	RUN(test_reset_by_abort);
	RUN(test_close_unread_sends_rst);
	RUN(test_linger_zero);
	RUN(test_listen_overflow);
	RUN(test_listener_close_resets_queue);
	RUN(test_reset_before_accept);
	RUN(test_syn_received_rst);
	RUN(test_challenge_ack);
	RUN(test_paws);
	RUN(test_simultaneous_open);
	RUN(test_syn_timeout);
	RUN(test_syn_rto_fallback);
	RUN(test_retrans_timeout);
	RUN(test_user_timeout);
	RUN(test_keepalive);
	RUN(test_keepalive_inherit);
	RUN(test_fin_wait2_timeout);
	RUN(test_time_wait_reuse);
	RUN(test_nagle_nodelay_cork);
	RUN(test_delayed_ack);
	RUN(test_syn_options);
	RUN(test_sockopts);
	RUN(test_bind);
	RUN(test_many_connections);
	return CHECK_DONE();
}
