/*
 * internal.h — the engine's own view of stacks and sockets. Not for users
 * of the library: they see only utcp.h.
 */
#ifndef UTCP_INTERNAL_H
#define UTCP_INTERNAL_H

#include "reass.h"
#include "ring.h"
#include "tcp_seq.h"
#include "utcp.h"
#include "wire.h"

#include <bsd/sys/queue.h>
/* uthash must never exit() on out-of-memory: the engine reports it instead.
 * HASH_ADD leaves the element out and calls uthash_nonfatal_oom, which sets
 * the caller's `hash_oom` flag (every HASH_ADD site declares one). */
#define HASH_NONFATAL_OOM 1
#define uthash_nonfatal_oom(obj) (hash_oom = 1)
#include <uthash.h>

/* Per-connection timers, kept as deadlines (UTCP_TIME_NEVER = off). */
enum tcpt {
	TCPT_REXMT,   /* retransmission, also SYN and SYN|ACK */
	TCPT_PERSIST, /* zero-window probes */
	TCPT_KEEP,    /* keepalive */
	TCPT_DELACK,  /* delayed ACK */
	TCPT_2MSL,    /* TIME-WAIT, or an orphaned FIN-WAIT-2 */
	TCPT_N
};

#define UTCP_MSS_DEFAULT 536 /* RFC 9293 3.7.1: no MSS option seen */
#define UTCP_MIN_MSS 88	     /* Linux's floor for TCP_MAXSEG */
#define TCP_MAX_QUICKACKS 16 /* Linux: ACK at once early on */
#define TCP_INIT_CWND 10     /* RFC 6928 */
#define TCP_MAX_OOO_BLOCKS 1024
#define TCP_RCV_SLACK 65536u /* ring room past rcvbuf after SO_RCVBUF shrinks  \
			      */
#define TCP_PAWS_24DAYS UTCP_SEC(24u * 24 * 3600)
#define TCP_TTL 64
#define TCP_OOW_RATELIMIT UTCP_MS(500) /* Linux tcp_invalid_ratelimit */

/* The demux key: zeroed then filled, compared as bytes. */
struct utcp_tuple {
	uint8_t family; /* on the wire: AF_INET or AF_INET6 */
	uint8_t pad;
	uint16_t lport, rport;
	uint8_t laddr[16], raddr[16];
};

/* Listeners by (family, port). */
struct utcp_lkey {
	uint16_t port;
	uint8_t family;
	uint8_t pad;
};

struct cc_algo {
	const char *name;
	void (*init)(struct utcp_sock *s);
	/* New data acked outside recovery. */
	void (*on_ack)(struct utcp_sock *s, uint32_t acked, utcp_time_t now);
	/* Loss detected (fast retransmit or RTO): return ssthresh. */
	uint32_t (*ssthresh)(struct utcp_sock *s, utcp_time_t now);
};
extern const struct cc_algo cc_reno, cc_cubic;
const struct cc_algo *cc_find(const char *name);

TAILQ_HEAD(sockq, utcp_sock);

struct utcp_sock {
	struct utcp_stack *st;
	LIST_ENTRY(utcp_sock) all; /* every socket, for utcp_foreach */
	LIST_ENTRY(utcp_sock) reap;
	UT_hash_handle hh; /* st->conns by tuple */
	UT_hash_handle hl; /* st->listeners by lkey */
	struct utcp_tuple tuple;
	struct utcp_lkey lkey;
	uint8_t family; /* the socket's own family */
	enum utcp_state state;
	void *user;

	/* Ownership: the app holds it until utcp_close(); embryonic
	 * connections belong to their listener until accepted. */
	bool app_owned, dead, in_conns, in_listeners;
	bool bound, port_explicit, passive;
	bool shut_rd, shut_wr;	   /* by the application */
	bool fin_queued, fin_rcvd; /* our FIN is due; theirs arrived */
	bool ooo_fin;		   /* FIN seen past a gap, at ooo_fin_seq */
	bool nodelay, cork, more, keepalive, linger_on, v6only, reuseaddr;
	bool ack_now, wants_writable, in_recovery, rtt_timing;
	bool ws_ok, ts_ok, sack_ok;	  /* negotiated */
	bool want_ws, want_ts, want_sack; /* what we offer */
	bool eof_reported, fin_acked;
	bool syn_acked; /* our SYN is acknowledged */
	bool oow_acked;
	utcp_time_t last_oow_ack; /* rate limit for invalid-segment ACKs */
	int linger;
	int so_error; /* pending, positive errno */

	/* Listener side. */
	struct utcp_sock *parent;
	TAILQ_ENTRY(utcp_sock) qe;
	struct sockq synq, accq;
	unsigned synq_len, accq_len;
	bool on_synq, on_accq;
	int backlog;

	/* Send sequence space (RFC 9293 3.3.1); SND.MAX is the highest
	 * sequence sent, SND.NXT steps back on retransmission. */
	uint32_t iss, snd_una, snd_nxt, snd_max, snd_wnd, snd_wl1, snd_wl2;
	uint32_t max_sndwnd;
	uint8_t snd_wscale, rcv_wscale;
	uint16_t peer_mss, user_mss;
	uint32_t mss;	 /* largest payload we send, before options */
	struct ring snd; /* bytes from SND.UNA (the SYN is not in it) */
	uint32_t sndbuf;

	/* Receive sequence space. */
	uint32_t irs, rcv_nxt, rcv_adv, last_ack_sent, rcv_wup;
	uint32_t ooo_fin_seq;
	struct ring rcv; /* unread in-order bytes, then out-of-order ones */
	struct reass ooo;
	uint32_t rcvbuf;
	uint32_t rcv_mss;     /* largest segment seen from the peer */
	uint32_t rcv_unacked; /* bytes since our last ACK */
	uint8_t quickack;

	/* Timestamps (RFC 7323). */
	uint32_t ts_recent, ts_offset;
	utcp_time_t ts_recent_age;

	/* RTT (RFC 6298), µs; srtt 0 = no sample yet. */
	uint32_t srtt, rttvar, rto;
	uint32_t rtt_seq;
	utcp_time_t rtt_start;
	unsigned backoff;      /* RTOs in a row */
	utcp_time_t rtx_start; /* first send of the oldest unacked data */

	/* Congestion control (RFC 5681, RFC 6582), SACK loss recovery
	 * (RFC 6675): what the peer SACKed, and the highest sequence
	 * retransmitted in this recovery (HighRxt). */
	const struct cc_algo *cc;
	uint32_t cwnd, ssthresh, recover, dupacks;
	struct reass sacked;
	uint32_t rtx_hi;
	bool sack_recovery;
	uint32_t cc_wmax, cc_origin, cc_west, cc_cnt;
	utcp_time_t cc_epoch, last_send;
	uint64_t cc_k; /* µs */

	/* Timers. */
	utcp_time_t t_deadline[TCPT_N];
	utcp_time_t t_earliest;
	uint32_t heap_idx;

	/* Keepalive and timeouts. */
	unsigned keepidle, keepintvl, keepcnt; /* s, s, count */
	unsigned user_timeout;		       /* ms, 0 = off */
	uint32_t probes;		       /* keepalive or persist */
	unsigned persist_backoff;
	utcp_time_t last_rcv; /* any segment from the peer */
	utcp_time_t persist_start;

	/* Options stored for getsockopt() only (no engine effect yet). */
	bool reuseport;
	int syncnt, linger2, defer_accept, window_clamp, notsent_lowat;

	/* TCP_INFO and `utcp ss`. */
	uint8_t tos;
	uint16_t ip_id;
	uint32_t retransmits, total_retrans, segs_in, segs_out;
	uint32_t ooo_pkts;
	uint64_t bytes_sent, bytes_acked, bytes_received, bytes_retrans;
	utcp_time_t last_data_recv, last_ack_recv, last_data_sent;
};

struct port_ent {
	uint16_t port;
	unsigned nref;	    /* sockets using the port */
	unsigned nexplicit; /* of those, bound by the application */
	UT_hash_handle hh;
};

struct utcp_stack {
	struct utcp_config cfg;
	uint64_t stats[UTCP_NSTATS];
	struct utcp_sock *conns;     /* uthash by tuple */
	struct utcp_sock *listeners; /* uthash by lkey */
	struct port_ent *ports;
	LIST_HEAD(, utcp_sock) socks;
	LIST_HEAD(, utcp_sock) reaplist;
	unsigned nsocks;
	struct utcp_sock **heap; /* by t_earliest */
	uint32_t heap_len, heap_cap;
	uint64_t prng;
	utcp_time_t now; /* the latest time any call brought (no clock) */
	uint8_t *pkt;	 /* one outgoing packet */
	size_t pkt_cap;
};

/* stack.c */
static inline void
stack_time(struct utcp_stack *st, utcp_time_t now)
{
	if (now > st->now)
		st->now = now;
}
void stat_inc(struct utcp_stack *st, enum utcp_stat stat);
void ev_emit(struct utcp_sock *s, enum utcp_event_type type, const char *cause,
	     utcp_time_t now);
void ev_emit_full(struct utcp_stack *st, const struct utcp_event *ev);
void drop_pkt(struct utcp_stack *st, struct utcp_sock *s, int stat,
	      utcp_time_t now);
uint64_t prng_next(struct utcp_stack *st);
struct utcp_sock *sock_alloc(struct utcp_stack *st, int family);
void sock_release(struct utcp_sock *s); /* free at the end of the call */
void stack_reap(struct utcp_stack *st);
int conn_hash(struct utcp_sock *s);
void conn_unhash(struct utcp_sock *s);
struct utcp_sock *conn_lookup(struct utcp_stack *st,
			      const struct utcp_tuple *t);
int listen_hash(struct utcp_sock *s);
void listen_unhash(struct utcp_sock *s);
struct utcp_sock *listen_lookup(struct utcp_stack *st, uint8_t family,
				uint16_t port);
int port_ref(struct utcp_stack *st, uint16_t port, bool explicit_bind);
void port_unref(struct utcp_stack *st, uint16_t port, bool explicit_bind);
bool port_busy(struct utcp_stack *st, uint16_t port, bool explicit_only);
const struct utcp_addr *local_addr(struct utcp_stack *st, uint8_t family);

/* isn.c */
uint64_t siphash24(const uint8_t key[16], const void *data, size_t len);
uint32_t isn_make(struct utcp_stack *st, const struct utcp_tuple *t,
		  utcp_time_t now);
uint32_t ts_offset_make(struct utcp_stack *st, const struct utcp_tuple *t);

/* tcp_fsm.c */
void tcp_set_state(struct utcp_sock *s, enum utcp_state ns, const char *cause,
		   utcp_time_t now);
void tcp_drop(struct utcp_sock *s, int err, const char *cause, utcp_time_t now);
void tcp_closed(struct utcp_sock *s, utcp_time_t now);
void tcp_enter_time_wait(struct utcp_sock *s, const char *cause,
			 utcp_time_t now);
void tcp_established(struct utcp_sock *s, const char *cause, utcp_time_t now);
void tcp_maybe_free(struct utcp_sock *s);
void tcp_listen_close(struct utcp_sock *l, utcp_time_t now);
void tcp_rcv_avail_event(struct utcp_sock *s, utcp_time_t now);

/* tcp_input.c */
void tcp_input(struct utcp_stack *st, const struct wire_ip *ip,
	       const struct wire_tcp *seg, utcp_time_t now);

/* tcp_output.c */
uint32_t tcp_now_ts(const struct utcp_sock *s, utcp_time_t now);
int tcp_output(struct utcp_sock *s, utcp_time_t now);
int tcp_output_force(struct utcp_sock *s, utcp_time_t now);
void tcp_retransmit_una(struct utcp_sock *s, utcp_time_t now);
void tcp_send_ack(struct utcp_sock *s, utcp_time_t now);
void tcp_send_rst(struct utcp_sock *s, const char *cause, utcp_time_t now);
void tcp_send_probe(struct utcp_sock *s, utcp_time_t now);
void tcp_respond_rst(struct utcp_stack *st, const struct wire_ip *ip,
		     const struct wire_tcp *seg, const char *cause,
		     struct utcp_sock *s, utcp_time_t now);
uint32_t tcp_rcv_window(struct utcp_sock *s);
uint32_t tcp_flight(const struct utcp_sock *s);
uint32_t tcp_seg_opts_len(const struct utcp_sock *s);
void tcp_set_mss(struct utcp_sock *s);
uint16_t tcp_adv_mss(const struct utcp_sock *s);
uint8_t tcp_pick_wscale(uint32_t rcvbuf);
void tcp_maybe_window_update(struct utcp_sock *s, utcp_time_t now);

/* tcp_sack.c */
void sack_update(struct utcp_sock *s, const struct wire_tcp *seg);
void sack_prune(struct utcp_sock *s);
void sack_clear(struct utcp_sock *s);
uint32_t sack_bytes(const struct utcp_sock *s);
uint32_t sack_hi(const struct utcp_sock *s);
uint32_t sack_pipe(const struct utcp_sock *s);
bool sack_next_hole(const struct utcp_sock *s, uint32_t from, uint32_t *seq,
		    uint32_t *len);
bool sack_covered(const struct utcp_sock *s, uint32_t seq, uint32_t *end);
uint32_t sack_next_start(const struct utcp_sock *s, uint32_t seq);

/* tcp_timer.c */
void timer_set(struct utcp_sock *s, enum tcpt t, utcp_time_t when);
void timer_cancel(struct utcp_sock *s, enum tcpt t);
void timer_cancel_all(struct utcp_sock *s);
static inline bool
timer_on(const struct utcp_sock *s, enum tcpt t)
{
	return s->t_deadline[t] != UTCP_TIME_NEVER;
}
void tcp_rearm_rexmt(struct utcp_sock *s, utcp_time_t now);
utcp_time_t tcp_rto_backed_off(const struct utcp_sock *s);
void tcp_keep_reset(struct utcp_sock *s, utcp_time_t now);
void heap_remove(struct utcp_stack *st, struct utcp_sock *s);
void tcp_rtt_sample(struct utcp_sock *s, utcp_time_t rtt);

#endif
