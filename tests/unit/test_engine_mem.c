/*
 * test_engine_mem.c — memory per connection (issue 7): an idle
 * established connection costs the engine ≤ 1 KiB with its buffers given
 * back, and 100,000 connections can be opened and torn down in one stack
 * pair. The harness is bench/connmem.h, which the connmem benchmark uses
 * too.
 */
#include "../../bench/connmem.h"

#include "check.h"
#include "internal.h"
#include "ring.h"

/* Under valgrind or a sanitizer the allocator reports nothing: the
 * structural checks still run, the byte counts are skipped. */
static int heap_known;

static void
test_ring_release(void)
{
	struct ring r = {0};
	uint8_t in[100], out[100];

	memset(in, 7, sizeof(in));
	CHECK_EQ(ring_write_at(&r, 0, in, 100), 0);
	r.len = 100;
	CHECK(r.buf != NULL);
	ring_read_at(&r, 0, out, 60);
	ring_consume(&r, 60);
	CHECK(r.buf != NULL); /* 40 bytes still queued */
	ring_consume(&r, 40);
	CHECK(r.buf == NULL); /* empty: storage given back */
	CHECK_EQ(r.cap, 0);
	CHECK_EQ(r.len, 0);

	/* Parked bytes past len (out of order) keep the storage. */
	CHECK_EQ(ring_write_at(&r, 0, in, 10), 0);
	CHECK_EQ(ring_write_at(&r, 50, in, 10), 0);
	r.len = 10;
	ring_consume(&r, 10);
	CHECK(r.buf != NULL);
	CHECK_EQ(r.end, 50);
	/* The gap fills: the parked bytes become readable in place. */
	CHECK_EQ(ring_write_at(&r, 0, in, 40), 0);
	r.len = 50;
	ring_read_at(&r, 40, out, 10);
	CHECK(memcmp(out, in, 10) == 0);
	ring_consume(&r, 50);
	CHECK(r.buf == NULL);

	/* A caller that dropped the parked bytes releases explicitly. */
	CHECK_EQ(ring_write_at(&r, 30, in, 10), 0);
	ring_release_if_empty(&r);
	CHECK(r.buf == NULL);
	CHECK_EQ(r.end, 0);

	/* Reused after release, and wrapping still works. */
	for (int i = 0; i < 100; i++) {
		CHECK_EQ(ring_write_at(&r, r.len, in, 100), 0);
		r.len += 100;
		ring_consume(&r, 70);
	}
	CHECK_EQ(r.len, 3000);
	ring_consume(&r, 3000);
	CHECK(r.buf == NULL);
	ring_free(&r);
}

/* The layout stays packed: a bound that holds under any allocator. */
static void
test_struct_size(void)
{
	CHECK(sizeof(struct utcp_sock) <= 704);
	CHECK(sizeof(struct ring) == 24);
	CHECK(sizeof(struct reass) == 16);
}

/* 10,000 connections, a request and an answer each, then idle. */
static void
test_idle_cost(void)
{
	struct cm_net c;
	size_t h0, h1, h2;

	CHECK_EQ(cm_init(&c, 10000), 0);
	h0 = cm_heap();
	cm_establish(&c, 100);
	h1 = cm_heap();
	CHECK_EQ(c.errors, 0);
	CHECK_EQ(c.na, 10000);
	CHECK_EQ(c.nb, 10000);
	CHECK_EQ(utcp_sock_count(c.side[0].st), 10000);
	CHECK_EQ(utcp_sock_count(c.side[1].st), 10000 + c.nports);
	/* No timer is left running on an idle connection (no keepalive). */
	CHECK_EQ(utcp_next_deadline(c.side[0].st), UTCP_TIME_NEVER);
	CHECK_EQ(utcp_next_deadline(c.side[1].st), UTCP_TIME_NEVER);
	/* Every ring and out-of-order list given back. */
	{
		unsigned held = 0;

		for (unsigned i = 0; i < c.na; i++)
			held += c.a[i]->snd.buf != NULL ||
				c.a[i]->rcv.buf != NULL ||
				c.a[i]->ooo.b != NULL ||
				c.a[i]->sacked.b != NULL;
		for (unsigned i = 0; i < c.nb; i++)
			held += c.b[i]->snd.buf != NULL ||
				c.b[i]->rcv.buf != NULL;
		CHECK_EQ(held, 0);
	}
	if (heap_known) {
		size_t per = (h1 - h0) / (2 * c.n);

		printf("idle established connection: %zu bytes of engine "
		       "state per end\n",
		       per);
		CHECK(per <= 1024);
	}
	cm_teardown(&c, 0);
	h2 = cm_heap();
	CHECK_EQ(c.errors, 0);
	CHECK_EQ(utcp_sock_count(c.side[0].st), 0);
	CHECK_EQ(utcp_sock_count(c.side[1].st), 0);
	/* Tables shrink back with the connections gone (what is left is the
	 * allocator's own caching). */
	if (heap_known)
		CHECK(h2 < h0 + 65536);
	CHECK(!cm_overflowed(&c));
	cm_free(&c);
}

/* 100,000 at once: opened, established, aborted, all freed. */
static void
test_100k(void)
{
	struct cm_net c;

	CHECK_EQ(cm_init(&c, 100000), 0);
	CHECK(c.nports >= 2); /* more than 64k 4-tuples */
	cm_establish(&c, 0);
	CHECK_EQ(c.errors, 0);
	CHECK_EQ(c.na, 100000);
	CHECK_EQ(c.nb, 100000);
	CHECK_EQ(utcp_sock_count(c.side[0].st), 100000);
	{
		unsigned est = 0;

		for (unsigned i = 0; i < c.na; i++)
			est += utcp_sock_state(c.a[i]) == UTCP_ESTABLISHED;
		CHECK_EQ(est, 100000);
	}
	cm_teardown(&c, 1);
	CHECK_EQ(c.errors, 0);
	CHECK_EQ(utcp_sock_count(c.side[0].st), 0);
	CHECK_EQ(utcp_sock_count(c.side[1].st), 0);
	CHECK(!cm_overflowed(&c));
	cm_free(&c);
}

int
main(void)
{
	heap_known = cm_heap_known();
	RUN(test_ring_release);
	RUN(test_struct_size);
	RUN(test_idle_cost);
	RUN(test_100k);
	return CHECK_DONE();
}
