/*
 * trace.h — a subscriber to the daemon's trace stream (ipc.h, "Tracing"),
 * shared by `utcp trace` and `utcp run --trace/--pcap`: it turns events
 * into text or JSON lines, packets into a pcap file, and remembers where
 * each socket stands so a run knows when its connections are done.
 */
#ifndef UTCP_TRACE_H
#define UTCP_TRACE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <uthash.h>

#include "ipc.h"
#include "pcap.h"

struct trace_sock {
	uint32_t id;
	int state;          /* enum utcp_state, last seen */
	bool freed;         /* the engine let go of it */
	bool named;         /* its addresses were printed */
	char local[57], remote[57]; /* NUL-terminated copies */
	UT_hash_handle hh;
};

struct trace {
	int fd;
	uint8_t *buf;       /* one message, UTCP_IPC_PACKET_MAX */
	uint64_t t0;        /* CLOCK_MONOTONIC µs: time 0 of the output */
	int64_t real_off;   /* CLOCK_REALTIME - CLOCK_MONOTONIC, µs */
	/* where things go */
	FILE *out;          /* events; NULL: not shown */
	bool json, color;
	struct utcp_pcap *pcap; /* packets; NULL: not captured */
	const char *prog;   /* "utcp run", for messages */
	/* what happened */
	struct trace_sock *socks;
	uint64_t events, packets;
	uint64_t lost, lost_said;
	uint32_t sync_sent, sync_seen;
	bool eof;           /* the daemon closed the stream */
	int write_err;      /* first output error, -errno */
};

/* Subscribe: pid and tag filters (0: all), flags UTCP_TRACE_*. The
 * struct's output fields must be set first. 0, or -errno (said on
 * stderr). */
int trace_open(struct trace *t, const char *path, pid_t pid, uint32_t tag,
	       int flags);
void trace_close(struct trace *t);
/* Handle everything that is waiting, without blocking. 0, or
 * -ECONNRESET once the daemon has closed the stream. */
int trace_drain(struct trace *t);
/* Wait until everything the daemon sent before now has been handled
 * (a UTCP_OP_TRACE_SYNC round trip through the stream). 0 or -ETIMEDOUT. */
int trace_sync(struct trace *t, int timeout_ms);
/* True when every socket seen is closed, in TIME-WAIT, or freed. */
bool trace_quiet(const struct trace *t);
/* Say how many messages the daemon dropped, if any, and flush. */
void trace_finish(struct trace *t);

/* Output for a stream: colour only on a terminal, never with NO_COLOR. */
bool trace_want_color(FILE *f);

uint64_t trace_mono_us(void);

#endif
