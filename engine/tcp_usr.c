/*
 * tcp_usr.c — the user calls of RFC 9293 3.10.1–3.10.6 (OPEN, SEND,
 * RECEIVE, CLOSE, ABORT) in socket shape, and the socket accessors.
 */
#include "internal.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

static const uint8_t v4mapped_prefix[12] = {0, 0, 0, 0, 0,    0,
					    0, 0, 0, 0, 0xff, 0xff};

static bool
all_zero(const uint8_t *p, size_t n)
{
	while (n-- > 0)
		if (*p++ != 0)
			return false;
	return true;
}

struct utcp_sock *
utcp_socket(struct utcp_stack *st, int family)
{
	struct utcp_sock *s;

	if (family != AF_INET && family != AF_INET6)
		return NULL;
	s = sock_alloc(st, family);
	return s;
}

/* The address a socket of s->family gives for a wire address. */
static void
export_addr(const struct utcp_sock *s, uint8_t wire_family, const uint8_t *ip,
	    uint16_t port, struct utcp_addr *a)
{
	memset(a, 0, sizeof(*a));
	a->family = s->family;
	a->port = port;
	if (s->family == AF_INET6 && wire_family == AF_INET) {
		memcpy(a->ip, v4mapped_prefix, 12);
		memcpy(a->ip + 12, ip, 4);
	} else if (wire_family != 0) {
		memcpy(a->ip, ip, wire_family == AF_INET ? 4 : 16);
	}
}

/*
 * A local port. bind(0) takes any port nobody uses, from a random start.
 * connect() follows RFC 6056's algorithm 4 (double-hash): the search for a
 * destination starts at a secret hash of (local address, remote address,
 * remote port) plus a counter shared by a bucket of destinations, and the
 * counter moves past the port taken. So successive connections to one
 * server walk the range instead of drawing at random: a 4-tuple comes back
 * only after the range is used up, never while the server may still hold
 * the previous one in TIME-WAIT with a sequence number or timestamp the new
 * SYN does not pass (the server then answers with an ACK, we reset it and
 * the SYN waits a whole RTO).
 */
static int
pick_port(struct utcp_stack *st, struct utcp_tuple *t, bool for_connect)
{
	uint32_t lo = st->cfg.port_lo, hi = st->cfg.port_hi;
	uint32_t n = hi - lo + 1, start, bucket = 0;

	if (for_connect) {
		struct utcp_tuple dst = *t;
		uint64_t h;

		dst.lport = 0;
		h = siphash24(st->hkey, &dst, sizeof(dst));
		bucket = (uint32_t)(h >> 32) % PORT_BUCKETS;
		start = (uint32_t)(((uint64_t)(uint32_t)h +
				    st->port_next[bucket]) % n);
	} else {
		start = (uint32_t)(prng_next(st) % n);
	}
	for (uint32_t i = 0; i < n; i++) {
		uint16_t p = (uint16_t)(lo + (start + i) % n);

		if (listen_lookup(st, AF_INET, p) != NULL ||
		    listen_lookup(st, AF_INET6, p) != NULL)
			continue;
		if (!for_connect) {
			/* bind(0): a port nobody uses at all. */
			if (port_busy(st, p, false))
				continue;
		} else {
			/* connect(): unique 4-tuple, no explicit binder. */
			if (port_busy(st, p, true))
				continue;
			t->lport = p;
			if (conn_lookup(st, t) != NULL)
				continue;
			st->port_next[bucket] =
				st->port_next[bucket] + i + 1;
		}
		t->lport = p;
		return 0;
	}
	return -EADDRNOTAVAIL;
}

int
utcp_bind(struct utcp_sock *s, const struct utcp_addr *local)
{
	struct utcp_stack *st = s->st;
	const struct utcp_addr *me;
	uint8_t fam = local->family;
	const uint8_t *ip = local->ip;
	int err;

	if (s->bound || s->state != UTCP_CLOSED)
		return -EINVAL;
	if (s->family == AF_INET && fam != AF_INET)
		return -EAFNOSUPPORT;
	if (s->family == AF_INET6 && fam != AF_INET6)
		return -EINVAL;
	if (fam == AF_INET6 && memcmp(ip, v4mapped_prefix, 12) == 0) {
		fam = AF_INET;
		ip += 12;
	}
	if (!all_zero(ip, fam == AF_INET ? 4 : 16)) {
		me = local_addr(st, fam);
		if (me == NULL || memcmp(me->ip, ip, fam == AF_INET ? 4 : 16))
			return -EADDRNOTAVAIL;
	}
	if (local->port == 0) {
		struct utcp_tuple t;

		memset(&t, 0, sizeof(t));
		if ((err = pick_port(st, &t, false)) != 0)
			return err;
		s->tuple.lport = t.lport;
		if ((err = port_ref(st, t.lport, true)) != 0)
			return err;
	} else {
		uint16_t p = local->port;
		/* SO_REUSEPORT on every bind of the port, this one too:
		 * they share it, listeners included (Linux; one user, as
		 * all our sockets are one daemon's) */
		bool shared = s->reuseport && port_reuseport_only(st, p);

		if (!shared && (listen_lookup(st, AF_INET, p) != NULL ||
				listen_lookup(st, AF_INET6, p) != NULL))
			return -EADDRINUSE;
		/* Without SO_REUSEADDR any other user of the port
		 * (TIME-WAIT included) is a conflict, as on Linux. */
		if (!shared && !s->reuseaddr && port_busy(st, p, false))
			return -EADDRINUSE;
		if ((err = port_ref(st, p, true)) != 0)
			return err;
		s->tuple.lport = p;
		if (s->reuseport) {
			port_reuseport(st, p, 1);
			s->rp_bound = true;
		}
	}
	if (!all_zero(ip, fam == AF_INET ? 4 : 16)) {
		/* getsockname() shows the address, as Linux */
		memcpy(s->tuple.laddr, ip, fam == AF_INET ? 4 : 16);
		s->addr_bound = true;
		s->addr_bound_v4 = fam == AF_INET;
	}
	s->bound = true;
	s->port_explicit = true;
	return 0;
}

int
utcp_listen(struct utcp_sock *s, int backlog)
{
	unsigned max = s->st->cfg.max_backlog;
	int err;

	/* Linux: a negative backlog means the maximum. */
	if (backlog < 0 || (unsigned)backlog > max)
		backlog = (int)max;
	if (s->state == UTCP_LISTEN) {
		s->backlog = backlog;
		return 0;
	}
	if (s->state != UTCP_CLOSED || s->app_owned == false)
		return -EINVAL;
	if (!s->bound) {
		struct utcp_addr any = {.family = s->family};

		if ((err = utcp_bind(s, &any)) != 0)
			return err;
	} else if (listen_lookup(s->st, s->family, s->tuple.lport) != NULL &&
		   !(s->rp_bound &&
		     port_reuseport_only(s->st, s->tuple.lport))) {
		return -EADDRINUSE;
	}
	s->backlog = backlog;
	s->so_error = 0;
	if ((err = listen_hash(s)) != 0)
		return err;
	tcp_set_state(s, UTCP_LISTEN, "listen()", s->st->now);
	return 0;
}

int
utcp_connect(struct utcp_sock *s, const struct utcp_addr *remote,
	     utcp_time_t now)
{
	struct utcp_stack *st = s->st;
	const struct utcp_addr *me;
	struct utcp_tuple t;
	uint8_t fam = remote->family;
	const uint8_t *ip = remote->ip;
	int err;

	stack_time(s->st, now);
	switch (s->state) {
	case UTCP_CLOSED:
		break;
	case UTCP_SYN_SENT:
	case UTCP_SYN_RECEIVED:
		return -EALREADY;
	default:
		return -EISCONN;
	}
	if (s->family == AF_INET && fam != AF_INET)
		return -EAFNOSUPPORT;
	if (s->family == AF_INET6 && fam != AF_INET6)
		return -EAFNOSUPPORT;
	if (fam == AF_INET6 && memcmp(ip, v4mapped_prefix, 12) == 0) {
		if (s->v6only)
			return -ENETUNREACH;
		fam = AF_INET;
		ip += 12;
	}
	if (all_zero(ip, fam == AF_INET ? 4 : 16))
		return -ENETUNREACH;
	me = local_addr(st, fam);
	if (me == NULL)
		return -ENETUNREACH;
	memset(&t, 0, sizeof(t));
	t.family = fam;
	t.rport = remote->port;
	memcpy(t.laddr, me->ip, fam == AF_INET ? 4 : 16);
	memcpy(t.raddr, ip, fam == AF_INET ? 4 : 16);
	if (s->bound) {
		t.lport = s->tuple.lport;
		if (conn_lookup(st, &t) != NULL)
			return -EADDRNOTAVAIL;
	} else {
		if ((err = pick_port(st, &t, true)) != 0)
			return err;
		if ((err = port_ref(st, t.lport, false)) != 0)
			return err;
		s->bound = true;
		s->port_explicit = false;
	}
	s->tuple = t;
	s->so_error = 0;
	s->shut_rd = s->shut_wr = false;
	s->fin_queued = s->fin_rcvd = s->fin_acked = s->ooo_fin = false;
	s->syn_acked = false;
	s->iss = isn_make(st, &t, now);
	s->snd_una = s->snd_nxt = s->snd_max = s->iss;
	s->recover = s->iss;
	s->snd_wnd = 0;
	s->backoff = 0;
	s->ts_offset = ts_offset_make(st, &t);
	s->ip_id = (uint16_t)s->ts_offset;
	s->rcv_wscale = s->want_ws ? tcp_pick_wscale(s->rcvbuf) : 0;
	s->ts_ok = s->sack_ok = s->ws_ok = false;
	s->peer_mss = 0;
	tcp_set_mss(s);
	s->rto = (uint32_t)st->cfg.rto_initial;
	s->srtt = s->rttvar = 0;
	if ((err = conn_hash(s)) != 0)
		return err;
	stat_inc(st, UTCP_STAT_tcp_active_open);
	tcp_set_state(s, UTCP_SYN_SENT, "connect()", now);
	tcp_output(s, now);
	stack_reap(st);
	return 0;
}

struct utcp_sock *
utcp_accept(struct utcp_sock *l, int *err)
{
	struct utcp_sock *c;
	int dummy;

	if (err == NULL)
		err = &dummy;
	if (l->state != UTCP_LISTEN) {
		*err = -EINVAL;
		return NULL;
	}
	c = TAILQ_FIRST(&l->accq);
	if (c == NULL) {
		*err = -EAGAIN;
		return NULL;
	}
	TAILQ_REMOVE(&l->accq, c, qe);
	l->accq_len--;
	c->on_accq = false;
	c->parent = NULL;
	c->app_owned = true;
	*err = 0;
	return c;
}

void
utcp_listen_hold(struct utcp_sock *l, int delta)
{
	int n = (int)l->acc_held + delta;

	l->acc_held = (uint16_t)(n < 0 ? 0 : n > UINT16_MAX ? UINT16_MAX : n);
}

static int
take_error(struct utcp_sock *s)
{
	int e = s->so_error;

	s->so_error = 0;
	return -e;
}

ssize_t
utcp_send(struct utcp_sock *s, const void *buf, size_t len, int flags,
	  utcp_time_t now)
{
	uint32_t space, n;

	stack_time(s->st, now);
	if (s->so_error)
		return take_error(s);
	if (s->shut_wr || s->fin_queued)
		return -EPIPE;
	switch (s->state) {
	case UTCP_ESTABLISHED:
	case UTCP_CLOSE_WAIT:
		break;
	case UTCP_SYN_SENT:
	case UTCP_SYN_RECEIVED:
		s->wants_writable = true;
		return -EAGAIN;
	default:
		return -ENOTCONN;
	}
	if (len == 0)
		return 0;
	space = s->sndbuf > s->snd.len ? s->sndbuf - s->snd.len : 0;
	if (space == 0) {
		s->wants_writable = true;
		return -EAGAIN;
	}
	n = len < space ? (uint32_t)len : space;
	if (ring_write_at(&s->snd, s->snd.len, buf, n) != 0) {
		s->wants_writable = true;
		return -ENOMEM;
	}
	/* RFC 5681 4.1: after an idle period longer than the RTO, restart
	 * from the initial window (Linux tcp_slow_start_after_idle). */
	if (s->snd_max == s->snd_una && s->snd.len == 0 && s->last_send &&
	    now - s->last_send > tcp_rto_backed_off(s)) {
		uint32_t iw = TCP_INIT_CWND * s->mss;

		if (s->cwnd > iw)
			s->cwnd = iw;
	}
	s->snd.len += n;
	if (n < len)
		s->wants_writable = true;
	s->more = (flags & UTCP_MSG_MORE) != 0;
	tcp_output(s, now);
	stack_reap(s->st);
	return n;
}

ssize_t
utcp_recv(struct utcp_sock *s, void *buf, size_t len, int flags,
	  utcp_time_t now)
{
	stack_time(s->st, now);
	if (s->rcv.len > 0 && len > 0) {
		uint32_t n = len < s->rcv.len ? (uint32_t)len : s->rcv.len;

		ring_read_at(&s->rcv, 0, buf, n);
		if (!(flags & UTCP_MSG_PEEK)) {
			ring_consume(&s->rcv, n);
			/* Nothing parked past a gap either: give the buffer
			 * back while the connection idles. */
			if (s->ooo.n == 0)
				ring_release_if_empty(&s->rcv);
			tcp_maybe_window_update(s, now);
			stack_reap(s->st);
		}
		return n;
	}
	/* Linux (tcp_recvmsg): after their FIN, reads see end of stream
	 * even if an error came later; send() and SO_ERROR report it. */
	if (s->fin_rcvd)
		return 0;
	if (s->so_error)
		return take_error(s);
	if (s->shut_rd)
		return 0;
	switch (s->state) {
	case UTCP_LISTEN:
		return -ENOTCONN;
	case UTCP_CLOSED:
		/* A connection that ended reads as end of stream. */
		return s->shut_wr ? 0 : -ENOTCONN;
	default:
		break;
	}
	if (len == 0)
		return 0;
	return -EAGAIN;
}

size_t
utcp_send_space(const struct utcp_sock *s)
{
	if (s->shut_wr || s->fin_queued || !UTCP_HAVEESTABLISHED(s->state))
		return 0;
	return s->sndbuf > s->snd.len ? s->sndbuf - s->snd.len : 0;
}

size_t
utcp_recv_avail(const struct utcp_sock *s)
{
	return s->rcv.len;
}

/* Queue our FIN: ESTABLISHED → FIN-WAIT-1, CLOSE-WAIT → LAST-ACK. */
static void
queue_fin(struct utcp_sock *s, const char *cause, utcp_time_t now)
{
	s->shut_wr = true;
	switch (s->state) {
	case UTCP_ESTABLISHED:
		s->fin_queued = true;
		tcp_set_state(s, UTCP_FIN_WAIT_1, cause, now);
		break;
	case UTCP_CLOSE_WAIT:
		s->fin_queued = true;
		tcp_set_state(s, UTCP_LAST_ACK, cause, now);
		break;
	case UTCP_SYN_RECEIVED:
		/* RFC 9293 3.10.4 (and Linux): form a FIN, send it, enter
		 * FIN-WAIT-1; it follows our SYN. */
		s->fin_queued = true;
		tcp_set_state(s, UTCP_FIN_WAIT_1, cause, now);
		break;
	default:
		return;
	}
	tcp_output(s, now);
}

int
utcp_shutdown(struct utcp_sock *s, int how, utcp_time_t now)
{
	stack_time(s->st, now);
	if (how != SHUT_RD && how != SHUT_WR && how != SHUT_RDWR)
		return -EINVAL;
	switch (s->state) {
	case UTCP_CLOSED:
	case UTCP_TIME_WAIT: /* Linux: the socket itself is closed by then */
		return -ENOTCONN;
	case UTCP_LISTEN:
		/* Linux: shutting a listener's reading stops it. */
		if (how != SHUT_WR) {
			tcp_listen_close(s, now);
			stack_reap(s->st);
		}
		return 0;
	case UTCP_SYN_SENT:
		/* Linux disconnects a connect in progress. */
		tcp_drop(s, 0, "shutdown()", now);
		stack_reap(s->st);
		return 0;
	default:
		break;
	}
	if (how != SHUT_WR && !s->shut_rd) {
		s->shut_rd = true;
		tcp_rcv_avail_event(s, now);
	}
	if (how != SHUT_RD && !s->shut_wr)
		queue_fin(s, "shutdown()", now);
	stack_reap(s->st);
	return 0;
}

void
utcp_close(struct utcp_sock *s, utcp_time_t now)
{
	struct utcp_stack *st = s->st;

	if (s->dead || !s->app_owned)
		return;
	stack_time(st, now);
	s->app_owned = false;
	s->wants_writable = false;
	switch (s->state) {
	case UTCP_LISTEN:
		tcp_listen_close(s, now);
		sock_release(s);
		break;
	case UTCP_CLOSED:
		sock_release(s);
		break;
	case UTCP_SYN_SENT:
		tcp_closed(s, now);
		break;
	default:
		if (s->rcv.len > 0 || (s->linger_on && s->linger == 0)) {
			/* RFC 9293 3.10.4 / Linux: unread data (or
			 * SO_LINGER {1, 0}) aborts with RST. */
			const char *why = s->rcv.len > 0
					      ? "close() with unread data"
					      : "close() with SO_LINGER 0";

			if (s->state != UTCP_TIME_WAIT &&
			    s->state != UTCP_LAST_ACK &&
			    s->state != UTCP_CLOSING)
				tcp_send_rst(s, why, now);
			tcp_drop(s, 0, why, now);
			break;
		}
		s->shut_rd = true;
		if (!s->shut_wr)
			queue_fin(s, "close()", now);
		if (s->state == UTCP_FIN_WAIT_2 && !timer_on(s, TCPT_2MSL))
			timer_set(s, TCPT_2MSL, now + st->cfg.fin_timeout);
		if (s->state == UTCP_CLOSED)
			tcp_maybe_free(s);
		break;
	}
	stack_reap(st);
}

void
utcp_abort(struct utcp_sock *s, utcp_time_t now)
{
	stack_time(s->st, now);
	switch (s->state) {
	case UTCP_CLOSED:
		return;
	case UTCP_LISTEN:
		tcp_listen_close(s, now);
		break;
	case UTCP_SYN_RECEIVED:
	case UTCP_ESTABLISHED:
	case UTCP_FIN_WAIT_1:
	case UTCP_FIN_WAIT_2:
	case UTCP_CLOSE_WAIT:
		/* RFC 9293 3.10.5: <SEQ=SND.NXT><CTL=RST>. */
		tcp_send_rst(s, "abort", now);
		/* fall through */
	default:
		tcp_drop(s, ECONNABORTED, "abort", now);
		break;
	}
	stack_reap(s->st);
}

enum utcp_state
utcp_sock_state(const struct utcp_sock *s)
{
	return s->state;
}

int
utcp_sock_error(struct utcp_sock *s, bool clear)
{
	int e = s->so_error;

	if (clear)
		s->so_error = 0;
	return e;
}

void
utcp_sock_names(const struct utcp_sock *s, struct utcp_addr *local,
		struct utcp_addr *remote)
{
	bool conn = s->tuple.family != 0 && s->tuple.rport != 0;

	uint8_t lfam = conn	       ? s->tuple.family
		       : !s->addr_bound ? 0
		       : s->addr_bound_v4 ? AF_INET
					  : AF_INET6;

	if (local != NULL)
		export_addr(s, lfam, s->tuple.laddr,
			    s->bound || conn ? s->tuple.lport : 0, local);
	if (remote != NULL)
		export_addr(s, conn ? s->tuple.family : 0, s->tuple.raddr,
			    conn ? s->tuple.rport : 0, remote);
}

void
utcp_sock_set_user(struct utcp_sock *s, void *user)
{
	s->user = user;
}

void *
utcp_sock_user(const struct utcp_sock *s)
{
	return s->user;
}

bool
utcp_sock_eof(const struct utcp_sock *s)
{
	return s->fin_rcvd && s->rcv.len == 0;
}
