/*
 * connmem.h — what an idle established connection costs the engine.
 *
 * Two engine stacks wired back to back at virtual time, through the public
 * API only (utcp.h): side A opens `n` connections to listeners on side B,
 * B accepts them, one short request and answer cross each connection and
 * are read, delayed ACKs go out, and everything goes quiet. The heap in use
 * (mallinfo2) before and after, divided by the 2n engine sockets, is the
 * engine's state per connection end: socket, demux table, timers, ports,
 * and any buffer still held (there should be none: rings are released
 * when empty).
 *
 * Used by bench/connmem.c (prints the figures) and by
 * tests/unit/test_engine_mem.c (asserts them). Functions are static: each
 * includer takes what it uses.
 */
#ifndef UTCP_CONNMEM_H
#define UTCP_CONNMEM_H

#include "utcp.h"

#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#pragma GCC diagnostic ignored "-Wunused-function"

/* Packets in flight towards one side, as [u32 len][bytes] records. The
 * buffers are allocated before the baseline and never grow, so they do
 * not count. */
#define CM_QCAP (8u << 20)
#define CM_BATCH 1000u /* connections opened before the packets are moved */
#define CM_MAXPORTS 16

struct cm_queue {
	uint8_t *buf;
	size_t len;
	int overflow;
};

struct cm_side {
	struct cm_net *net;
	int id;
	struct utcp_stack *st;
	struct cm_queue q[2]; /* being filled, being delivered */
};

struct cm_net {
	struct cm_side side[2]; /* 0: A, the clients; 1: B, the servers */
	utcp_time_t now;
	unsigned nports;
	struct utcp_sock *lsn[CM_MAXPORTS];
	struct utcp_sock **a, **b; /* [n] each */
	unsigned n, na, nb;
	unsigned errors; /* unexpected results, with a line on stderr */
};

static void
cm_output(void *ctx, const uint8_t *pkt, size_t len)
{
	struct cm_side *from = ctx;
	struct cm_queue *q = &from->net->side[1 - from->id].q[0];
	uint32_t l = (uint32_t)len;

	if (q->len + 4 + len > CM_QCAP) {
		q->overflow = 1;
		return;
	}
	memcpy(q->buf + q->len, &l, 4);
	memcpy(q->buf + q->len + 4, pkt, len);
	q->len += 4 + len;
}

/* Deliver until no packet is left in flight. */
static void
cm_settle(struct cm_net *c)
{
	for (int busy = 1; busy;) {
		busy = 0;
		for (int i = 0; i < 2; i++) {
			struct cm_side *sd = &c->side[i];
			struct cm_queue t = sd->q[0];

			if (t.len == 0)
				continue;
			busy = 1;
			/* Swap: new output lands in the other buffer. */
			sd->q[0] = sd->q[1];
			sd->q[0].len = 0;
			sd->q[1] = t;
			for (size_t off = 0; off < t.len;) {
				uint32_t l;

				memcpy(&l, t.buf + off, 4);
				utcp_input(sd->st, t.buf + off + 4, l, c->now);
				off += 4 + l;
			}
			sd->q[1].len = 0;
		}
	}
}

/* Let virtual time pass in steps, firing timers on both sides. */
static void
cm_advance(struct cm_net *c, utcp_time_t dt, utcp_time_t step)
{
	utcp_time_t end = c->now + dt;

	while (c->now < end) {
		c->now += step;
		utcp_poll(c->side[0].st, c->now);
		utcp_poll(c->side[1].st, c->now);
		cm_settle(c);
	}
}

static void
cm_err(struct cm_net *c, const char *what, long v)
{
	if (c->errors++ < 5)
		fprintf(stderr, "connmem: %s (%ld)\n", what, v);
}

/* Stacks and listeners (not counted in the per-connection figure). */
static int
cm_init(struct cm_net *c, unsigned n)
{
	static const uint8_t ip[2][4] = {{10, 0, 0, 1}, {10, 0, 0, 2}};

	memset(c, 0, sizeof(*c));
	c->n = n;
	c->now = UTCP_SEC(1);
	/* 64,512 ephemeral ports on A: one listener port per 25,000
	 * connections keeps every 4-tuple unique with room to spare. */
	c->nports = n / 25000 + 1;
	if (c->nports > CM_MAXPORTS)
		return -E2BIG;
	c->a = calloc(n ? n : 1, sizeof(*c->a));
	c->b = calloc(n ? n : 1, sizeof(*c->b));
	if (c->a == NULL || c->b == NULL)
		return -ENOMEM;
	for (int i = 0; i < 2; i++) {
		struct cm_side *sd = &c->side[i];
		struct utcp_config cfg;

		sd->net = c;
		sd->id = i;
		for (int k = 0; k < 2; k++) {
			sd->q[k].buf = malloc(CM_QCAP);
			if (sd->q[k].buf == NULL)
				return -ENOMEM;
		}
		utcp_config_defaults(&cfg);
		cfg.local4.family = AF_INET;
		memcpy(cfg.local4.ip, ip[i], 4);
		for (int k = 0; k < 16; k++)
			cfg.isn_key[k] = (uint8_t)(k * 7 + i);
		cfg.seed = 42 + (uint64_t)i;
		cfg.port_lo = 1024;
		cfg.port_hi = 65535;
		cfg.ctx = sd;
		cfg.output = cm_output;
		sd->st = utcp_stack_new(&cfg);
		if (sd->st == NULL)
			return -ENOMEM;
	}
	for (unsigned p = 0; p < c->nports; p++) {
		struct utcp_addr a = {.family = AF_INET, .port = (uint16_t)(80 + p)};
		struct utcp_sock *l = utcp_socket(c->side[1].st, AF_INET);
		int err;

		if (l == NULL)
			return -ENOMEM;
		c->lsn[p] = l;
		if ((err = utcp_bind(l, &a)) != 0 ||
		    (err = utcp_listen(l, 4096)) != 0)
			return err;
	}
	return 0;
}

static void
cm_accept_all(struct cm_net *c)
{
	for (unsigned p = 0; p < c->nports; p++) {
		struct utcp_sock *s;
		int err;

		while ((s = utcp_accept(c->lsn[p], &err)) != NULL) {
			if (c->nb < c->n)
				c->b[c->nb++] = s;
			else
				cm_err(c, "more accepted than opened", c->nb);
		}
	}
}

/* The heap in use now (chunk overheads included, as the process pays
 * them); 0 when the allocator does not say (valgrind, sanitizers). */
static size_t
cm_heap(void)
{
	struct mallinfo2 mi = mallinfo2();

	return mi.uordblks + mi.hblkhd;
}

/* Does the allocator say what it holds? */
static int
cm_heap_known(void)
{
	void *volatile p = malloc(4096);
	int known = cm_heap() != 0;

	free(p);
	return known;
}

/* Open n connections, exchange a little data, go idle. Work goes in
 * batches so that the packets of one batch fit the queues. */
static void
cm_establish(struct cm_net *c, size_t req)
{
	uint8_t msg[256], got[256];

	memset(msg, 'x', sizeof(msg));
	if (req > sizeof(msg))
		req = sizeof(msg);
	while (c->na < c->n) {
		unsigned end = c->na + CM_BATCH < c->n ? c->na + CM_BATCH : c->n;

		for (; c->na < end; c->na++) {
			struct utcp_sock *s = utcp_socket(c->side[0].st, AF_INET);
			struct utcp_addr to = {.family = AF_INET,
					       .ip = {10, 0, 0, 2}};
			int err;

			if (s == NULL) {
				cm_err(c, "utcp_socket", -ENOMEM);
				return;
			}
			c->a[c->na] = s;
			to.port = (uint16_t)(80 + c->na % c->nports);
			if ((err = utcp_connect(s, &to, c->now)) != 0)
				cm_err(c, "utcp_connect", err);
		}
		cm_settle(c);
		cm_accept_all(c);
	}
	if (c->nb != c->n)
		cm_err(c, "accepted fewer than opened", c->nb);
	/* A request each way, read at once: the rings fill and drain. */
	for (unsigned lo = 0; req > 0 && lo < c->nb; lo += CM_BATCH) {
		unsigned hi = lo + CM_BATCH < c->nb ? lo + CM_BATCH : c->nb;

		for (unsigned i = lo; i < hi; i++)
			if (utcp_send(c->a[i], msg, req, 0, c->now) !=
			    (ssize_t)req)
				cm_err(c, "send A", i);
		cm_settle(c);
		/* Accepted sockets come in any order: each answers. */
		for (unsigned i = lo; i < hi; i++) {
			if (utcp_recv(c->b[i], got, sizeof(got), 0, c->now) !=
			    (ssize_t)req)
				cm_err(c, "recv B", i);
			if (utcp_send(c->b[i], msg, req, 0, c->now) !=
			    (ssize_t)req)
				cm_err(c, "send B", i);
		}
		cm_settle(c);
		for (unsigned i = lo; i < hi; i++)
			if (utcp_recv(c->a[i], got, sizeof(got), 0, c->now) !=
			    (ssize_t)req)
				cm_err(c, "recv A", i);
		/* Delayed ACKs (40 ms) go out. */
		cm_advance(c, UTCP_MS(100), UTCP_MS(50));
	}
	cm_advance(c, UTCP_MS(500), UTCP_MS(100));
	for (unsigned i = 0; i < c->na; i++)
		if (utcp_sock_state(c->a[i]) != UTCP_ESTABLISHED ||
		    utcp_send_space(c->a[i]) == 0 ||
		    utcp_recv_avail(c->a[i]) != 0) {
			cm_err(c, "A not idle and established", i);
			break;
		}
}

/* Close both ends, wait out TIME-WAIT; then only the listeners remain. */
static void
cm_teardown(struct cm_net *c, int abortive)
{
	for (unsigned lo = 0; lo < c->na; lo += CM_BATCH) {
		unsigned hi = lo + CM_BATCH < c->na ? lo + CM_BATCH : c->na;

		for (unsigned i = lo; i < hi; i++)
		{
			/* An aborted socket is CLOSED but still the
			 * application's until it closes it. */
			if (abortive)
				utcp_abort(c->a[i], c->now);
			utcp_close(c->a[i], c->now);
		}
		cm_settle(c);
	}
	for (unsigned lo = 0; lo < c->nb; lo += CM_BATCH) {
		unsigned hi = lo + CM_BATCH < c->nb ? lo + CM_BATCH : c->nb;

		for (unsigned i = lo; i < hi; i++)
			utcp_close(c->b[i], c->now);
		cm_settle(c);
	}
	/* 2MSL is 60 s. */
	cm_advance(c, UTCP_SEC(65), UTCP_SEC(5));
	for (unsigned p = 0; p < c->nports; p++)
		utcp_close(c->lsn[p], c->now);
	cm_settle(c);
}

static void
cm_free(struct cm_net *c)
{
	for (int i = 0; i < 2; i++) {
		utcp_stack_free(c->side[i].st);
		for (int k = 0; k < 2; k++)
			free(c->side[i].q[k].buf);
	}
	free(c->a);
	free(c->b);
}

static int
cm_overflowed(const struct cm_net *c)
{
	for (int i = 0; i < 2; i++)
		for (int k = 0; k < 2; k++)
			if (c->side[i].q[k].overflow)
				return 1;
	return 0;
}

#endif
