/*
 * utcp.h — the public API of the utcp TCP/IP engine core.
 *
 * The engine is a pure library: no syscalls, no clock, no globals, no
 * threads. The caller owns the clock (every entry point that can make
 * progress takes `now`), feeds it IP packets with utcp_input(), calls
 * utcp_poll() at or after the deadline it returned, and receives packets
 * through cfg.output. All memory is reached from a struct utcp_stack, so two
 * stacks in one process never share state.
 *
 * Return convention: functions that can fail return 0 (or a count) on
 * success and a negative errno (-EAGAIN, -ECONNRESET …) on failure.
 *
 * Re-entrancy: cfg.output and cfg.event are called synchronously from inside
 * engine calls. They must not call back into the engine, except the plain
 * accessors marked "safe from callbacks" below. A caller that wants to move
 * data in reaction to an event records the socket and acts once the engine
 * call has returned.
 */
#ifndef UTCP_H
#define UTCP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Microseconds on the caller's monotonic clock. */
typedef uint64_t utcp_time_t;
#define UTCP_TIME_NEVER UINT64_MAX
#define UTCP_MS(x) ((utcp_time_t)(x) * 1000u)
#define UTCP_SEC(x) ((utcp_time_t)(x) * 1000000u)

/* An endpoint. `family` is AF_INET or AF_INET6; an IPv4 address sits in
 * ip[0..3], network byte order. The port is in host byte order. */
struct utcp_addr {
	uint8_t family;
	uint16_t port;
	uint8_t ip[16];
};

/* RFC 9293 states. ATTENTION: code depends on this ordering — every state at
 * or after ESTABLISHED has completed the handshake (UTCP_HAVEESTABLISHED). */
enum utcp_state {
	UTCP_CLOSED = 0,
	UTCP_LISTEN,
	UTCP_SYN_SENT,
	UTCP_SYN_RECEIVED,
	UTCP_ESTABLISHED,
	UTCP_CLOSE_WAIT,
	UTCP_FIN_WAIT_1,
	UTCP_CLOSING,
	UTCP_LAST_ACK,
	UTCP_FIN_WAIT_2,
	UTCP_TIME_WAIT,
	UTCP_NSTATES
};
#define UTCP_HAVEESTABLISHED(s) ((s) >= UTCP_ESTABLISHED)
/* "SYN-SENT", "TIME-WAIT" … (RFC 9293 spelling). Safe from callbacks. */
const char *utcp_state_name(int state);

/* Named counters. Every drop has one. X-macro: NAME, "description". */
#define UTCP_STATS(X)                                                        \
	X(ip_in, "IP packets received")                                      \
	X(ip_out, "IP packets sent")                                         \
	X(drop_ip_short, "dropped: IP packet shorter than its header")       \
	X(drop_ip_version, "dropped: not IPv4/IPv6")                         \
	X(drop_ip_bad_header, "dropped: bad IP header length or total")      \
	X(drop_ip_bad_checksum, "dropped: bad IPv4 header checksum")         \
	X(drop_ip_fragment, "dropped: IP fragment (not reassembled)")        \
	X(drop_ip_not_ours, "dropped: destination is not the engine")        \
	X(drop_ip_proto, "dropped: neither TCP nor ICMP")                    \
	X(drop_icmp_bad, "dropped: malformed ICMP, or not about our TCP")    \
	X(drop_icmp_ignored, "dropped: ICMP type we do not act on")          \
	X(drop_icmp_no_conn, "dropped: ICMP error for no connection")        \
	X(drop_icmp_seq, "dropped: ICMP error quoting a seq not in flight")  \
	X(drop_tcp_short, "dropped: TCP header truncated")                   \
	X(drop_tcp_bad_offset, "dropped: bad TCP data offset")               \
	X(drop_tcp_bad_checksum, "dropped: bad TCP checksum")                \
	X(drop_tcp_bad_options, "dropped: malformed TCP options")            \
	X(drop_tcp_bad_flags, "dropped: impossible flag combination")        \
	X(drop_no_socket, "dropped: no socket (RST sent)")                   \
	X(drop_out_of_window, "dropped: segment outside receive window")     \
	X(drop_bad_ack, "dropped: unacceptable ACK")                         \
	X(drop_rst_out_of_window, "dropped: RST outside window")             \
	X(drop_listen_overflow, "dropped: SYN with full listen queue")       \
	X(drop_paws, "dropped: PAWS (old timestamp)")                        \
	X(drop_rcvbuf_full, "dropped: no receive buffer space")              \
	X(drop_nomem, "dropped: out of memory")                              \
	X(drop_ip_bad_src, "dropped: bad source address")                    \
	X(drop_tcp_bad_port, "dropped: TCP port 0")                          \
	X(drop_tcp_no_ack, "dropped: no ACK in a synchronized state")        \
	X(drop_ooo_limit, "dropped: too many out-of-order ranges")           \
	X(drop_data_after_close, "dropped: data after close (RST sent)")     \
	X(drop_listen_no_syn, "dropped: listener got neither SYN nor ACK")   \
	X(icmp_in, "ICMP and ICMPv6 messages received")                     \
	X(icmp_conn_aborted, "handshakes ended by an ICMP error")            \
	X(icmp_soft_error, "ICMP errors kept as soft errors")               \
	X(tcp_in, "TCP segments received")                                   \
	X(tcp_out, "TCP segments sent")                                      \
	X(tcp_retransmit, "segments retransmitted")                          \
	X(tcp_fast_retransmit, "fast retransmits")                           \
	X(tcp_rto_expired, "retransmission timeouts")                        \
	X(tcp_loss_probe, "tail loss probes sent (RFC 8985)")               \
	X(tcp_rst_sent, "RSTs sent")                                         \
	X(tcp_rst_rcvd, "RSTs received")                                     \
	X(tcp_challenge_ack, "challenge ACKs sent (RFC 5961)")               \
	X(tcp_ack_ratelimited, "ACKs to invalid segments held back (500 ms)") \
	X(tcp_ooo_queued, "out-of-order segments queued")                    \
	X(tcp_keepalive_probe, "keepalive probes sent")                      \
	X(tcp_keepalive_timeout, "connections dropped by keepalive")         \
	X(tcp_user_timeout, "connections dropped by TCP_USER_TIMEOUT")       \
	X(tcp_retrans_timeout, "connections dropped by retry limit")         \
	X(tcp_zero_window_probe, "zero-window probes sent")                  \
	X(tcp_active_open, "active opens")                                   \
	X(tcp_passive_open, "passive opens")                                 \
	X(tcp_conn_established, "connections established")

enum utcp_stat {
#define UTCP_STAT_ENUM(name, desc) UTCP_STAT_##name,
	UTCP_STATS(UTCP_STAT_ENUM)
#undef UTCP_STAT_ENUM
	UTCP_NSTATS
};
/* The name ("drop_tcp_bad_checksum") and description of a counter. */
const char *utcp_stat_name(int stat);
const char *utcp_stat_desc(int stat);

struct utcp_stack;
struct utcp_sock;

/* Events, reported synchronously through cfg.event. */
enum utcp_event_type {
	UTCP_EV_STATE,       /* old_state → new_state, cause says why */
	UTCP_EV_CONNECTED,   /* active open completed */
	UTCP_EV_READABLE,    /* data, FIN or an error for the reader */
	UTCP_EV_WRITABLE,    /* send buffer space became available */
	UTCP_EV_ACCEPTABLE,  /* listener: one more connection to accept */
	UTCP_EV_ERROR,       /* connection failed or aborted; err = errno */
	UTCP_EV_FREED,       /* the engine is about to free sock; forget it */
	UTCP_EV_RETRANSMIT,  /* seq = first byte retransmitted */
	UTCP_EV_KEEPALIVE,   /* a keepalive probe was sent; arg = probe count */
	UTCP_EV_RST_SENT,    /* cause = reason */
	UTCP_EV_RST_RCVD,
	UTCP_EV_ZERO_WINDOW, /* a zero-window probe was sent */
	UTCP_EV_DROP,        /* a packet was dropped; arg = enum utcp_stat */
};

struct utcp_event {
	enum utcp_event_type type;
	struct utcp_sock *sock; /* NULL for drops with no socket */
	int old_state, new_state;
	int err;
	uint32_t arg;
	uint32_t seq;
	const char *cause; /* static string: "rcvd SYN|ACK", "close()" … */
	utcp_time_t now;
};

/* A piece of an outgoing packet (cfg.output_iov). */
struct utcp_iov {
	const uint8_t *base;
	size_t len;
};

struct utcp_config {
	/* Engine addresses. family 0 = that family is not configured. */
	struct utcp_addr local4;
	struct utcp_addr local6;
	uint32_t mtu;                   /* link MTU; MSS = mtu - 40 (v4) */
	uint8_t isn_key[16];            /* RFC 6528 secret */
	uint64_t seed;                  /* ephemeral ports and other choices */
	uint32_t sndbuf, rcvbuf;        /* default buffer sizes (bytes) */
	utcp_time_t rto_initial, rto_min, rto_max;
	utcp_time_t delack;             /* delayed-ACK bound */
	utcp_time_t time_wait;          /* 2MSL; Linux: 60 s */
	utcp_time_t fin_timeout;        /* orphaned FIN-WAIT-2; Linux: 60 s */
	unsigned syn_retries;           /* Linux tcp_syn_retries: 6 */
	unsigned synack_retries;        /* Linux: 5 */
	unsigned retries2;              /* Linux tcp_retries2: 15 */
	unsigned keepidle, keepintvl, keepcnt; /* seconds, seconds, count */
	unsigned max_backlog;           /* cap on listen() backlog */
	uint16_t port_lo, port_hi;      /* ephemeral range */
	void *ctx;
	/* A finished IPv4/IPv6 packet, checksums filled in. */
	void (*output)(void *ctx, const uint8_t *pkt, size_t len);
	/* May be NULL. */
	void (*event)(void *ctx, const struct utcp_event *ev);
	/* Optional, used instead of output when set: the packet in pieces
	 * (headers first, then the payload straight from the send buffer,
	 * no copy); `len` is their sum. Valid only during the call. */
	void (*output_iov)(void *ctx, const struct utcp_iov *iov, unsigned n,
			   size_t len);
	/* UTCP_OFFLOAD_*: work the link does for the engine. */
	unsigned offload;
	/* Optional: in-order data for a socket with nothing unread, offered
	 * straight from the arriving packet before it is buffered. Returns
	 * how many of the len bytes the application took (0 to len); the
	 * rest is buffered as usual. Bytes taken count as read: they never
	 * occupy the receive buffer. Must not call into the engine. */
	size_t (*deliver)(void *ctx, struct utcp_sock *s, const uint8_t *data,
			  size_t len);
};

/* With output_iov set: TCP checksums of every outgoing packet are left
 * partial: the field holds the folded pseudo-header sum (not complemented)
 * and the link completes it over the TCP header and payload, as
 * virtio-net's NEEDS_CSUM with csum_start = the IP header length and
 * csum_offset = 16. */
#define UTCP_OFFLOAD_TX_CSUM 0x1

/* Linux-like defaults; addresses, key, seed and callbacks left zero. */
void utcp_config_defaults(struct utcp_config *cfg);

struct utcp_stack *utcp_stack_new(const struct utcp_config *cfg);
/* Frees every socket without sending anything. */
void utcp_stack_free(struct utcp_stack *st);

/* One IP packet from the link (no link header). Never fails: a bad packet
 * is counted and dropped. */
void utcp_input(struct utcp_stack *st, const uint8_t *pkt, size_t len,
		utcp_time_t now);
/* The same, with UTCP_IN_* flags from the link. */
#define UTCP_IN_CSUM_OK 0x1 /* the TCP checksum is vouched for (verified,
			     * or never computed on a trusted local path) */
void utcp_input_flags(struct utcp_stack *st, const uint8_t *pkt, size_t len,
		      unsigned flags, utcp_time_t now);
/* Fire every timer due at `now`; return the next deadline or
 * UTCP_TIME_NEVER. Cheap to call early. */
utcp_time_t utcp_poll(struct utcp_stack *st, utcp_time_t now);
/* The next deadline without doing anything. */
utcp_time_t utcp_next_deadline(const struct utcp_stack *st);

const uint64_t *utcp_stats(const struct utcp_stack *st); /* [UTCP_NSTATS] */
/* Sockets currently allocated (the leak check). */
unsigned utcp_sock_count(const struct utcp_stack *st);
/* Visit every socket (for `utcp ss`). */
void utcp_foreach(struct utcp_stack *st,
		  void (*fn)(void *arg, struct utcp_sock *s), void *arg);

/* ---- sockets ---- */

struct utcp_sock *utcp_socket(struct utcp_stack *st, int family); /* NULL: ENOMEM */
int utcp_bind(struct utcp_sock *s, const struct utcp_addr *local);
int utcp_listen(struct utcp_sock *s, int backlog);
/* 0: SYN sent, completion comes as UTCP_EV_CONNECTED or UTCP_EV_ERROR.
 * -EISCONN, -EALREADY, -EADDRNOTAVAIL, -ENETUNREACH … otherwise. */
int utcp_connect(struct utcp_sock *s, const struct utcp_addr *remote,
		 utcp_time_t now);
/* The next established connection, or NULL (with *err = -EAGAIN, or the
 * listener's error). */
struct utcp_sock *utcp_accept(struct utcp_sock *listener, int *err);
/* Connections taken with utcp_accept that the application has not
 * accepted yet (the daemon hands them over in flight) still count
 * against the listener's backlog: +1 when taken, -1 when the application
 * has it or it is gone. */
void utcp_listen_hold(struct utcp_sock *listener, int delta);

#define UTCP_MSG_MORE 0x1  /* like MSG_MORE: more data follows soon */
#define UTCP_MSG_PEEK 0x2
/* Bytes queued (short when the buffer fills), or -EAGAIN (no space),
 * -EPIPE (after shutdown(SHUT_WR)/close), -ENOTCONN, or the pending error. */
ssize_t utcp_send(struct utcp_sock *s, const void *buf, size_t len, int flags,
		  utcp_time_t now);
/* Bytes read, 0 at end of stream (FIN), -EAGAIN, or the pending error
 * (-ECONNRESET, -ETIMEDOUT …, reported once). Reading opens the window. */
ssize_t utcp_recv(struct utcp_sock *s, void *buf, size_t len, int flags,
		  utcp_time_t now);
/* Receiving without a copy: the unread in-order bytes where they lie in
 * the receive buffer, in at most two pieces; returns their total (0: none,
 * then utcp_recv says why: EOF, error or -EAGAIN). The pieces stay valid
 * until the next engine call. utcp_recv_consume(n ≤ that total) then does
 * what a utcp_recv of n bytes would, the window update included. */
size_t utcp_recv_peek(const struct utcp_sock *s, struct utcp_iov iov[2]);
void utcp_recv_consume(struct utcp_sock *s, size_t n, utcp_time_t now);
/* Sending without a copy: room for up to `want` bytes at the end of the
 * send buffer, in at most two pieces to fill in place (writable, for all
 * utcp_iov's const), e.g. with readv; returns their total. 0 when
 * utcp_send must be used instead (no space, shut down, not connected, an
 * error pending), which says why. utcp_send_commit(n ≤ that total), with
 * no engine call in between, then queues the first n bytes as utcp_send
 * would; n = 0 gives the room back. */
size_t utcp_send_reserve(struct utcp_sock *s, size_t want,
			 struct utcp_iov iov[2]);
void utcp_send_commit(struct utcp_sock *s, size_t n, int flags,
		      utcp_time_t now);
size_t utcp_send_space(const struct utcp_sock *s); /* safe from callbacks */
size_t utcp_recv_avail(const struct utcp_sock *s); /* safe from callbacks */
/* SHUT_RD / SHUT_WR / SHUT_RDWR from <sys/socket.h>. */
int utcp_shutdown(struct utcp_sock *s, int how, utcp_time_t now);
/* The application is gone. Graceful (FIN after queued data) unless unread
 * data remains or SO_LINGER is {1, 0}: then RST. The engine keeps the socket
 * through FIN-WAIT/TIME-WAIT and reports UTCP_EV_FREED when it frees it. */
void utcp_close(struct utcp_sock *s, utcp_time_t now);
/* Send RST (when synchronized) and move to CLOSED at once. */
void utcp_abort(struct utcp_sock *s, utcp_time_t now);

/* Linux levels and names (SOL_SOCKET/SO_*, IPPROTO_TCP/TCP_*), Linux
 * semantics and ranges: -EINVAL, -ENOPROTOOPT. */
int utcp_setsockopt(struct utcp_sock *s, int level, int name, const void *val,
		    size_t len, utcp_time_t now);
int utcp_getsockopt(struct utcp_sock *s, int level, int name, void *val,
		    size_t *len);

/* Accessors, safe from callbacks. */
enum utcp_state utcp_sock_state(const struct utcp_sock *s);
int utcp_sock_error(struct utcp_sock *s, bool clear); /* SO_ERROR, positive */
void utcp_sock_names(const struct utcp_sock *s, struct utcp_addr *local,
		     struct utcp_addr *remote);
void utcp_sock_set_user(struct utcp_sock *s, void *user);
void *utcp_sock_user(const struct utcp_sock *s);
bool utcp_sock_eof(const struct utcp_sock *s); /* FIN received, all read */

/* What `utcp ss -i` and TCP_INFO show. Times in microseconds. */
enum utcp_timer_kind { UTCP_TIMER_NONE, UTCP_TIMER_RETRANS, UTCP_TIMER_PERSIST,
		       UTCP_TIMER_KEEPALIVE, UTCP_TIMER_TIMEWAIT,
		       UTCP_TIMER_FINWAIT2, UTCP_TIMER_DELACK };
struct utcp_info {
	enum utcp_state state;
	uint32_t mss_snd, mss_rcv;
	uint8_t wscale_snd, wscale_rcv;
	bool ts_ok, sack_ok;
	uint32_t rtt, rttvar, rto;     /* µs */
	uint32_t cwnd, ssthresh;       /* bytes */
	uint32_t snd_wnd, rcv_wnd;
	uint32_t unacked, retransmits, total_retrans, backoff;
	uint64_t bytes_sent, bytes_acked, bytes_received;
	uint32_t segs_in, segs_out;
	uint32_t recv_q, send_q;      /* unread; unacked + unsent */
	enum utcp_timer_kind timer;
	utcp_time_t timer_expires;    /* absolute */
	uint32_t probes;              /* keepalive/zero-window probes so far */
	utcp_time_t last_data_recv, last_ack_recv, last_data_sent;
};
void utcp_sock_info(const struct utcp_sock *s, struct utcp_info *info, utcp_time_t now);

#endif
