/*
 * test_engine_net.h — two engine stacks wired back to back at virtual time.
 *
 * Side 0 ("A", 10.0.0.1) and side 1 ("B", 10.0.0.2). Each stack's output
 * lands in a queue and is delivered to the other side after `delay` µs,
 * unless the seeded loss/reorder model or a test's filter says otherwise.
 * Every event is logged, and the log checks that no socket is mentioned
 * after its UTCP_EV_FREED.
 */
#ifndef UTCP_TEST_ENGINE_NET_H
#define UTCP_TEST_ENGINE_NET_H

#include "check.h"
#include "utcp.h"
#include "wire.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* Each test uses only some of these helpers. */
#pragma GCC diagnostic ignored "-Wunused-function"

#define TNET_MAXEV 200000
#define TNET_MAXDEAD 4096

struct tnet_pkt {
	uint8_t *data;
	size_t len;
	utcp_time_t at;
	int to;
	struct tnet_pkt *next;
};

struct tnet_ev {
	struct utcp_event ev;
};

#define TNET_NCAP 256
struct tnet_cap {
	uint8_t data[2048];
	size_t len;
	utcp_time_t at;
};

struct tnet;
struct tnet_side {
	struct tnet *n;
	int id;
	struct utcp_stack *st;
	struct tnet_ev *ev;
	size_t nev;
	void *dead[TNET_MAXDEAD];
	size_t ndead;
	unsigned freed;
	unsigned sent;
	struct tnet_cap *cap; /* the last TNET_NCAP packets sent */
};

struct tnet {
	struct tnet_side side[2];
	utcp_time_t now;
	utcp_time_t delay;
	unsigned loss_pct;    /* random loss, both directions */
	unsigned reorder_pct; /* random extra delay */
	uint64_t rng;
	struct tnet_pkt *q; /* sorted by `at` */
	/* Return non-zero to drop the packet. May edit it. */
	int (*filter)(struct tnet *n, int from, uint8_t *pkt, size_t len);
	void *filter_arg;
	unsigned dropped;
	int bad_event; /* an event about a freed socket */
};

static const uint8_t tnet_ip[2][4] = {{10, 0, 0, 1}, {10, 0, 0, 2}};

static uint32_t
tnet_rand(struct tnet *n)
{
	n->rng ^= n->rng << 13;
	n->rng ^= n->rng >> 7;
	n->rng ^= n->rng << 17;
	return (uint32_t)(n->rng >> 16);
}

static void
tnet_enqueue(struct tnet *n, int to, const uint8_t *pkt, size_t len,
	     utcp_time_t at)
{
	struct tnet_pkt *p = calloc(1, sizeof(*p)), **pp;

	p->data = malloc(len);
	memcpy(p->data, pkt, len);
	p->len = len;
	p->at = at;
	p->to = to;
	for (pp = &n->q; *pp != NULL && (*pp)->at <= at; pp = &(*pp)->next)
		;
	p->next = *pp;
	*pp = p;
}

static void
tnet_output(void *ctx, const uint8_t *pkt, size_t len)
{
	struct tnet_side *sd = ctx;
	struct tnet *n = sd->n;
	uint8_t *copy = malloc(len);
	utcp_time_t at = n->now + n->delay;

	if (len <= sizeof(sd->cap[0].data)) {
		struct tnet_cap *c = &sd->cap[sd->sent % TNET_NCAP];

		memcpy(c->data, pkt, len);
		c->len = len;
		c->at = n->now;
	}
	sd->sent++;
	memcpy(copy, pkt, len);
	if (n->filter != NULL && n->filter(n, sd->id, copy, len)) {
		n->dropped++;
		free(copy);
		return;
	}
	if (n->loss_pct && tnet_rand(n) % 100 < n->loss_pct) {
		n->dropped++;
		free(copy);
		return;
	}
	if (n->reorder_pct && tnet_rand(n) % 100 < n->reorder_pct)
		at += n->delay + tnet_rand(n) % (n->delay * 2 + 1);
	tnet_enqueue(n, 1 - sd->id, copy, len, at);
	free(copy);
}

static bool
tnet_is_dead(struct tnet_side *sd, void *p, bool unmark)
{
	for (size_t i = 0; i < sd->ndead; i++) {
		if (sd->dead[i] == p) {
			if (unmark)
				sd->dead[i] = sd->dead[--sd->ndead];
			return true;
		}
	}
	return false;
}

static void
tnet_event(void *ctx, const struct utcp_event *ev)
{
	struct tnet_side *sd = ctx;

	if (ev->sock != NULL && tnet_is_dead(sd, ev->sock, false)) {
		/* The one legitimate reuse: malloc handed the memory to a
		 * new embryo, born LISTEN → SYN-RECEIVED. */
		if (ev->type == UTCP_EV_STATE && ev->old_state == UTCP_LISTEN &&
		    ev->new_state == UTCP_SYN_RECEIVED) {
			tnet_is_dead(sd, ev->sock, true);
		} else {
			sd->n->bad_event++;
			printf("event %d about freed socket %p\n", ev->type,
			       (void *)ev->sock);
		}
	}
	if (ev->type == UTCP_EV_FREED) {
		sd->freed++;
		if (sd->ndead < TNET_MAXDEAD)
			sd->dead[sd->ndead++] = ev->sock;
	}
	if (sd->nev < TNET_MAXEV)
		sd->ev[sd->nev++].ev = *ev;
}

static void
tnet_init_cfg(struct utcp_config *cfg, struct tnet_side *sd)
{
	utcp_config_defaults(cfg);
	cfg->local4.family = AF_INET;
	memcpy(cfg->local4.ip, tnet_ip[sd->id], 4);
	cfg->local6.family = AF_INET6;
	cfg->local6.ip[0] = 0xfd;
	cfg->local6.ip[15] = (uint8_t)(sd->id + 1);
	for (int i = 0; i < 16; i++)
		cfg->isn_key[i] = (uint8_t)(i * 7 + sd->id);
	cfg->seed = 1234 + (uint64_t)sd->id;
	cfg->ctx = sd;
	cfg->output = tnet_output;
	cfg->event = tnet_event;
}

/* tweak may adjust either side's config (side 0 = A, 1 = B). */
static void
tnet_init(struct tnet *n, void (*tweak)(struct utcp_config *cfg, int side))
{
	memset(n, 0, sizeof(*n));
	n->now = UTCP_SEC(1000);
	n->delay = UTCP_MS(5);
	n->rng = 0x123456789abcdefULL;
	for (int i = 0; i < 2; i++) {
		struct tnet_side *sd = &n->side[i];
		struct utcp_config cfg;

		sd->n = n;
		sd->id = i;
		sd->ev = calloc(TNET_MAXEV, sizeof(*sd->ev));
		sd->cap = calloc(TNET_NCAP, sizeof(*sd->cap));
		tnet_init_cfg(&cfg, sd);
		if (tweak != NULL)
			tweak(&cfg, i);
		sd->st = utcp_stack_new(&cfg);
	}
}

static void
tnet_free(struct tnet *n)
{
	struct tnet_pkt *p;

	for (int i = 0; i < 2; i++) {
		utcp_stack_free(n->side[i].st);
		free(n->side[i].ev);
		free(n->side[i].cap);
	}
	while ((p = n->q) != NULL) {
		n->q = p->next;
		free(p->data);
		free(p);
	}
}

static struct utcp_stack *
tnet_st(struct tnet *n, int side)
{
	return n->side[side].st;
}

/* Deliver and poll everything due up to `until` (absolute). */
static void
tnet_run_to(struct tnet *n, utcp_time_t until)
{
	for (;;) {
		utcp_time_t next = UTCP_TIME_NEVER, d;

		if (n->q != NULL)
			next = n->q->at;
		for (int i = 0; i < 2; i++) {
			d = utcp_next_deadline(n->side[i].st);
			if (d < next)
				next = d;
		}
		if (next > until)
			break;
		if (next > n->now)
			n->now = next;
		while (n->q != NULL && n->q->at <= n->now) {
			struct tnet_pkt *p = n->q;

			n->q = p->next;
			utcp_input(n->side[p->to].st, p->data, p->len, n->now);
			free(p->data);
			free(p);
		}
		for (int i = 0; i < 2; i++)
			utcp_poll(n->side[i].st, n->now);
	}
	if (until > n->now)
		n->now = until;
}

static void
tnet_run(struct tnet *n, utcp_time_t duration)
{
	tnet_run_to(n, n->now + duration);
}

/* Run until cond() holds (checked after each step) or `max` passes. */
static bool
tnet_run_until(struct tnet *n, bool (*cond)(struct tnet *n, void *arg),
	       void *arg, utcp_time_t max)
{
	utcp_time_t end = n->now + max;

	while (!cond(n, arg)) {
		utcp_time_t next = UTCP_TIME_NEVER, d;

		if (n->q != NULL)
			next = n->q->at;
		for (int i = 0; i < 2; i++) {
			d = utcp_next_deadline(n->side[i].st);
			if (d < next)
				next = d;
		}
		if (next > end) {
			n->now = end;
			return cond(n, arg);
		}
		tnet_run_to(n, next);
	}
	return true;
}

static struct utcp_addr
tnet_addr(int side, uint16_t port)
{
	struct utcp_addr a;

	memset(&a, 0, sizeof(a));
	a.family = AF_INET;
	a.port = port;
	memcpy(a.ip, tnet_ip[side], 4);
	return a;
}

static size_t
tnet_count(struct tnet *n, int side, enum utcp_event_type type,
	   struct utcp_sock *s)
{
	size_t c = 0;

	for (size_t i = 0; i < n->side[side].nev; i++) {
		const struct utcp_event *e = &n->side[side].ev[i].ev;

		if (e->type == type && (s == NULL || e->sock == s))
			c++;
	}
	return c;
}

static const struct utcp_event *
tnet_last(struct tnet *n, int side, enum utcp_event_type type,
	  struct utcp_sock *s)
{
	for (size_t i = n->side[side].nev; i-- > 0;) {
		const struct utcp_event *e = &n->side[side].ev[i].ev;

		if (e->type == type && (s == NULL || e->sock == s))
			return e;
	}
	return NULL;
}

static uint64_t
tnet_stat(struct tnet *n, int side, enum utcp_stat stat)
{
	return utcp_stats(n->side[side].st)[stat];
}

static struct utcp_sock *
tnet_socket(struct tnet *n, int side)
{
	struct utcp_sock *s = utcp_socket(n->side[side].st, AF_INET);

	tnet_is_dead(&n->side[side], s, true);
	return s;
}

struct tnet_pair {
	struct utcp_sock *l; /* listener on B */
	struct utcp_sock *c; /* client on A */
	struct utcp_sock *s; /* accepted on B */
};

static bool
tnet_cond_acceptable(struct tnet *n, void *arg)
{
	struct tnet_pair *p = arg;

	return tnet_count(n, 1, UTCP_EV_ACCEPTABLE, p->l) > 0 &&
	       utcp_sock_state(p->c) == UTCP_ESTABLISHED;
}

/* Listener on B:port, A connects, B accepts. */
static int
tnet_connect_pair(struct tnet *n, uint16_t port, struct tnet_pair *p)
{
	struct utcp_addr a = tnet_addr(1, port), any;
	int err;

	memset(&any, 0, sizeof(any));
	any.family = AF_INET;
	any.port = port;
	p->l = tnet_socket(n, 1);
	p->c = tnet_socket(n, 0);
	p->s = NULL;
	if ((err = utcp_bind(p->l, &any)) != 0)
		return err;
	if ((err = utcp_listen(p->l, 16)) != 0)
		return err;
	if ((err = utcp_connect(p->c, &a, n->now)) != 0)
		return err;
	if (!tnet_run_until(n, tnet_cond_acceptable, p, UTCP_SEC(10)))
		return -1;
	p->s = utcp_accept(p->l, &err);
	tnet_is_dead(&n->side[1], p->s, true);
	return p->s == NULL ? err : 0;
}

/* Parse a packet the engine sent (for assertions on the wire). */
static bool
tnet_parse(const uint8_t *pkt, size_t len, struct wire_ip *ip,
	   struct wire_tcp *seg)
{
	return wire_ip_parse(pkt, len, ip) == 0 && wire_tcp_parse(ip, seg) == 0;
}

static bool tnet_parse(const uint8_t *pkt, size_t len, struct wire_ip *ip,
		       struct wire_tcp *seg);

/* The k-th most recent packet `side` sent (k = 0: the last), parsed.
 * Returns false if there is none or it does not parse. */
static bool
tnet_sent(struct tnet *n, int side, unsigned k, struct wire_tcp *seg,
	  utcp_time_t *at)
{
	struct tnet_side *sd = &n->side[side];
	struct tnet_cap *c;
	struct wire_ip ip;

	if (k >= sd->sent || k >= TNET_NCAP)
		return false;
	c = &sd->cap[(sd->sent - 1 - k) % TNET_NCAP];
	if (at != NULL)
		*at = c->at;
	return tnet_parse(c->data, c->len, &ip, seg);
}

/* Build a TCP/IPv4 segment from `from` side's address to the other. */
/* Side `side`'s IPv6 address (tnet_init_cfg: fd00::1, fd00::2). */
static struct utcp_addr
tnet_addr6(int side, uint16_t port)
{
	struct utcp_addr a;

	memset(&a, 0, sizeof(a));
	a.family = AF_INET6;
	a.port = port;
	a.ip[0] = 0xfd;
	a.ip[15] = (uint8_t)(side + 1);
	return a;
}

/* After a test: past TIME-WAIT and every orphan timeout, no socket, no
 * event about a freed one, no timer left on either side. */
static void
tnet_leak_check(struct tnet *n)
{
	tnet_run(n, UTCP_SEC(200));
	CHECK_EQ(utcp_sock_count(tnet_st(n, 0)), 0);
	CHECK_EQ(utcp_sock_count(tnet_st(n, 1)), 0);
	CHECK_EQ(n->bad_event, 0);
	CHECK(utcp_next_deadline(tnet_st(n, 0)) == UTCP_TIME_NEVER);
	CHECK(utcp_next_deadline(tnet_st(n, 1)) == UTCP_TIME_NEVER);
}

static size_t
tnet_build(uint8_t *buf, int from, const struct wire_tcp *seg)
{
	size_t olen = wire_tcp_opts_len(&seg->opt);
	size_t tl = WIRE_TCP_HLEN + olen + seg->len;

	if (seg->len > 0)
		memcpy(buf + WIRE_IP4_HLEN + WIRE_TCP_HLEN + olen, seg->data,
		       seg->len);
	wire_tcp_emit(buf + WIRE_IP4_HLEN, seg, AF_INET, tnet_ip[from],
		      tnet_ip[1 - from]);
	wire_ip_emit(buf, AF_INET, tnet_ip[from], tnet_ip[1 - from], 0, 64, 1,
		     tl);
	return WIRE_IP4_HLEN + tl;
}

#endif
