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

/* Listener-only state, allocated by listen(): most sockets never need it
 * (issue 7: ≤ 1 KiB of engine state per idle connection). */
struct utcp_lsn {
	UT_hash_handle hh; /* st->listeners by key; only a group's head */
	struct utcp_lkey key;
	struct utcp_sock *sock;
	struct utcp_lsn *rp_next; /* the SO_REUSEPORT group, after the head */
};

/*
 * Laid out by size (8, 4, 2, 1 bytes, then flag bits) so that it packs
 * without holes: 100,000 of these live in one daemon. Keep it that way
 * when adding a field, and keep test_engine_mem passing.
 */
struct utcp_sock {
	struct utcp_stack *st;
	/* The st->ctab chain by tuple; once released, st->reap's link
	 * (a released socket is never in ctab). */
	struct utcp_sock *hnext;
	LIST_ENTRY(utcp_sock) all; /* every live socket */
	void *user;
	struct utcp_lsn *lsn;      /* in st->listeners; NULL otherwise */

	/* Listener side. Ownership: the app holds a socket until
	 * utcp_close(); embryonic connections belong to their listener
	 * until accepted. */
	struct utcp_sock *parent;
	TAILQ_ENTRY(utcp_sock) qe;
	struct sockq synq, accq;

	/* Congestion control (RFC 5681, RFC 6582), SACK loss recovery
	 * (RFC 6675): what the peer SACKed. */
	const struct cc_algo *cc;
	struct ring snd; /* bytes from SND.UNA (the SYN is not in it) */
	struct ring rcv; /* unread in-order bytes, then out-of-order ones */
	struct reass ooo;
	struct reass sacked;

	/* Times (µs). */
	utcp_time_t t_deadline[TCPT_N]; /* timers */
	utcp_time_t t_earliest;
	utcp_time_t last_oow_ack; /* rate limit for invalid-segment ACKs */
	utcp_time_t ts_recent_age;
	utcp_time_t rtt_start;
	utcp_time_t rtx_start; /* first send of the oldest unacked data */
	utcp_time_t cc_epoch, last_send;
	uint64_t cc_k; /* µs */
	utcp_time_t last_rcv; /* any segment from the peer */
	utcp_time_t persist_start;
	utcp_time_t last_data_recv, last_ack_recv, last_data_sent;
	uint64_t bytes_sent, bytes_acked, bytes_received, bytes_retrans;

	uint32_t hashv; /* of tuple, for st->ctab */
	uint32_t heap_idx;
	int linger;

	/* Send sequence space (RFC 9293 3.3.1); SND.MAX is the highest
	 * sequence sent, SND.NXT steps back on retransmission. */
	uint32_t iss, snd_una, snd_nxt, snd_max, snd_wnd, snd_wl1, snd_wl2;
	uint32_t max_sndwnd;
	uint32_t mss; /* largest payload we send, before options */
	uint32_t sndbuf;

	/* Receive sequence space. */
	uint32_t irs, rcv_nxt, rcv_adv, last_ack_sent, rcv_wup;
	uint32_t ooo_fin_seq;
	uint32_t rcvbuf;
	uint32_t rcv_mss;     /* largest segment seen from the peer */
	uint32_t rcv_unacked; /* bytes since our last ACK */

	/* Timestamps (RFC 7323). */
	uint32_t ts_recent, ts_offset;

	/* RTT (RFC 6298), µs; srtt 0 = no sample yet. */
	uint32_t srtt, rttvar, rto;
	uint32_t rtt_seq;
	unsigned backoff; /* RTOs in a row */

	/* Congestion control; rtx_hi is the highest sequence retransmitted
	 * in this recovery (HighRxt). */
	uint32_t cwnd, ssthresh, recover, dupacks;
	uint32_t rtx_hi;
	uint32_t cc_wmax, cc_origin, cc_west, cc_cnt;

	/* Keepalive and timeouts. */
	unsigned user_timeout; /* ms, 0 = off */
	uint32_t probes;       /* keepalive or persist */

	/* Options stored for getsockopt() only (no engine effect yet). */
	int linger2, defer_accept, window_clamp, notsent_lowat;

	/* TCP_INFO and `utcp ss`. */
	uint32_t retransmits, total_retrans, segs_in, segs_out;
	uint32_t ooo_pkts;

	struct utcp_tuple tuple; /* 38 bytes */
	uint16_t peer_mss, user_mss;
	uint16_t ip_id;
	uint16_t keepidle, keepintvl; /* s (Linux: ≤ 32767) */
	uint16_t backlog;	      /* 0 … cfg.max_backlog (≤ 65534) */
	uint16_t synq_len, accq_len;  /* ≤ backlog + 1 */
	uint16_t acc_held;	      /* accepted, not yet by the application
				       * (utcp_listen_hold): still queued */
	int16_t so_error;	      /* pending, positive errno */
	uint8_t keepcnt;	      /* ≤ 127 */
	uint8_t syncnt;		      /* ≤ 127, 0 = the stack's */
	uint8_t family : 4;	      /* the socket's own: AF_INET(6) */
	enum utcp_state state : 4;
	uint8_t snd_wscale : 4, rcv_wscale : 4; /* ≤ 14 (RFC 7323 2.3) */
	uint8_t quickack;
	uint8_t tos;
	uint8_t persist_backoff; /* ≤ 16 */
	uint8_t soft_err; /* ICMP error on a synchronized connection (errno) */

	bool app_owned : 1, dead : 1, in_conns : 1;
	bool bound : 1, port_explicit : 1, passive : 1;
	bool on_synq : 1, on_accq : 1;
	bool shut_rd : 1, shut_wr : 1;	     /* by the application */
	bool fin_queued : 1, fin_rcvd : 1;   /* our FIN is due; theirs arrived */
	bool ooo_fin : 1;		     /* FIN seen past a gap, at ooo_fin_seq */
	bool nodelay : 1, cork : 1, more : 1, keepalive : 1, linger_on : 1;
	bool v6only : 1, reuseaddr : 1, reuseport : 1;
	bool ack_now : 1, wants_writable : 1, in_recovery : 1, rtt_timing : 1;
	bool ws_ok : 1, ts_ok : 1, sack_ok : 1;		 /* negotiated */
	bool want_ws : 1, want_ts : 1, want_sack : 1; /* what we offer */
	bool eof_reported : 1, fin_acked : 1;
	bool syn_acked : 1; /* our SYN is acknowledged */
	bool oow_acked : 1;
	bool sack_recovery : 1;
	bool tlp_armed : 1, tlp_sent : 1; /* RFC 8985 7: the REXMT timer is a
					    probe timeout; one went out */
	/* bind() named our address (in tuple.laddr; v4: an IPv4 one) */
	bool addr_bound : 1, addr_bound_v4 : 1;
	bool rp_bound : 1; /* counted in nreuseport */
};

/* Port use counts, in pages of 1024 ports allocated as ports are used. */
#define PORT_PAGE 1024
struct port_page {
	uint32_t used; /* ports of this page with nref > 0 */
	uint32_t nref[PORT_PAGE];      /* sockets using the port */
	uint32_t nexplicit[PORT_PAGE]; /* of those, bound by the application */
	uint32_t nreuseport[PORT_PAGE]; /* of those, with SO_REUSEPORT */
};

/* Buckets of destinations for connect()'s port search. */
#define PORT_BUCKETS 256

struct utcp_stack {
	struct utcp_config cfg;
	uint64_t stats[UTCP_NSTATS];
	struct utcp_sock **ctab; /* connections by tuple: chains */
	uint32_t ctab_mask;	 /* buckets - 1 (a power of two) */
	uint32_t nconns;
	uint8_t hkey[16];	 /* SipHash key for ctab, from isn_key */
	struct utcp_lsn *listeners; /* uthash by lkey */
	struct port_page *ports[65536 / PORT_PAGE];
	LIST_HEAD(, utcp_sock) socks;
	struct utcp_sock *reap; /* released, freed at the end of the call */
	unsigned nsocks;
	struct utcp_sock **heap; /* by t_earliest */
	uint32_t heap_len, heap_cap;
	uint64_t prng;
	/* RFC 6056 algorithm 4: where connect() resumes its port search,
	 * per bucket of destinations (tcp_usr.c, pick_port). */
	uint32_t port_next[PORT_BUCKETS];
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
/* Every application bind of the port had SO_REUSEPORT (and there is one) */
bool port_reuseport_only(struct utcp_stack *st, uint16_t port);
void port_reuseport(struct utcp_stack *st, uint16_t port, int delta);
/* The listener of a SO_REUSEPORT group that takes this connection */
struct utcp_sock *listen_select(struct utcp_stack *st,
				const struct utcp_tuple *t);
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

/* icmp.c */
void icmp_input(struct utcp_stack *st, const struct wire_ip *ip,
		utcp_time_t now);
void tcp_send_loss_probe(struct utcp_sock *s, utcp_time_t now);
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
