/*
 * utcpd.h — what the daemon's files share.
 *
 * One process, one thread, one epoll loop (loop.c). It owns the TUN fd
 * (tun.c), the clock, the control socket and its clients (ctl.c), and one
 * record per engine socket with the daemon's end of that socket's
 * socketpair (bridge.c). Engine callbacks (events.c) never re-enter the
 * engine: they mark records dirty, and the loop works the dirty list once
 * the engine call has returned.
 *
 * Lifetimes: records and clients are never freed while an epoll batch may
 * still point at them; they are unlinked, put on a reap list and freed at
 * the end of the loop iteration.
 */
#ifndef UTCPD_H
#define UTCPD_H

#include <net/if.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/queue.h>
#include <sys/types.h>
#include <uthash.h>
#include <bsd/string.h>

#include "ipc.h"
#include "utcp.h"

#define UTCPD_IOBUF (64 * 1024)      /* one read/write chunk of the data path */
#define UTCPD_TUN_BATCH 64           /* packets read per TUN wakeup */
#define UTCPD_READS_PER_WAKEUP 8     /* socketpair reads before yielding */
#define UTCPD_REQS_PER_WAKEUP 16     /* control requests before yielding */
#define UTCPD_GRACE UTCP_SEC(60)     /* see bridge.c, "lingering records" */

/* ---- logging (log.c) ---- */

enum { ULOG_ERROR, ULOG_WARN, ULOG_INFO, ULOG_DEBUG };

extern int ulog_level;
int ulog_parse_level(const char *s); /* -1 if not a level */
const char *ulog_level_name(int level);
/* 0, or -errno when the file cannot be opened. NULL: stderr. */
int ulog_open(const char *path);
void ulog_close(void);
void ulog(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define ULOG_ON(lvl) ((lvl) <= ulog_level)
#define log_error(...) ulog(ULOG_ERROR, __VA_ARGS__)
#define log_warn(...) do { if (ULOG_ON(ULOG_WARN)) ulog(ULOG_WARN, __VA_ARGS__); } while (0)
#define log_info(...) do { if (ULOG_ON(ULOG_INFO)) ulog(ULOG_INFO, __VA_ARGS__); } while (0)
#define log_debug(...) do { if (ULOG_ON(ULOG_DEBUG)) ulog(ULOG_DEBUG, __VA_ARGS__); } while (0)

/* ---- the daemon's own counters, after the engine's in UTCP_OP_STATS ---- */

#define UTCPD_STATS(X)                                                       \
	X(ctl_clients, "control connections open")                           \
	X(ctl_accepted, "control connections accepted")                      \
	X(ctl_refused, "control connections refused (SO_PEERCRED)")          \
	X(ctl_requests, "control requests served")                           \
	X(ctl_bad_requests, "control requests malformed or of a bad version") \
	X(sockets_created, "engine sockets created for programs")            \
	X(sockets_open, "engine sockets with a daemon record")               \
	X(adopt_failed, "sockets made by the preload the daemon could not adopt") \
	X(tun_rx, "packets read from the TUN")                               \
	X(tun_rx_bytes, "bytes read from the TUN")                           \
	X(tun_tx, "packets written to the TUN")                              \
	X(tun_tx_bytes, "bytes written to the TUN")                          \
	X(tun_tx_drop, "packets dropped: TUN write failed or would block")   \
	X(to_engine_bytes, "bytes moved from programs to the engine")        \
	X(to_program_bytes, "bytes moved from the engine to programs")       \
	X(trace_events, "trace events sent")                                 \
	X(trace_dropped, "trace events dropped: subscriber not reading")    \
	X(pcap_packets, "packets written to the --pcap file")                \
	X(pcap_skipped, "packets left out of --pcap: cap, slow pipe, error") \
	X(fault_dropped, "packets dropped by --fault loss=")                 \
	X(fault_duplicated, "packets duplicated by --fault dup=")            \
	X(fault_reordered, "packets held back by --fault reorder=")          \
	X(fault_delayed, "packets queued by --fault delay=")                 \
	X(fault_queue_full, "packets dropped: --fault queue at its bound")  \
	X(wakeups, "times the daemon woke from sleep with work to do")    \
	X(busy_poll_found, "times --busy-poll found work without sleeping") \
	X(busy_poll_idle, "--busy-poll windows that ended in sleep")

enum utcpd_stat {
#define UTCPD_STAT_ENUM(name, desc) DST_##name,
	UTCPD_STATS(UTCPD_STAT_ENUM)
#undef UTCPD_STAT_ENUM
	DST_COUNT
};
const char *utcpd_stat_name(int i); /* "daemon_tun_rx" */

/* ---- options (main.c) ---- */

struct utcpd_opts {
	const char *socket_path;
	const char *tun;
	struct in_addr addr, peer;
	unsigned prefix;
	bool ipv6;
	struct in6_addr addr6, peer6;
	unsigned prefix6;
	unsigned mtu;
	bool offload;          /* IFF_VNET_HDR + TUNSETOFFLOAD (tun.c) */
	bool no_async;         /* --no-async: no UTCP_CAP_ASYNC (ipc.h) */
	int ready_fd;
	const char *pidfile;
	bool host;
	const char *pcap;      /* --pcap FILE, NULL: none */
	uint64_t pcap_max;     /* --pcap-max, 0: no cap */
	const char *fault;     /* --fault SPEC (fault.c), NULL: none */
	unsigned busy_poll;    /* --busy-poll: µs to poll before sleeping */
};

/* ---- objects the epoll loop dispatches to ---- */

enum ep_kind { EP_TUN, EP_CTL, EP_CLIENT, EP_REC, EP_SIGNAL };

/* The first member of everything registered with epoll. */
struct ep_obj {
	enum ep_kind kind;
};

/* What identifies a connection in a packet, seen from the engine: for a
 * listener, rport 0 and raddr zero. Padding zeroed: it is a hash key. */
struct tuple_key {
	uint8_t family;
	uint8_t pad;
	uint16_t lport, rport;
	uint8_t raddr[16];
};

enum rec_kind {
	REC_NEW,        /* socket()ed, bound maybe; no data path */
	REC_CONNECTING, /* handshake running; we keep the program's end */
	REC_STREAM,     /* data flows both ways */
	REC_LISTENER,   /* token bytes flow to the program */
};

struct rec {
	struct ep_obj ep;
	uint32_t id;
	UT_hash_handle hh;
	struct utcp_sock *sk; /* NULL once the engine freed it */
	int family;
	enum rec_kind kind;
	int fd;               /* the daemon's end; -1 once closed */
	int connfd;           /* the program's end, kept while connecting,
			       * or not yet sent by its pushing listener */
	bool push;            /* listener: UTCP_LISTEN_PUSH (ipc.h) */
	bool unacked;         /* pushed, no UTCP_OP_ACCEPTED yet */
	uint32_t lsn_id;      /* ... by this listener */
	struct rec *stalled;  /* listener: the next one, its end full */
	int sndbuf_restore;   /* SO_SNDBUF for connfd at the outcome */
	size_t filler;        /* connect filler bytes still to discard */
	int err;              /* pending SO_ERROR (positive) */
	uint32_t tokens;      /* listener tokens owed to the program's end */
	pid_t pid;            /* owner, from SO_PEERCRED of the creator */
	char comm[16];
	uint32_t tag;         /* trace tag (ipc.h, "Tracing"), 0: none */
	struct tuple_key tkey; /* in d->by_tuple when tkeyed */
	bool tkeyed;
	UT_hash_handle th;

	/* Where the daemon's end stands. */
	bool rd_eof;          /* read EOF: the program shut down writing */
	bool eof_done;        /* ... and we acted on it */
	bool failed;          /* the engine reported an error */
	bool err_reported;    /* SO_ERROR was read since */
	bool wr_shut;         /* we shut down writing (FIN delivered) */
	bool prog_shut_rd;    /* the program shut down reading */
	bool paused;          /* no engine send space: not reading */
	bool tx_bulk;         /* last read filled a chunk: readv into the
			       * engine's send buffer (bridge.c) */
	bool out_blocked;     /* waiting for EPOLLOUT */
	bool connected_ev;    /* the engine said CONNECTED */
	bool engine_closed;   /* utcp_close/abort called */

	uint32_t ep_events;   /* what is registered */
	bool ep_registered;

	/* Engine → program bytes that did not fit in the socketpair. */
	uint8_t *rx_pend;
	size_t rx_len, rx_off;
	/* Program → engine bytes the engine did not take. */
	uint8_t *tx_pend;
	size_t tx_len, tx_off;

	struct utcp_addr local, remote; /* cached when the engine frees sk */
	utcp_time_t expires;            /* lingering: free at this time */

	bool on_dirty, lingering, dead;
	TAILQ_ENTRY(rec) dirty_link;
	TAILQ_ENTRY(rec) linger_link;
	TAILQ_ENTRY(rec) reap_link;
};
TAILQ_HEAD(rec_list, rec);

struct client {
	struct ep_obj ep;
	int fd;
	pid_t pid;
	uid_t uid;
	char comm[16];
	uint32_t tag;         /* HELLO arg[2]: stamped on its sockets */
	uint32_t lease_lo, lease_hi; /* ids leased (UTCP_OP_LEASE): [lo, hi) */
	bool trace;           /* an event stream (UTCP_OP_TRACE) */
	pid_t trace_pid;      /* filters, 0: all */
	uint32_t trace_tag;
	int trace_flags;      /* UTCP_TRACE_* */
	uint64_t lost;        /* messages this subscriber lost so far */
	bool dead;
	/* A consistent snapshot for UTCP_OP_LIST, taken at index 0. */
	struct utcp_ipc_conn *snap;
	size_t snap_n;
	TAILQ_ENTRY(client) link;
	TAILQ_ENTRY(client) dead_link;
};
TAILQ_HEAD(client_list, client);

struct daemon {
	const struct utcpd_opts *opt;
	struct utcp_stack *st;
	int ep, tun, ctl, sig;
	int spare_fd;     /* /dev/null, given up to refuse a client at EMFILE */
	struct ep_obj ep_tun, ep_ctl, ep_sig;
	utcp_time_t now;
	bool stopping;
	bool tearing_down; /* events only update records, nothing else */
	bool draining;     /* ctl.c: handling other clients' queued requests */
	pid_t pid;         /* ours, as our sockets' names carry it */

	uint32_t next_id;
	struct rec *recs; /* uthash by id */
	struct rec *by_tuple; /* uthash (th) by tkey: packets → sockets */
	struct rec_list dirty, linger, reap;
	struct client_list clients, dead_clients;
	unsigned ntrace;      /* trace subscribers */
	unsigned npkt;        /* packet observers: those of them with
			       * UTCP_TRACE_PACKETS, plus one for --pcap */
	struct pcapd *pcap;   /* --pcap (pcapd.c), NULL: off */
	struct utcpd_fault *fault; /* --fault (fault.c), NULL: off */

	uint64_t stats[DST_COUNT];

	uint8_t *iobuf;   /* the data path's one buffer */
	uint8_t *tunbuf;  /* one packet from the TUN */
	size_t tunbuf_len;
	uint8_t *capbuf;  /* an outgoing packet made whole for captures */
	char sock_path[108];
	bool sock_bound;
};

/* ---- loop.c ---- */
utcp_time_t loop_clock(void);
int loop_run(struct daemon *d);
/* Register, change or drop what epoll watches for fd (events 0 with
 * registered=false in/out state). Returns 0 or -errno. */
int ep_set(struct daemon *d, int fd, struct ep_obj *obj, uint32_t events,
	   uint32_t *cur, bool *registered);

/* ---- tun.c ---- */
int tun_open(const struct utcpd_opts *o, char *name_out);
int tun_configure(const struct utcpd_opts *o, const char *name, bool *v6_ok);
void tun_input(struct daemon *d);
void tun_output(void *ctx, const uint8_t *pkt, size_t len);
void tun_output_iov(void *ctx, const struct utcp_iov *iov, unsigned cnt,
		    size_t len);

/* ---- ctl.c ---- */
/* Create the directory, refuse a live daemon, clear a stale file. */
int ctl_check(const char *path);
int ctl_listen(struct daemon *d, const char *path);
void ctl_accept(struct daemon *d);
void ctl_client_io(struct daemon *d, struct client *c, uint32_t revents);
/* Mark a client for freeing at the end of the loop iteration. */
void ctl_client_kill(struct daemon *d, struct client *c);
void ctl_client_free(struct daemon *d, struct client *c);
void ctl_close_all(struct daemon *d);
/* Before sleeping `wait` µs (UTCP_TIME_NEVER: until an fd is ready). */
void ctl_trim_idle(struct daemon *d, utcp_time_t wait);

/* ---- events.c: the engine's events, logging and the trace streams ---- */
void events_cb(void *ctx, const struct utcp_event *ev);
/* A log line for a call the daemon served (never on trace streams: the
 * preload reports the program's calls itself, UTCP_OP_CALL). */
/* Is anyone reading events_call's lines? Callers that must format an
 * address first ask, so a quiet daemon formats nothing per connection. */
#define events_calls_on() ULOG_ON(ULOG_INFO)
void events_call(struct daemon *d, const struct rec *r, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void events_fmt_addr(const struct utcp_addr *a, char *buf, size_t len);
/* UTCP_OP_CALL from a (tagged) program. */
void events_program_call(struct daemon *d, const struct client *c,
			 const struct utcp_req *q);
/* UTCP_OP_TRACE_SYNC on a trace stream. */
void events_sync(struct daemon *d, struct client *c, uint32_t cookie);
/* A packet crossing the TUN (dir UTCP_PKT_IN/OUT), for pcap streams. */
void events_packet(struct daemon *d, const uint8_t *pkt, size_t len, int dir);

/* ---- pcapd.c: utcpd --pcap ---- */
#define UTCPD_PCAP_MAX (100ull << 20) /* default --pcap-max */
/* Open FILE, write the pcap header and count one packet observer.
 * 0 or -errno. */
int pcapd_open(struct daemon *d, const char *path, uint64_t max);
/* One packet crossing the TUN (events_packet calls it). Never blocks. */
void pcapd_packet(struct daemon *d, const uint8_t *pkt, size_t len, int dir);
void pcapd_close(struct daemon *d);

/* ---- fault.c: utcpd --fault, the seeded fault injector (fault.h) ---- */
#ifndef unlikely
#define unlikely(x) __builtin_expect(!!(x), 0)
#endif
/* Parse SPEC and start injecting. 0, or -errno (a bad SPEC said). */
int faultd_open(struct daemon *d, const char *spec);
void faultd_close(struct daemon *d);
/* tun.c, with d->fault set: a packet read from the TUN, for the engine. */
void faultd_input(struct daemon *d, const uint8_t *pkt, size_t len,
		  unsigned flags);
/* tun.c, with d->fault set: an engine packet. true: the injector took it;
 * false: write it now (it is one the injector let go). */
bool faultd_output(struct daemon *d, const struct utcp_iov *iov, unsigned cnt,
		   size_t len);
/* loop.c: release what is due at d->now; when that is next. */
void faultd_run(struct daemon *d);
utcp_time_t faultd_deadline(const struct daemon *d);

/* ---- bridge.c ---- */
struct rec *rec_new(struct daemon *d, struct utcp_sock *sk, int family,
		    const struct client *owner, int *prog_fd, int flags);
struct rec *rec_find(struct daemon *d, uint32_t id);
void rec_dirty(struct daemon *d, struct rec *r);
void rec_process_dirty(struct daemon *d);
void rec_io(struct daemon *d, struct rec *r, uint32_t revents);
/* to NULL: the address was bad, addr_err says why (the filler is still
 * discarded). Returns -EINPROGRESS, or -errno. */
int rec_connect(struct daemon *d, struct rec *r, const struct utcp_addr *to,
		int addr_err, int kept_fd, size_t filler, int sndbuf);
/* ... that nobody waits for (UTCP_CONNECT_NOREPLY): an immediate failure
 * is recorded and the program's end hung up, as after a refused SYN. */
void rec_connect_async(struct daemon *d, struct rec *r,
		       const struct utcp_addr *to, int addr_err, int kept_fd,
		       size_t filler, int sndbuf);
/* A socketpair end the preload made and named for id (UTCP_OP_ADOPT);
 * takes fd either way. NULL with errno set. */
struct rec *rec_adopt(struct daemon *d, struct utcp_sock *sk, int family,
		      const struct client *owner, int fd, uint32_t id);
/* Reserve n ids for a lease; the first. */
uint32_t rec_lease(struct daemon *d, uint32_t n);
int rec_disconnect(struct daemon *d, struct rec *r);
int rec_listen(struct daemon *d, struct rec *r, int backlog, bool push);
/* UTCP_OP_ACCEPTED: the program has the pushed socket r. */
void rec_accepted(struct daemon *d, struct rec *r);
int rec_shutdown(struct daemon *d, struct rec *r, int how);
void rec_expire(struct daemon *d);
utcp_time_t rec_next_expiry(const struct daemon *d);
void rec_reap(struct daemon *d);
void rec_teardown(struct daemon *d);
/* Packets and embryos → records (NULL if none). */
struct rec *rec_by_tuple(struct daemon *d, const struct tuple_key *k);
void rec_set_tuple(struct daemon *d, struct rec *r);
/* Engine callback helpers: called from events_cb. */
void rec_on_event(struct daemon *d, struct rec *r, const struct utcp_event *ev);
/* The engine's cfg.deliver (see utcp.h). */
size_t rec_deliver(void *ctx, struct utcp_sock *sk, const uint8_t *data,
		   size_t len);

/* ---- addresses (ctl.c) ---- */
int addr_from_sockaddr(const struct sockaddr_storage *ss, uint32_t len,
		       struct utcp_addr *a);
socklen_t addr_to_sockaddr(const struct utcp_addr *a, int family,
			   struct sockaddr_storage *ss);

#endif
