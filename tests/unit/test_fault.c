/*
 * test_fault.c — the fault injector's core (tools/utcpd/fault_core.c) at
 * virtual time: SPEC parsing, same seed → same decisions, rates over 100k
 * packets, the queue's bound, and the order in which held and delayed
 * packets leave. The core is included, not linked: unit tests link the
 * engine archive only.
 */
#include "utcpd/fault_core.c"

#include <inttypes.h>

#include "check.h"

#define MAXLOG 300000

/* What left the injector: packet number, time, direction. */
struct out {
	uint32_t id;
	uint32_t meta;
	uint64_t at;
	int dir;
};

struct sink {
	struct out log[MAXLOG];
	size_t n;
	uint64_t now;
	struct fault *f;  /* for the re-entrant test */
	bool answer;      /* each packet in makes one packet out */
};

static struct sink sink;

static void
record(void *ctx, enum fault_dir dir, const uint8_t *pkt, size_t len,
       uint32_t meta)
{
	struct sink *s = ctx;
	uint32_t id = UINT32_MAX;

	if (len >= 4)
		memcpy(&id, pkt, 4);
	if (s->n < MAXLOG)
		s->log[s->n++] = (struct out){ id, meta, s->now, dir };
	if (s->answer && dir == FAULT_IN) {
		uint32_t reply = id | 0x80000000u;
		fault_packet(s->f, FAULT_OUT, (const uint8_t *)&reply, 4, 0,
			     s->now);
	}
}

/* How many of log[from..to) are packets from, from+1, … in that order,
 * none leaving before the one ahead of it. */
static size_t
in_order(size_t from, size_t to)
{
	size_t ok = 0;

	for (size_t i = from; i < to; i++)
		if (sink.log[i].id == i &&
		    (i == from || sink.log[i].at >= sink.log[i - 1].at))
			ok++;
	return ok;
}

static struct fault *
mk(const char *spec, uint64_t *stats)
{
	struct fault_spec fs;
	char err[256];

	memset(stats, 0, FAULT_NSTATS * sizeof(*stats));
	if (fault_parse(spec, &fs, err, sizeof(err)) != 0) {
		printf("spec '%s': %s\n", spec, err);
		CHECK(!"spec parses");
		return NULL;
	}
	memset(&sink, 0, sizeof(sink));
	struct fault *f = fault_new(&fs, record, &sink, stats);
	CHECK(f != NULL);
	sink.f = f;
	return f;
}

/* One packet numbered id, of len bytes (at least 4). */
static void
send_pkt(struct fault *f, enum fault_dir dir, uint32_t id, size_t len)
{
	static uint8_t buf[65536];

	memcpy(buf, &id, 4);
	fault_packet(f, dir, buf, len, id * 7, sink.now);
}

/* Advance virtual time to t, releasing as the daemon's loop would at
 * each deadline on the way. */
static void
run_until(struct fault *f, uint64_t t)
{
	uint64_t next;

	while ((next = fault_next_deadline(f)) <= t) {
		if (next > sink.now)
			sink.now = next;
		fault_release(f, sink.now);
	}
	sink.now = t;
	fault_release(f, t);
}

static void
test_parse(void)
{
	struct fault_spec s;
	char err[256], buf[256];

	CHECK_EQ(fault_parse("seed=7,loss=5%,dup=0.5,reorder=12.25%,delay=20,"
			     "jitter=10,dir=in,hold=2.5ms,limit=100",
			     &s, err, sizeof(err)), 0);
	CHECK_EQ(s.seed, 7);
	CHECK_EQ(s.loss, 50000);
	CHECK_EQ(s.dup, 5000);
	CHECK_EQ(s.reorder, 122500);
	CHECK_EQ(s.delay, 20000);
	CHECK_EQ(s.jitter, 10000);
	CHECK_EQ(s.hold, 2500);
	CHECK_EQ(s.limit, 100);
	CHECK_EQ(s.dirs, FAULT_DIR_BIT(FAULT_IN));
	fault_format(&s, buf, sizeof(buf));
	CHECK(strcmp(buf, "seed=7,loss=5%,dup=0.5%,reorder=12.25%,hold=2.5,"
		      "delay=20,jitter=10,dir=in,limit=100") == 0);

	/* Defaults. */
	CHECK_EQ(fault_parse("loss=100", &s, err, sizeof(err)), 0);
	CHECK_EQ(s.seed, 1);
	CHECK_EQ(s.loss, FAULT_PPM);
	CHECK_EQ(s.hold, FAULT_HOLD_US);
	CHECK_EQ(s.limit, FAULT_LIMIT);
	CHECK_EQ(s.dirs, FAULT_DIR_BIT(FAULT_IN) | FAULT_DIR_BIT(FAULT_OUT));
	CHECK_EQ(fault_parse("seed=18446744073709551615", &s, err,
			     sizeof(err)), 0);
	CHECK(s.seed == UINT64_MAX);

	/* Each bad SPEC names what is wrong. */
	static const struct {
		const char *spec, *says;
	} bad[] = {
		{ "", "empty" },
		{ "loss", "'loss' is not key=value" },
		{ "los=5", "unknown key 'los'" },
		{ "loss=5,loss=6", "'loss' given twice" },
		{ "loss=101", "bad loss '101'" },
		{ "loss=-1", "bad loss '-1'" },
		{ "dup=5%%", "bad dup '5%%'" },
		{ "reorder=abc", "bad reorder 'abc'" },
		{ "reorder=1.", "bad reorder '1.'" },
		{ "loss=0.0000001", "bad loss" },
		{ "delay=60001", "bad delay '60001'" },
		{ "delay=20s", "bad delay '20s'" },
		{ "delay=10,jitter=20", "jitter=20 is more than delay=10" },
		{ "jitter=1", "jitter=1 is more than delay=0" },
		{ "dir=up", "bad dir 'up'" },
		{ "seed=18446744073709551616", "bad seed" },
		{ "seed=", "bad seed ''" },
		{ "limit=0", "bad limit '0'" },
		{ "hold=x", "bad hold 'x'" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		CHECK_EQ(fault_parse(bad[i].spec, &s, err, sizeof(err)), -1);
		if (strstr(err, bad[i].says) == NULL) {
			printf("'%s' said '%s', not '%s'\n", bad[i].spec, err,
			       bad[i].says);
			CHECK(!"the message names the problem");
		}
	}
}

/* Same seed, same decisions; another seed, others. */
static void
run_mixed(const char *spec, struct out *copy, size_t *n, uint64_t *stats)
{
	struct fault *f = mk(spec, stats);

	for (uint32_t i = 0; i < 20000; i++) {
		run_until(f, sink.now + 100); /* a packet every 100 µs */
		send_pkt(f, (i % 3) ? FAULT_IN : FAULT_OUT, i, 64);
	}
	run_until(f, sink.now + 1000000);
	CHECK_EQ(fault_queued(f, NULL), 0);
	memcpy(copy, sink.log, sink.n * sizeof(*copy));
	*n = sink.n;
	fault_free(f);
}

static struct out first[MAXLOG], second[MAXLOG];

static bool
same_log(const struct out *a, const struct out *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (a[i].id != b[i].id || a[i].meta != b[i].meta ||
		    a[i].at != b[i].at || a[i].dir != b[i].dir)
			return false;
	return true;
}

static void
test_determinism(void)
{
	const char *spec = "seed=42,loss=3%,dup=4%,reorder=5%,delay=2,jitter=1";
	uint64_t s1[FAULT_NSTATS], s2[FAULT_NSTATS], s3[FAULT_NSTATS];
	size_t n1, n2, n3;

	run_mixed(spec, first, &n1, s1);
	run_mixed(spec, second, &n2, s2);
	CHECK_EQ(n1, n2);
	CHECK(same_log(first, second, n1));
	CHECK(memcmp(s1, s2, sizeof(s1)) == 0);
	for (int i = 0; i < FAULT_NSTATS; i++)
		CHECK(s1[i] > 0 || i == FAULT_QUEUE_FULL);
	/* Every packet accounted for: dropped, or out once (twice if
	 * duplicated). */
	CHECK_EQ(n1, 20000 - s1[FAULT_DROPPED] + s1[FAULT_DUPLICATED]);

	run_mixed("seed=43,loss=3%,dup=4%,reorder=5%,delay=2,jitter=1",
		  second, &n3, s3);
	CHECK(n3 != n1 || !same_log(first, second, n1));
	printf("seed 42: %zu out, dropped %" PRIu64 " duplicated %" PRIu64
	       " reordered %" PRIu64 " delayed %" PRIu64 "; seed 43: %zu out\n",
	       n1, s1[FAULT_DROPPED], s1[FAULT_DUPLICATED],
	       s1[FAULT_REORDERED], s1[FAULT_DELAYED], n3);
}

/* |got - want| within tol, both in counts. */
static void
near(const char *what, uint64_t got, double want, double tol)
{
	printf("%s: %" PRIu64 " (want %.0f ± %.0f)\n", what, got, want, tol);
	CHECK(got >= want - tol && got <= want + tol);
}

static void
test_rates(void)
{
	uint64_t st[FAULT_NSTATS];
	struct fault *f;
	const uint32_t n = 100000;
	/* 5% of 100k: σ ≈ 69; 6σ is 0.41 percentage points. */
	const double tol = 420;

	f = mk("seed=9,loss=5%,dup=5%,reorder=5%", st);
	for (uint32_t i = 0; i < n; i++)
		send_pkt(f, FAULT_IN, i, 8);
	near("dropped", st[FAULT_DROPPED], n * 0.05, tol);
	/* Dup and reorder are drawn for the packets that survive. */
	near("duplicated", st[FAULT_DUPLICATED], n * 0.95 * 0.05, tol);
	/* reorder holds only while nothing is held: about p/(1+p). */
	near("reordered", st[FAULT_REORDERED], n * 0.95 * 0.05 / 1.05, tol);
	run_until(f, sink.now + 1000000);
	CHECK_EQ(sink.n, n - st[FAULT_DROPPED] + st[FAULT_DUPLICATED]);
	CHECK_EQ(st[FAULT_DELAYED], 0);
	fault_free(f);

	/* dir=out: the other direction passes untouched, in order. */
	f = mk("seed=9,loss=50%,dir=out", st);
	for (uint32_t i = 0; i < 1000; i++)
		send_pkt(f, FAULT_IN, i, 8);
	CHECK_EQ(sink.n, 1000);
	CHECK_EQ(st[FAULT_DROPPED], 0);
	for (uint32_t i = 0; i < 1000; i++)
		send_pkt(f, FAULT_OUT, i, 8);
	near("dropped out, dir=out", st[FAULT_DROPPED], 500, 100);
	fault_free(f);

	/* Nothing asked, nothing done. */
	f = mk("seed=3", st);
	for (uint32_t i = 0; i < 1000; i++)
		send_pkt(f, i & 1, i, 8);
	CHECK_EQ(sink.n, 1000);
	CHECK_EQ(in_order(0, 1000), 1000);
	fault_free(f);
}

static void
test_bound(void)
{
	uint64_t st[FAULT_NSTATS];
	struct fault *f;
	size_t bytes;

	/* limit= packets. */
	f = mk("delay=100,limit=100", st);
	for (uint32_t i = 0; i < 1000; i++)
		send_pkt(f, FAULT_IN, i, 1000);
	CHECK_EQ(fault_queued(f, &bytes), 100);
	CHECK_EQ(bytes, 100 * 1000);
	CHECK_EQ(st[FAULT_DELAYED], 100);
	CHECK_EQ(st[FAULT_QUEUE_FULL], 900);
	CHECK_EQ(sink.n, 0);
	run_until(f, 100000);
	CHECK_EQ(sink.n, 100);
	CHECK_EQ(fault_queued(f, &bytes), 0);
	CHECK_EQ(bytes, 0);
	fault_free(f);

	/* 64 MiB, whatever the packet limit: 1024 64-KiB packets fit. */
	f = mk("delay=100", st);
	for (uint32_t i = 0; i < 1100; i++)
		send_pkt(f, FAULT_OUT, i, 65536);
	CHECK_EQ(fault_queued(f, &bytes), 1024);
	CHECK(bytes <= FAULT_MAX_BYTES);
	CHECK_EQ(st[FAULT_QUEUE_FULL], 76);
	/* Freed with packets still queued: no leak (ASan checks). */
	fault_free(f);

	/* A held packet counts too, and a full queue drops it (counted). */
	f = mk("reorder=100,limit=1,delay=5", st);
	send_pkt(f, FAULT_IN, 1, 8); /* held */
	send_pkt(f, FAULT_IN, 2, 8); /* passes, but no room to delay it */
	CHECK_EQ(st[FAULT_QUEUE_FULL], 1);
	CHECK_EQ(st[FAULT_REORDERED], 1);
	run_until(f, 1000000);
	CHECK_EQ(sink.n, 1); /* 1 at its time */
	CHECK_EQ(sink.log[0].id, 1);
	fault_free(f);
}

static void
test_reorder_order(void)
{
	uint64_t st[FAULT_NSTATS];
	struct fault *f;

	/* reorder=100%: each packet that finds nothing held is held, and
	 * the next one overtakes it: 1 0 3 2 5 4 … */
	f = mk("reorder=100%", st);
	for (uint32_t i = 0; i < 10; i++)
		send_pkt(f, FAULT_IN, i, 8);
	CHECK_EQ(sink.n, 10);
	for (uint32_t i = 0; i < 10; i++) {
		CHECK_EQ(sink.log[i].id, i ^ 1);
		CHECK_EQ(sink.log[i].meta, (i ^ 1) * 7);
	}
	CHECK_EQ(st[FAULT_REORDERED], 5);

	/* Nobody overtakes: it goes at the bound (hold=, default 10 ms). */
	sink.n = 0;
	sink.now = 1000;
	send_pkt(f, FAULT_IN, 77, 8);
	CHECK_EQ(sink.n, 0);
	CHECK_EQ(fault_next_deadline(f), 1000 + FAULT_HOLD_US);
	run_until(f, 1000 + FAULT_HOLD_US - 1);
	CHECK_EQ(sink.n, 0);
	run_until(f, 1000 + FAULT_HOLD_US);
	CHECK_EQ(sink.n, 1);
	CHECK_EQ(sink.log[0].id, 77);
	CHECK_EQ(sink.log[0].at, 1000 + FAULT_HOLD_US);
	CHECK(fault_next_deadline(f) == UINT64_MAX);
	fault_free(f);

	/* With a duplicate, the copy is held: 0 0' becomes 0 1 0'. */
	f = mk("dup=100,reorder=100,hold=1", st);
	send_pkt(f, FAULT_OUT, 0, 8);
	CHECK_EQ(sink.n, 1);
	send_pkt(f, FAULT_OUT, 1, 8); /* the slot is taken: 1 1 then 0' */
	CHECK_EQ(sink.n, 4);
	CHECK_EQ(sink.log[1].id, 1);
	CHECK_EQ(sink.log[2].id, 1);
	CHECK_EQ(sink.log[3].id, 0);
	fault_free(f);

	/* Reorder under delay: the held packet follows the one that
	 * overtook it at that one's time. */
	f = mk("reorder=100,delay=20", st);
	send_pkt(f, FAULT_IN, 0, 8); /* held: bound at 20 + 10 ms */
	sink.now = 5000;
	send_pkt(f, FAULT_IN, 1, 8); /* out at 25 ms, then 0 */
	CHECK_EQ(fault_next_deadline(f), 25000);
	run_until(f, 100000);
	CHECK_EQ(sink.n, 2);
	CHECK_EQ(sink.log[0].id, 1);
	CHECK_EQ(sink.log[1].id, 0);
	CHECK_EQ(sink.log[0].at, 25000);
	CHECK_EQ(sink.log[1].at, 25000);
	fault_free(f);
}

static void
test_delay_order(void)
{
	uint64_t st[FAULT_NSTATS];
	struct fault *f;
	uint64_t lo = UINT64_MAX, hi = 0;
	double sum = 0;

	/* delay=20,jitter=10: each packet 10 to 30 ms late, mean 20, and
	 * never before the one ahead of it. */
	f = mk("seed=5,delay=20,jitter=10", st);
	for (uint32_t i = 0; i < 2000; i++) {
		run_until(f, (uint64_t)i * 1000); /* one a millisecond */
		send_pkt(f, FAULT_OUT, i, 100);
	}
	run_until(f, sink.now + 60000);
	CHECK_EQ(sink.n, 2000);
	CHECK_EQ(st[FAULT_DELAYED], 2000);
	CHECK_EQ(in_order(0, sink.n), sink.n);
	for (uint32_t i = 0; i < sink.n; i++) {
		uint64_t late = sink.log[i].at - (uint64_t)i * 1000;

		lo = late < lo ? late : lo;
		hi = late > hi ? late : hi;
		sum += (double)late;
	}
	printf("delay=20,jitter=10: %" PRIu64 " to %" PRIu64
	       " µs late, mean %.0f\n", lo, hi, sum / sink.n);
	CHECK(lo >= 10000);
	CHECK(hi <= 30000);
	/* One a millisecond, 20 ms apart at most: a packet that drew a
	 * short delay often waits for the one ahead, so the mean leans to
	 * delay + jitter. */
	CHECK(sum / sink.n > 20000 && sum / sink.n < 30000);
	fault_free(f);

	/* Packets further apart than 2 × jitter never wait for another:
	 * the delay is uniform in 10..30 ms, mean 20. */
	f = mk("seed=5,delay=20,jitter=10", st);
	lo = UINT64_MAX, hi = 0, sum = 0;
	for (uint32_t i = 0; i < 2000; i++) {
		run_until(f, (uint64_t)i * 25000);
		send_pkt(f, FAULT_OUT, i, 100);
	}
	run_until(f, sink.now + 60000);
	CHECK_EQ(sink.n, 2000);
	CHECK_EQ(in_order(0, sink.n), sink.n);
	for (uint32_t i = 0; i < sink.n; i++) {
		uint64_t late = sink.log[i].at - (uint64_t)i * 25000;

		lo = late < lo ? late : lo;
		hi = late > hi ? late : hi;
		sum += (double)late;
	}
	printf("... sparse packets: %" PRIu64 " to %" PRIu64
	       " µs late, mean %.0f\n", lo, hi, sum / sink.n);
	CHECK(lo >= 10000 && lo < 10100);
	CHECK(hi <= 30000 && hi > 29900);
	CHECK(sum / sink.n > 19500 && sum / sink.n < 20500);
	fault_free(f);

	/* A plain delay: exactly 20 ms, and the deadline says when. */
	f = mk("delay=20", st);
	sink.now = 500;
	send_pkt(f, FAULT_IN, 1, 8);
	CHECK_EQ(fault_next_deadline(f), 20500);
	run_until(f, 20499);
	CHECK_EQ(sink.n, 0);
	run_until(f, 20500);
	CHECK_EQ(sink.n, 1);
	fault_free(f);
}

/* What the daemon does: a packet in makes the engine answer, from inside
 * the emit callback, and the answer goes through the other direction. */
static void
test_reentrant(void)
{
	uint64_t st[FAULT_NSTATS];
	struct fault *f = mk("seed=11,delay=1,reorder=30,dup=10", st);

	sink.answer = true;
	for (uint32_t i = 0; i < 5000; i++) {
		run_until(f, sink.now + 300);
		send_pkt(f, FAULT_IN, i, 8);
	}
	run_until(f, sink.now + 1000000);
	size_t in = 0, out = 0;
	for (size_t i = 0; i < sink.n; i++) {
		if (sink.log[i].dir == FAULT_IN)
			in++;
		else
			out++;
	}
	CHECK_EQ(in, 5000 + st[FAULT_DUPLICATED] - (out - in));
	CHECK_EQ(fault_queued(f, NULL), 0);
	fault_free(f);
}

int
main(void)
{
	RUN(test_parse);
	RUN(test_determinism);
	RUN(test_rates);
	RUN(test_bound);
	RUN(test_reorder_order);
	RUN(test_delay_order);
	RUN(test_reentrant);
	return CHECK_DONE();
}
