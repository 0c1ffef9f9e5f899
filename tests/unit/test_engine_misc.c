/*
 * test_engine_misc.c — IPv6 and dual stack, the socket-call error
 * contract, stack teardown, utcp_foreach, timers with many sockets, and
 * garbage injected into live connections.
 */
#include "internal.h"
#include "test_engine_net.h"

#include <errno.h>
#include <linux/tcp.h>
#include <netinet/in.h>

static struct utcp_sock *
sock6(struct tnet *n, int side)
{
	struct utcp_sock *s = utcp_socket(tnet_st(n, side), AF_INET6);

	tnet_is_dead(&n->side[side], s, true);
	return s;
}

static void
test_ipv6(void)
{
	struct tnet n;
	struct utcp_sock *l, *c, *s;
	struct utcp_addr any = {.family = AF_INET6, .port = 443};
	struct utcp_addr a = tnet_addr6(1, 443), la, ra;
	char b[16];
	int err;

	tnet_init(&n, NULL);
	l = sock6(&n, 1);
	c = sock6(&n, 0);
	CHECK_EQ(utcp_bind(l, &any), 0);
	CHECK_EQ(utcp_listen(l, 4), 0);
	CHECK_EQ(utcp_connect(c, &a, n.now), 0);
	tnet_run(&n, UTCP_MS(50));
	CHECK_EQ(utcp_sock_state(c), UTCP_ESTABLISHED);
	s = utcp_accept(l, &err);
	CHECK(s != NULL);
	tnet_is_dead(&n.side[1], s, true);
	if (s == NULL)
		goto out;
	CHECK_EQ(c->mss, 1440);
	utcp_sock_names(s, &la, &ra);
	CHECK_EQ(la.family, AF_INET6);
	CHECK_EQ(la.port, 443);
	CHECK_EQ(ra.ip[15], 1);
	CHECK_EQ(utcp_send(c, "six", 3, 0, n.now), 3);
	tnet_run(&n, UTCP_MS(50));
	CHECK_EQ(utcp_recv(s, b, sizeof(b), 0, n.now), 3);
	utcp_close(s, n.now);
out:
	utcp_close(c, n.now);
	utcp_close(l, n.now);
	tnet_leak_check(&n);
	tnet_free(&n);
}

/* An IPv6 listener takes IPv4 unless IPV6_V6ONLY; an IPv6 socket
 * connects to a v4-mapped address over IPv4. */
static void
test_dual_stack(void)
{
	struct tnet n;
	struct utcp_sock *l, *c, *s, *c6;
	struct utcp_addr any = {.family = AF_INET6, .port = 80};
	struct utcp_addr a4 = tnet_addr(1, 80), la, ra, mapped;
	int err, one = 1;

	tnet_init(&n, NULL);
	l = sock6(&n, 1);
	CHECK_EQ(utcp_bind(l, &any), 0);
	CHECK_EQ(utcp_listen(l, 4), 0);
	c = tnet_socket(&n, 0);
	CHECK_EQ(utcp_connect(c, &a4, n.now), 0);
	tnet_run(&n, UTCP_MS(50));
	CHECK_EQ(utcp_sock_state(c), UTCP_ESTABLISHED);
	s = utcp_accept(l, &err);
	CHECK(s != NULL);
	tnet_is_dead(&n.side[1], s, true);
	if (s != NULL) {
		utcp_sock_names(s, &la, &ra);
		CHECK_EQ(ra.family, AF_INET6);
		CHECK_EQ(ra.ip[10], 0xff);
		CHECK_EQ(ra.ip[11], 0xff);
		CHECK(memcmp(ra.ip + 12, tnet_ip[0], 4) == 0);
		CHECK_EQ(s->mss, 1460);
		utcp_close(s, n.now);
	}
	/* v4-mapped destination from an IPv6 socket. */
	memset(&mapped, 0, sizeof(mapped));
	mapped.family = AF_INET6;
	mapped.port = 80;
	mapped.ip[10] = mapped.ip[11] = 0xff;
	memcpy(mapped.ip + 12, tnet_ip[1], 4);
	c6 = sock6(&n, 0);
	CHECK_EQ(utcp_connect(c6, &mapped, n.now), 0);
	CHECK_EQ(c6->tuple.family, AF_INET);
	tnet_run(&n, UTCP_MS(50));
	CHECK_EQ(utcp_sock_state(c6), UTCP_ESTABLISHED);
	utcp_sock_names(c6, &la, &ra);
	CHECK_EQ(ra.family, AF_INET6);
	CHECK(memcmp(ra.ip, mapped.ip, 16) == 0);
	s = utcp_accept(l, &err);
	tnet_is_dead(&n.side[1], s, true);
	if (s != NULL)
		utcp_close(s, n.now);
	utcp_close(c6, n.now);
	utcp_close(c, n.now);
	utcp_close(l, n.now);
	/* V6ONLY: IPv4 is refused. (Port 80 still has TIME-WAIT users,
	 * so without SO_REUSEADDR it is busy, as on Linux.) */
	l = sock6(&n, 1);
	CHECK_EQ(utcp_bind(l, &any), -EADDRINUSE);
	any.port = a4.port = 81;
	CHECK_EQ(utcp_setsockopt(l, IPPROTO_IPV6, IPV6_V6ONLY, &one,
				 sizeof(one), n.now),
		 0);
	CHECK_EQ(utcp_bind(l, &any), 0);
	CHECK_EQ(utcp_listen(l, 4), 0);
	c = tnet_socket(&n, 0);
	CHECK_EQ(utcp_connect(c, &a4, n.now), 0);
	tnet_run(&n, UTCP_MS(50));
	CHECK_EQ(utcp_sock_error(c, false), ECONNREFUSED);
	utcp_close(c, n.now);
	utcp_close(l, n.now);
	tnet_leak_check(&n);
	tnet_free(&n);
}

static void
test_call_errors(void)
{
	struct tnet n;
	struct utcp_sock *s, *l;
	struct utcp_addr a = tnet_addr(1, 80), a6 = tnet_addr6(1, 80);
	struct utcp_addr any = {.family = AF_INET, .port = 80};
	char b[8];
	int err;

	tnet_init(&n, NULL);
	s = tnet_socket(&n, 0);
	CHECK(utcp_socket(tnet_st(&n, 0), AF_UNIX) == NULL);
	CHECK_EQ(utcp_send(s, "x", 1, 0, n.now), -ENOTCONN);
	CHECK_EQ(utcp_recv(s, b, 1, 0, n.now), -ENOTCONN);
	CHECK_EQ(utcp_shutdown(s, SHUT_WR, n.now), -ENOTCONN);
	CHECK_EQ(utcp_shutdown(s, 7, n.now), -EINVAL);
	CHECK(utcp_accept(s, &err) == NULL);
	CHECK_EQ(err, -EINVAL);
	CHECK_EQ(utcp_connect(s, &a6, n.now), -EAFNOSUPPORT);
	{
		struct utcp_addr zero = {.family = AF_INET, .port = 80};

		CHECK_EQ(utcp_connect(s, &zero, n.now), -ENETUNREACH);
	}
	CHECK_EQ(utcp_send_space(s), 0);
	CHECK_EQ(utcp_recv_avail(s), 0);
	CHECK(!utcp_sock_eof(s));
	CHECK_EQ(utcp_sock_state(s), UTCP_CLOSED);
	utcp_sock_set_user(s, &n);
	CHECK(utcp_sock_user(s) == &n);
	/* A connecting socket: send would block. */
	CHECK_EQ(utcp_connect(s, &a, n.now), 0);
	CHECK_EQ(utcp_send(s, "x", 1, 0, n.now), -EAGAIN);
	CHECK_EQ(utcp_recv(s, b, 1, 0, n.now), -EAGAIN);
	l = tnet_socket(&n, 1);
	CHECK_EQ(utcp_bind(l, &any), 0);
	CHECK_EQ(utcp_listen(l, 1), 0);
	CHECK_EQ(utcp_listen(l, 5), 0); /* again: new backlog */
	CHECK_EQ(utcp_connect(l, &a, n.now), -EISCONN);
	CHECK_EQ(utcp_recv(l, b, 1, 0, n.now), -ENOTCONN);
	/* The SYN was sent before the listener existed: retransmission
	 * finds it. The writer learns of the connection. */
	tnet_run(&n, UTCP_SEC(2));
	CHECK_EQ(utcp_sock_state(s), UTCP_ESTABLISHED);
	CHECK_EQ(tnet_count(&n, 0, UTCP_EV_WRITABLE, s), 1);
	CHECK_EQ(utcp_connect(s, &a, n.now), -EISCONN);
	CHECK(utcp_send_space(s) > 0);
	CHECK_EQ(utcp_shutdown(s, SHUT_WR, n.now), 0);
	CHECK_EQ(utcp_send(s, "x", 1, 0, n.now), -EPIPE);
	CHECK_EQ(utcp_send_space(s), 0);
	CHECK_EQ(utcp_shutdown(s, SHUT_WR, n.now), 0);
	tnet_run(&n, UTCP_MS(50));
	{
		struct utcp_sock *c = utcp_accept(l, &err);

		CHECK(c != NULL);
		tnet_is_dead(&n.side[1], c, true);
		CHECK_EQ(utcp_recv(c, b, sizeof(b), 0, n.now), 0);
		CHECK(utcp_sock_eof(c));
		/* SHUT_RD: reads end; the socket stays. */
		CHECK_EQ(utcp_shutdown(c, SHUT_RDWR, n.now), 0);
		CHECK_EQ(utcp_recv(c, b, sizeof(b), 0, n.now), 0);
		utcp_close(c, n.now);
	}
	utcp_close(s, n.now);
	utcp_close(l, n.now);
	tnet_leak_check(&n);
	tnet_free(&n);
}

/* MSG_MORE holds a partial segment like a cork, for one call. */
static void
test_msg_more(void)
{
	struct tnet n;
	struct tnet_pair p;
	unsigned s0;
	char b[8];
	int one = 1;

	tnet_init(&n, NULL);
	CHECK_EQ(tnet_connect_pair(&n, 80, &p), 0);
	CHECK_EQ(utcp_setsockopt(p.c, IPPROTO_TCP, TCP_NODELAY, &one,
				 sizeof(one), n.now),
		 0);
	s0 = n.side[0].sent;
	CHECK_EQ(utcp_send(p.c, "ab", 2, UTCP_MSG_MORE, n.now), 2);
	tnet_run(&n, UTCP_MS(50));
	CHECK_EQ(n.side[0].sent, s0);
	CHECK_EQ(utcp_send(p.c, "cd", 2, 0, n.now), 2);
	CHECK_EQ(n.side[0].sent, s0 + 1);
	tnet_run(&n, UTCP_MS(50));
	CHECK_EQ(utcp_recv(p.s, b, sizeof(b), 0, n.now), 4);
	CHECK(memcmp(b, "abcd", 4) == 0);
	utcp_close(p.c, n.now);
	utcp_close(p.s, n.now);
	utcp_close(p.l, n.now);
	tnet_leak_check(&n);
	tnet_free(&n);
}

/* utcp_stack_free with live connections frees all, FREED for each. */
static void
count_sock(void *arg, struct utcp_sock *s)
{
	(void)s;
	(*(unsigned *)arg)++;
}

static void
test_stack_free_live(void)
{
	struct tnet n;
	struct tnet_pair p;
	unsigned cnt = 0;

	tnet_init(&n, NULL);
	CHECK_EQ(tnet_connect_pair(&n, 80, &p), 0);
	CHECK_EQ(utcp_send(p.c, "data", 4, 0, n.now), 4);
	tnet_run(&n, UTCP_MS(50));
	utcp_foreach(tnet_st(&n, 1), count_sock, &cnt);
	CHECK_EQ(cnt, 2);
	cnt = 0;
	utcp_foreach(tnet_st(&n, 0), count_sock, &cnt);
	CHECK_EQ(cnt, 1);
	/* An embryo too. */
	{
		struct utcp_sock *c2 = tnet_socket(&n, 0);
		struct utcp_addr a = tnet_addr(1, 80);

		CHECK_EQ(utcp_connect(c2, &a, n.now), 0);
		tnet_run(&n, UTCP_MS(7));
		CHECK_EQ(utcp_sock_count(tnet_st(&n, 1)), 3);
	}
	{
		unsigned f0 = n.side[1].freed;

		utcp_stack_free(n.side[1].st);
		CHECK_EQ(n.side[1].freed - f0, 3);
		n.side[1].st = utcp_stack_new(&(struct utcp_config){
		    .mtu = 1500, .output = tnet_output, .ctx = &n.side[1]});
	}
	utcp_stack_free(n.side[0].st);
	CHECK_EQ(n.side[0].freed, 2);
	n.side[0].st = utcp_stack_new(&(struct utcp_config){
	    .mtu = 1500, .output = tnet_output, .ctx = &n.side[0]});
	CHECK_EQ(n.bad_event, 0);
	tnet_free(&n);
}

/* 20000 idle keepalive connections: polling stays cheap (heap) and
 * every socket gets its probe on time. */
static void
null_output(void *ctx, const uint8_t *pkt, size_t len)
{
	(void)ctx;
	(void)pkt;
	(void)len;
}

static void
test_many_timers(void)
{
	enum { N = 20000 };
	struct utcp_config cfg;
	struct utcp_stack *st;
	struct utcp_sock **s = calloc(N, sizeof(*s));
	int idle = 60, one = 1, bad = 0;
	utcp_time_t t;

	utcp_config_defaults(&cfg);
	cfg.local4.family = AF_INET;
	memcpy(cfg.local4.ip, tnet_ip[0], 4);
	cfg.output = null_output;
	st = utcp_stack_new(&cfg);
	/* Packets go nowhere: every SYN goes into the void. */
	for (int i = 0; i < N; i++) {
		struct utcp_addr a = tnet_addr(1, (uint16_t)(1000 + i % 50000));

		s[i] = utcp_socket(st, AF_INET);
		bad += utcp_setsockopt(s[i], IPPROTO_TCP, TCP_KEEPIDLE, &idle,
				       sizeof(idle), 0) != 0;
		bad += utcp_setsockopt(s[i], SOL_SOCKET, SO_KEEPALIVE, &one,
				       sizeof(one), 0) != 0;
		bad +=
		    utcp_connect(s[i], &a, UTCP_SEC(1) + (utcp_time_t)i) != 0;
	}
	CHECK_EQ(bad, 0);
	CHECK_EQ(utcp_sock_count(st), N);
	CHECK_EQ(utcp_next_deadline(st), UTCP_SEC(2));
	/* Every SYN times out at 127 s. */
	for (t = UTCP_SEC(1); t < UTCP_SEC(130);) {
		t = utcp_poll(st, t);
		if (t == UTCP_TIME_NEVER)
			break;
	}
	for (int i = 0; i < N; i++) {
		bad += utcp_sock_state(s[i]) != UTCP_CLOSED;
		bad += utcp_sock_error(s[i], false) != ETIMEDOUT;
		utcp_close(s[i], UTCP_SEC(200));
	}
	CHECK_EQ(bad, 0);
	CHECK_EQ(utcp_sock_count(st), 0);
	CHECK_EQ(utcp_stats(st)[UTCP_STAT_tcp_retrans_timeout], N);
	utcp_stack_free(st);
	free(s);
}

/* The deadline heap against a naive model under random updates. */
static void
test_timer_heap_model(void)
{
	enum { N = 300 };
	struct utcp_config cfg;
	struct utcp_stack *st;
	struct utcp_sock *s[N];
	uint64_t rng = 12345;
	int bad = 0;

	utcp_config_defaults(&cfg);
	cfg.output = null_output;
	st = utcp_stack_new(&cfg);
	for (int i = 0; i < N; i++)
		s[i] = utcp_socket(st, AF_INET);
	for (int op = 0; op < 100000; op++) {
		utcp_time_t want = UTCP_TIME_NEVER;
		int i, t;

		rng ^= rng << 13;
		rng ^= rng >> 7;
		rng ^= rng << 17;
		i = (int)(rng % N);
		t = (int)((rng >> 20) % TCPT_N);
		if ((rng >> 40) % 4 == 0)
			timer_cancel(s[i], (enum tcpt)t);
		else
			timer_set(s[i], (enum tcpt)t, (rng >> 24) % 1000000);
		for (int k = 0; k < N; k++)
			for (int u = 0; u < TCPT_N; u++)
				if (s[k]->t_deadline[u] < want)
					want = s[k]->t_deadline[u];
		if (utcp_next_deadline(st) != want)
			bad++;
		if (op % 1000 == 0) {
			/* The heap property, everywhere. */
			for (uint32_t h = 1; h < st->heap_len; h++)
				if (st->heap[(h - 1) / 2]->t_earliest >
				    st->heap[h]->t_earliest)
					bad++;
			for (uint32_t h = 0; h < st->heap_len; h++)
				if (st->heap[h]->heap_idx != h)
					bad++;
		}
	}
	CHECK_EQ(bad, 0);
	for (int i = 0; i < N; i++)
		timer_cancel_all(s[i]);
	CHECK_EQ(st->heap_len, 0);
	for (int i = 0; i < N; i++)
		utcp_close(s[i], 0);
	CHECK_EQ(utcp_sock_count(st), 0);
	utcp_stack_free(st);
}

/* Random segments aimed at a live connection during a transfer: the
 * engine survives, counts what it drops, and frees everything. */
static uint64_t chaos_rng = 88172645463325252ULL;

static uint32_t
chaos(void)
{
	chaos_rng ^= chaos_rng << 13;
	chaos_rng ^= chaos_rng >> 7;
	chaos_rng ^= chaos_rng << 17;
	return (uint32_t)(chaos_rng >> 11);
}

static void
test_chaos(void)
{
	struct tnet n;
	struct tnet_pair p;
	static char big[65536];
	char b[4096];
	int alive = 0;

	tnet_init(&n, NULL);
	CHECK_EQ(tnet_connect_pair(&n, 80, &p), 0);
	for (int round = 0; round < 3000; round++) {
		struct wire_tcp seg;
		uint8_t pkt[2048], payload[600];
		size_t len;
		int to = (int)(chaos() & 1);
		struct utcp_sock *from = to ? p.c : p.s;
		struct utcp_sock *dst = to ? p.s : p.c;
		uint32_t r = chaos();

		if (utcp_sock_state(p.c) != UTCP_CLOSED)
			(void)utcp_send(p.c, big, sizeof(big), 0, n.now);
		if (utcp_sock_state(p.s) != UTCP_CLOSED)
			(void)utcp_send(p.s, big, 1000, 0, n.now);
		while (utcp_recv(p.s, b, sizeof(b), 0, n.now) > 0)
			;
		while (utcp_recv(p.c, b, sizeof(b), 0, n.now) > 0)
			;
		memset(&seg, 0, sizeof(seg));
		seg.sport = from->tuple.lport;
		seg.dport = from->tuple.rport;
		/* Near the real numbers, mostly. */
		seg.seq = dst->rcv_nxt +
			  (r % 3 == 0 ? chaos() : chaos() % 70000 - 35000);
		seg.ack = dst->snd_una +
			  (r % 5 == 0 ? chaos() : chaos() % 70000 - 35000);
		seg.flags = (uint8_t)(chaos() & 0x3f);
		if (r % 7 != 0)
			seg.flags &= (uint8_t) ~(TH_RST | TH_SYN);
		seg.wnd = (uint16_t)chaos();
		seg.len = chaos() % 4 == 0 ? chaos() % sizeof(payload) : 0;
		seg.data = payload;
		memset(payload, 'z', sizeof(payload));
		if (chaos() % 2) {
			seg.opt.present = WOPT_TS;
			seg.opt.tsval = from->ts_recent + chaos() % 2000 - 1000;
			seg.opt.tsecr = chaos();
		}
		if (chaos() % 4 == 0) {
			seg.opt.present |= WOPT_SACK;
			seg.opt.nsack = (uint8_t)(1 + chaos() % 3);
			for (int i = 0; i < seg.opt.nsack; i++) {
				seg.opt.sack[i].left =
				    dst->snd_una + chaos() % 100000;
				seg.opt.sack[i].right =
				    seg.opt.sack[i].left + chaos() % 5000;
			}
		}
		len = tnet_build(pkt, 1 - to, &seg);
		utcp_input(tnet_st(&n, to), pkt, len, n.now);
		tnet_run(&n, UTCP_MS(chaos() % 20));
		if (utcp_sock_state(p.c) == UTCP_CLOSED &&
		    utcp_sock_state(p.s) == UTCP_CLOSED)
			break;
		alive++;
	}
	if (getenv("VERBOSE")) {
		printf("  chaos: alive %d rounds; drops:", alive);
		for (int i = 0; i < UTCP_NSTATS; i++)
			if (tnet_stat(&n, 0, i) + tnet_stat(&n, 1, i))
				printf(
				    " %s=%llu", utcp_stat_name(i),
				    (unsigned long long)(tnet_stat(&n, 0, i) +
							 tnet_stat(&n, 1, i)));
		printf("\n");
	}
	utcp_close(p.c, n.now);
	utcp_close(p.s, n.now);
	utcp_close(p.l, n.now);
	tnet_run(&n, UTCP_SEC(3000));
	tnet_leak_check(&n);
	tnet_free(&n);
}

/* bind() to our own address: getsockname() names it before and after
 * listen() and connect(), as on Linux; any other address is
 * EADDRNOTAVAIL; the wildcard stays 0.0.0.0 until connected. */
static void
test_bind_address(void)
{
	struct tnet n;
	struct utcp_sock *l, *c, *w, *m;
	struct utcp_addr me = tnet_addr(1, 8080), other = tnet_addr(0, 8081);
	struct utcp_addr any = {.family = AF_INET, .port = 8082};
	struct utcp_addr mapped = {.family = AF_INET6, .port = 8083};
	struct utcp_addr la, ra, srv = tnet_addr(1, 8080);

	tnet_init(&n, NULL);
	l = tnet_socket(&n, 1);
	CHECK_EQ(utcp_bind(l, &me), 0);
	utcp_sock_names(l, &la, NULL);
	CHECK_EQ(la.family, AF_INET);
	CHECK_EQ(la.port, 8080);
	CHECK(memcmp(la.ip, tnet_ip[1], 4) == 0);
	CHECK_EQ(utcp_listen(l, 4), 0);
	utcp_sock_names(l, &la, NULL);
	CHECK(memcmp(la.ip, tnet_ip[1], 4) == 0);
	/* side 1's address is not side 0's */
	w = tnet_socket(&n, 1);
	CHECK_EQ(utcp_bind(w, &other), -EADDRNOTAVAIL);
	CHECK_EQ(utcp_bind(w, &any), 0);
	utcp_sock_names(w, &la, NULL);
	CHECK_EQ(la.port, 8082);
	CHECK_EQ(la.ip[0] | la.ip[1] | la.ip[2] | la.ip[3], 0);
	/* an IPv6 socket bound to our IPv4 address, v4-mapped */
	m = sock6(&n, 1);
	mapped.ip[10] = mapped.ip[11] = 0xff;
	memcpy(mapped.ip + 12, tnet_ip[1], 4);
	CHECK_EQ(utcp_bind(m, &mapped), 0);
	utcp_sock_names(m, &la, NULL);
	CHECK_EQ(la.family, AF_INET6);
	CHECK(memcmp(la.ip, mapped.ip, 16) == 0);
	/* a connection to the bound listener */
	c = tnet_socket(&n, 0);
	CHECK_EQ(utcp_connect(c, &srv, n.now), 0);
	tnet_run(&n, UTCP_MS(50));
	CHECK_EQ(utcp_sock_state(c), UTCP_ESTABLISHED);
	utcp_sock_names(c, &la, &ra);
	CHECK(memcmp(ra.ip, tnet_ip[1], 4) == 0);
	CHECK_EQ(ra.port, 8080);
	utcp_close(c, n.now);
	utcp_close(m, n.now);
	utcp_close(w, n.now);
	utcp_close(l, n.now);
	tnet_run(&n, UTCP_SEC(120));
	tnet_free(&n);
}

/* SO_REUSEPORT (Linux): sockets that all set it share a port, listeners
 * included; connections are spread over the group, a flow always to the
 * same listener; one without it is refused; the group survives its
 * first member. */
static struct utcp_sock *
rp_listener(struct tnet *n, uint16_t port, int rp)
{
	struct utcp_sock *l = tnet_socket(n, 1);
	struct utcp_addr a = {.family = AF_INET, .port = port};
	int one = 1;

	if (rp)
		CHECK_EQ(utcp_setsockopt(l, SOL_SOCKET, SO_REUSEPORT, &one,
					 sizeof(one), n->now),
			 0);
	if (utcp_bind(l, &a) != 0 || utcp_listen(l, 16) != 0) {
		utcp_close(l, n->now);
		return NULL;
	}
	return l;
}

static void
test_reuseport(void)
{
	struct tnet n;
	struct utcp_sock *l1, *l2, *l3, *c[16], *s;
	struct utcp_addr srv = tnet_addr(1, 8090);
	int err, got1 = 0, got2 = 0;

	tnet_init(&n, NULL);
	l1 = rp_listener(&n, 8090, 1);
	l2 = rp_listener(&n, 8090, 1);
	CHECK(l1 != NULL && l2 != NULL);
	/* without SO_REUSEPORT: the port is taken */
	l3 = rp_listener(&n, 8090, 0);
	CHECK(l3 == NULL);
	for (int i = 0; i < 16; i++) {
		c[i] = tnet_socket(&n, 0);
		CHECK_EQ(utcp_connect(c[i], &srv, n.now), 0);
	}
	tnet_run(&n, UTCP_MS(100));
	while ((s = utcp_accept(l1, &err)) != NULL) {
		got1++;
		tnet_is_dead(&n.side[1], s, true);
		utcp_close(s, n.now);
	}
	while ((s = utcp_accept(l2, &err)) != NULL) {
		got2++;
		tnet_is_dead(&n.side[1], s, true);
		utcp_close(s, n.now);
	}
	CHECK_EQ(got1 + got2, 16);
	CHECK(got1 > 0 && got2 > 0);
	for (int i = 0; i < 16; i++)
		utcp_close(c[i], n.now);
	/* the first member goes; the second still takes connections */
	utcp_close(l1, n.now);
	c[0] = tnet_socket(&n, 0);
	CHECK_EQ(utcp_connect(c[0], &srv, n.now), 0);
	tnet_run(&n, UTCP_MS(100));
	CHECK_EQ(utcp_sock_state(c[0]), UTCP_ESTABLISHED);
	s = utcp_accept(l2, &err);
	CHECK(s != NULL);
	if (s != NULL) {
		tnet_is_dead(&n.side[1], s, true);
		utcp_close(s, n.now);
	}
	utcp_close(c[0], n.now);
	utcp_close(l2, n.now);
	/* once TIME-WAIT is over, the port is free again, for anyone */
	tnet_run(&n, UTCP_SEC(200));
	l3 = rp_listener(&n, 8090, 0);
	CHECK(l3 != NULL);
	if (l3 != NULL)
		utcp_close(l3, n.now);
	tnet_leak_check(&n);
	tnet_free(&n);
}

static void
narrow_ports(struct utcp_config *cfg, int side)
{
	if (side == 0) {
		cfg->port_lo = 40000;
		cfg->port_hi = 40063;
	}
}

/*
 * Serial connections to one server, the server closing first (it keeps
 * each 4-tuple in TIME-WAIT): connect() walks the ephemeral range (RFC
 * 6056 algorithm 4) instead of drawing a random port, so no 4-tuple comes
 * back before the range is used up. A random draw from 64 ports repeats
 * within 64 connections all but surely.
 */
static void
test_connect_port_walk(void)
{
	struct tnet n;
	struct utcp_sock *l, *c, *s;
	struct utcp_addr any = {.family = AF_INET, .port = 80};
	struct utcp_addr srv = tnet_addr(1, 80), other = tnet_addr(1, 81);
	bool used[64] = { false };
	int err, repeats = 0, outside = 0, done = 0;

	tnet_init(&n, narrow_ports);
	l = tnet_socket(&n, 1);
	CHECK_EQ(utcp_bind(l, &any), 0);
	CHECK_EQ(utcp_listen(l, 16), 0);
	for (int i = 0; i < 64; i++) {
		uint16_t p;

		c = tnet_socket(&n, 0);
		if (utcp_connect(c, &srv, n.now) != 0) {
			utcp_close(c, n.now);
			break;
		}
		p = c->tuple.lport;
		tnet_run(&n, UTCP_MS(50));
		s = utcp_accept(l, &err);
		if (s == NULL || utcp_sock_state(c) != UTCP_ESTABLISHED) {
			utcp_close(c, n.now);
			break;
		}
		tnet_is_dead(&n.side[1], s, true);
		utcp_close(s, n.now); /* the server closes first */
		tnet_run(&n, UTCP_MS(50));
		utcp_close(c, n.now);
		tnet_run(&n, UTCP_MS(50));
		if (p < 40000 || p > 40063)
			outside++;
		else if (used[p - 40000])
			repeats++;
		else
			used[p - 40000] = true;
		done++;
	}
	CHECK_EQ(done, 64);
	CHECK_EQ(outside, 0);
	CHECK_EQ(repeats, 0);
	/* the server still holds all 64 in TIME-WAIT; another destination
	 * has its own 4-tuples */
	c = tnet_socket(&n, 0);
	CHECK_EQ(utcp_connect(c, &other, n.now), 0);
	CHECK(c->tuple.lport >= 40000 && c->tuple.lport <= 40063);
	utcp_close(c, n.now);
	utcp_close(l, n.now);
	tnet_run(&n, UTCP_SEC(200));
	tnet_leak_check(&n);
	tnet_free(&n);
}

int
main(void)
{
	RUN(test_ipv6);
	RUN(test_dual_stack);
	RUN(test_bind_address);
	RUN(test_reuseport);
	RUN(test_connect_port_walk);
	RUN(test_call_errors);
	RUN(test_msg_more);
	RUN(test_stack_free_live);
	RUN(test_many_timers);
	RUN(test_timer_heap_model);
	RUN(test_chaos);
	return CHECK_DONE();
}
