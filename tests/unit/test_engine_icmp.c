/*
 * test_engine_icmp.c — ICMP and ICMPv6 errors (engine/icmp.c): a hard
 * error ends a handshake with Linux's errno, a soft one is reported when
 * the connection times out, and forged or malformed messages are dropped
 * and counted.
 */
#include "internal.h"
#include "test_engine_net.h"

#include <errno.h>

static int drop_from0;
static int quote_udp; /* icmp_about_last(): say the quoted packet is UDP */

static int
drop_side0(struct tnet *n, int from, uint8_t *pkt, size_t len)
{
	(void)n;
	(void)pkt;
	(void)len;
	return from == 0 && drop_from0;
}

static uint16_t
csum(const uint8_t *p, size_t len, uint64_t acc)
{
	return wire_fold(wire_sum(p, len, acc));
}

/* An ICMP (v4) or ICMPv6 error from side 1's address to side 0, quoting
 * the last packet side 0 sent (header + 8 bytes, or all of it). */
static size_t
icmp_about_last(struct tnet *n, uint8_t *buf, int v6, uint8_t type,
		uint8_t code, int32_t seq_delta)
{
	const struct tnet_side *sd = &n->side[0];
	const struct tnet_cap *c = &sd->cap[(sd->sent - 1) % TNET_NCAP];
	size_t ihl = v6 ? 40 : 20, qlen = c->len < ihl + 8 ? c->len : ihl + 8;
	size_t plen = 8 + qlen, off = v6 ? 40 : 20;
	uint8_t *q = buf + off + 8;
	uint16_t ck;

	memset(buf, 0, off + plen);
	memcpy(q, c->data, qlen);
	if (seq_delta != 0) {
		uint32_t s = (uint32_t)q[ihl + 4] << 24 | q[ihl + 5] << 16 |
			     q[ihl + 6] << 8 | q[ihl + 7];

		s += (uint32_t)seq_delta;
		q[ihl + 4] = (uint8_t)(s >> 24);
		q[ihl + 5] = (uint8_t)(s >> 16);
		q[ihl + 6] = (uint8_t)(s >> 8);
		q[ihl + 7] = (uint8_t)s;
	}
	if (quote_udp)
		q[v6 ? 6 : 9] = 17;
	buf[off] = type;
	buf[off + 1] = code;
	if (v6) {
		/* both ends' IPv6 addresses: tnet_init_cfg's fd00::1/::2 */
		uint8_t src[16] = {0xfd}, dst[16] = {0xfd};

		src[15] = 2;
		dst[15] = 1;
		buf[0] = 0x60;
		buf[4] = (uint8_t)(plen >> 8);
		buf[5] = (uint8_t)plen;
		buf[6] = 58;
		buf[7] = 64;
		memcpy(buf + 8, src, 16);
		memcpy(buf + 24, dst, 16);
		ck = csum(buf + off, plen,
			  wire_pseudo_sum(AF_INET6, src, dst, 58,
					  (uint32_t)plen));
	} else {
		buf[0] = 0x45;
		buf[2] = (uint8_t)((off + plen) >> 8);
		buf[3] = (uint8_t)(off + plen);
		buf[8] = 64;
		buf[9] = 1;
		memcpy(buf + 12, tnet_ip[1], 4);
		memcpy(buf + 16, tnet_ip[0], 4);
		ck = csum(buf, 20, 0);
		memcpy(buf + 10, &ck, 2);
		ck = csum(buf + off, plen, 0);
	}
	memcpy(buf + off + 2, &ck, 2);
	return off + plen;
}

static void
check_drop(struct tnet *n, const uint8_t *pkt, size_t len, int stat)
{
	uint64_t before = utcp_stats(tnet_st(n, 0))[stat];

	utcp_input(tnet_st(n, 0), pkt, len, n->now);
	CHECK_EQ(utcp_stats(tnet_st(n, 0))[stat], before + 1);
}

/* A hard error in SYN-SENT: connect() fails at once with the errno. */
static void
handshake_error(int v6, uint8_t type, uint8_t code, int want)
{
	struct tnet n;
	struct utcp_sock *c;
	struct utcp_addr a = v6 ? tnet_addr6(1, 80) : tnet_addr(1, 80);
	const struct utcp_event *e;
	uint8_t buf[200];
	size_t len;

	tnet_init(&n, NULL);
	n.filter = drop_side0;
	drop_from0 = 1;
	c = utcp_socket(tnet_st(&n, 0), v6 ? AF_INET6 : AF_INET);
	CHECK(c != NULL);
	utcp_sock_set_user(c, &n.side[0]);
	CHECK_EQ(utcp_connect(c, &a, n.now), 0);
	tnet_run(&n, UTCP_MS(10));
	CHECK_EQ(utcp_sock_state(c), UTCP_SYN_SENT);
	/* not the SYN's sequence number: a forgery, ignored */
	len = icmp_about_last(&n, buf, v6, type, code, 1000);
	check_drop(&n, buf, len, UTCP_STAT_drop_icmp_seq);
	CHECK_EQ(utcp_sock_state(c), UTCP_SYN_SENT);
	/* about something else than TCP */
	quote_udp = 1;
	len = icmp_about_last(&n, buf, v6, type, code, 0);
	quote_udp = 0;
	check_drop(&n, buf, len, UTCP_STAT_drop_icmp_bad);
	/* a flipped bit: bad checksum */
	len = icmp_about_last(&n, buf, v6, type, code, 0);
	buf[len - 1] ^= 1;
	check_drop(&n, buf, len, UTCP_STAT_drop_icmp_bad);
	/* the real one */
	len = icmp_about_last(&n, buf, v6, type, code, 0);
	utcp_input(tnet_st(&n, 0), buf, len, n.now);
	CHECK_EQ(utcp_sock_state(c), UTCP_CLOSED);
	CHECK_EQ(utcp_stats(tnet_st(&n, 0))[UTCP_STAT_icmp_conn_aborted], 1);
	e = tnet_last(&n, 0, UTCP_EV_ERROR, c);
	CHECK(e != NULL && e->err == want);
	CHECK_EQ(utcp_sock_error(c, false), want);
	utcp_close(c, n.now);
	n.filter = NULL;
	tnet_run(&n, UTCP_SEC(10));
	CHECK_EQ(utcp_sock_count(tnet_st(&n, 0)), 0);
	tnet_free(&n);
}

static void
test_handshake_errors(void)
{
	handshake_error(0, 3, 1, EHOSTUNREACH);
	handshake_error(0, 3, 0, ENETUNREACH);
	handshake_error(0, 3, 3, ECONNREFUSED);
	handshake_error(0, 3, 13, EHOSTUNREACH);
	handshake_error(0, 11, 0, EHOSTUNREACH);
	handshake_error(1, 1, 3, EHOSTUNREACH);
	handshake_error(1, 1, 4, ECONNREFUSED);
	handshake_error(1, 1, 1, EACCES);
	handshake_error(1, 1, 0, ENETUNREACH);
}

/* On an established connection the error is soft: nothing happens until
 * the retransmissions give up, which then report it, not ETIMEDOUT. */
static void
test_soft_error(void)
{
	struct tnet n;
	struct tnet_pair p;
	const struct utcp_event *e;
	uint8_t buf[200];
	size_t len;

	tnet_init(&n, NULL);
	CHECK_EQ(tnet_connect_pair(&n, 80, &p), 0);
	n.filter = drop_side0;
	drop_from0 = 1;
	CHECK_EQ(utcp_send(p.c, "hello", 5, 0, n.now), 5);
	tnet_run(&n, UTCP_MS(1));
	len = icmp_about_last(&n, buf, 0, 3, 1, 0);
	utcp_input(tnet_st(&n, 0), buf, len, n.now);
	CHECK_EQ(utcp_sock_state(p.c), UTCP_ESTABLISHED);
	CHECK_EQ(utcp_stats(tnet_st(&n, 0))[UTCP_STAT_icmp_soft_error], 1);
	CHECK_EQ(utcp_sock_error(p.c, false), 0);
	tnet_run(&n, UTCP_SEC(2000));
	CHECK_EQ(utcp_sock_state(p.c), UTCP_CLOSED);
	e = tnet_last(&n, 0, UTCP_EV_ERROR, p.c);
	CHECK(e != NULL && e->err == EHOSTUNREACH);
	/* a type changed under its checksum: malformed */
	buf[20] = 8;
	check_drop(&n, buf, len, UTCP_STAT_drop_icmp_bad); /* checksum */
	n.filter = NULL;
	utcp_close(p.c, n.now);
	utcp_close(p.s, n.now);
	utcp_close(p.l, n.now);
	tnet_run(&n, UTCP_SEC(200));
	CHECK_EQ(utcp_sock_count(tnet_st(&n, 0)), 0);
	tnet_free(&n);
}

/* An error for a connection nobody has. */
static void
test_no_conn(void)
{
	struct tnet n;
	struct tnet_pair p;
	uint8_t buf[200];
	size_t len;

	tnet_init(&n, NULL);
	CHECK_EQ(tnet_connect_pair(&n, 80, &p), 0);
	CHECK_EQ(utcp_send(p.c, "x", 1, 0, n.now), 1);
	tnet_run(&n, UTCP_MS(1));
	len = icmp_about_last(&n, buf, 0, 3, 3, 0);
	utcp_close(p.c, n.now);
	utcp_close(p.s, n.now);
	utcp_close(p.l, n.now);
	tnet_run(&n, UTCP_SEC(200));
	check_drop(&n, buf, len, UTCP_STAT_drop_icmp_no_conn);
	tnet_free(&n);
}

int
main(void)
{
	RUN(test_handshake_errors);
	RUN(test_soft_error);
	RUN(test_no_conn);
	return CHECK_DONE();
}
