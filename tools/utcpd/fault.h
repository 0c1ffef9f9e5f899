/*
 * fault.h — the seeded fault injector's core (fault_core.c): parse a
 * --fault SPEC, decide per packet (loss, duplication, reordering, delay),
 * keep copies of delayed and held packets in one bounded queue, and hand
 * them back when their time comes. No syscalls, no clock, no daemon: the
 * caller feeds packets and `now`, and gets packets back through a
 * callback; tests/unit/test_fault.c drives it at virtual time.
 *
 * Determinism: each direction has its own PRNG (xoshiro256**, seeded by
 * splitmix64 from seed and the direction) and every packet takes the same
 * four draws whatever happens to it, so the decisions for the Nth packet
 * of a direction depend on seed, direction and N only.
 */
#ifndef UTCPD_FAULT_H
#define UTCPD_FAULT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum fault_dir {
	FAULT_IN,  /* kernel → engine: read from the TUN */
	FAULT_OUT, /* engine → kernel: written to the TUN */
	FAULT_NDIR
};
#define FAULT_DIR_BIT(dir) (1u << (dir))

#define FAULT_PPM 1000000u          /* probabilities in millionths */
#define FAULT_LIMIT 4096u           /* default limit=: packets queued */
#define FAULT_MAX_BYTES (64u << 20) /* bytes queued, whatever limit= says */
#define FAULT_HOLD_US 10000u        /* default hold=: a reordered packet's
				     * longest wait for one to overtake it */
#define FAULT_MAX_MS 60000u         /* delay, jitter and hold at most */

/* In the order of the daemon_fault_* counters (utcpd.h). */
enum fault_stat {
	FAULT_DROPPED,    /* loss= */
	FAULT_DUPLICATED, /* extra copies made by dup= */
	FAULT_REORDERED,  /* packets held back by reorder= */
	FAULT_DELAYED,    /* packets that waited in the queue for delay= */
	FAULT_QUEUE_FULL, /* copies dropped: the queue was at its bound */
	FAULT_NSTATS
};

struct fault_spec {
	uint64_t seed;
	uint32_t loss, dup, reorder; /* millionths */
	uint64_t delay, jitter;      /* µs: uniform in delay ± jitter */
	uint64_t hold;               /* µs */
	uint32_t limit;              /* packets in the queue at most */
	unsigned dirs;               /* FAULT_DIR_BIT()s */
};

/* Parse SPEC ("seed=7,reorder=5%,delay=20,jitter=10,dir=in"). 0, or -1
 * with a message naming the bad key or value in err. */
int fault_parse(const char *spec, struct fault_spec *s, char *err,
		size_t errlen);
/* SPEC back in canonical form, for the log. */
void fault_format(const struct fault_spec *s, char *buf, size_t len);

/* Where packets leave the injector: meta is what came with the packet. */
typedef void fault_emit_fn(void *ctx, enum fault_dir dir, const uint8_t *pkt,
			   size_t len, uint32_t meta);

struct fault;
/* stats: FAULT_NSTATS counters the injector adds to. NULL: no memory. */
struct fault *fault_new(const struct fault_spec *s, fault_emit_fn *emit,
			void *ctx, uint64_t *stats);
/* Queued packets are dropped, not emitted. */
void fault_free(struct fault *f);
/* One packet in direction dir at time now (µs): emitted at once (0, 1 or
 * 2 times), or copied into the queue. emit may call fault_packet for the
 * other direction. */
void fault_packet(struct fault *f, enum fault_dir dir, const uint8_t *pkt,
		  size_t len, uint32_t meta, uint64_t now);
/* Emit every queued packet whose time has come, in order. */
void fault_release(struct fault *f, uint64_t now);
/* When fault_release has work next; UINT64_MAX: never. */
uint64_t fault_next_deadline(const struct fault *f);
/* Packets and bytes queued or held now. */
size_t fault_queued(const struct fault *f, size_t *bytes);

#endif
