/*
 * tcp_fsm.c — state names and the transitions that every path shares:
 * into ESTABLISHED, TIME-WAIT and CLOSED, and when a socket is freed.
 */
#include "internal.h"

#include <sys/socket.h>

static const char *const state_names[UTCP_NSTATES] = {
    [UTCP_CLOSED] = "CLOSED",		[UTCP_LISTEN] = "LISTEN",
    [UTCP_SYN_SENT] = "SYN-SENT",	[UTCP_SYN_RECEIVED] = "SYN-RECEIVED",
    [UTCP_ESTABLISHED] = "ESTABLISHED", [UTCP_CLOSE_WAIT] = "CLOSE-WAIT",
    [UTCP_FIN_WAIT_1] = "FIN-WAIT-1",	[UTCP_CLOSING] = "CLOSING",
    [UTCP_LAST_ACK] = "LAST-ACK",	[UTCP_FIN_WAIT_2] = "FIN-WAIT-2",
    [UTCP_TIME_WAIT] = "TIME-WAIT",
};

const char *
utcp_state_name(int state)
{
	return state >= 0 && state < UTCP_NSTATES ? state_names[state] : "?";
}

void
tcp_set_state(struct utcp_sock *s, enum utcp_state ns, const char *cause,
	      utcp_time_t now)
{
	struct utcp_event ev = {
	    .type = UTCP_EV_STATE,
	    .sock = s,
	    .old_state = s->state,
	    .new_state = ns,
	    .err = s->so_error,
	    .cause = cause,
	    .now = now,
	};

	if (s->state == ns)
		return;
	s->state = ns;
	ev_emit_full(s->st, &ev);
}

/* The application learns about a socket only once it holds it. */
static bool
app_sees(const struct utcp_sock *s)
{
	return s->app_owned && !s->dead;
}

void
tcp_rcv_avail_event(struct utcp_sock *s, utcp_time_t now)
{
	if (app_sees(s))
		ev_emit(s, UTCP_EV_READABLE, "readable", now);
}

void
tcp_maybe_free(struct utcp_sock *s)
{
	if (s->dead || s->state != UTCP_CLOSED || s->app_owned || s->on_accq)
		return;
	sock_release(s);
}

/* Release what a closed connection no longer needs; keep unread data
 * for a reader that still holds the socket. */
static void
closed_common(struct utcp_sock *s)
{
	struct utcp_stack *st = s->st;

	timer_cancel_all(s);
	conn_unhash(s);
	listen_unhash(s);
	ring_free(&s->snd);
	reass_free(&s->ooo);
	sack_clear(s);
	s->ooo_fin = false;
	if (!s->app_owned)
		ring_free(&s->rcv);
	/* An automatically chosen port goes back to the pool (Linux). */
	if (s->bound && !s->port_explicit) {
		port_unref(st, s->tuple.lport, false);
		s->bound = false;
	}
}

void
tcp_closed(struct utcp_sock *s, utcp_time_t now)
{
	tcp_set_state(s, UTCP_CLOSED, "closed", now);
	closed_common(s);
	tcp_maybe_free(s);
}

void
tcp_drop(struct utcp_sock *s, int err, const char *cause, utcp_time_t now)
{
	enum utcp_state old = s->state;

	if (err != 0)
		s->so_error = err;
	s->shut_wr = true;
	tcp_set_state(s, UTCP_CLOSED, cause, now);
	closed_common(s);
	if (app_sees(s) && old != UTCP_CLOSED) {
		if (err != 0) {
			struct utcp_event ev = {
			    .type = UTCP_EV_ERROR,
			    .sock = s,
			    .old_state = old,
			    .new_state = UTCP_CLOSED,
			    .err = err,
			    .cause = cause,
			    .now = now,
			};

			ev_emit_full(s->st, &ev);
		}
		ev_emit(s, UTCP_EV_READABLE, cause, now);
		if (s->wants_writable) {
			/* A blocked writer must learn of the error too. */
			s->wants_writable = false;
			ev_emit(s, UTCP_EV_WRITABLE, cause, now);
		}
	}
	tcp_maybe_free(s);
}

void
tcp_enter_time_wait(struct utcp_sock *s, const char *cause, utcp_time_t now)
{
	tcp_set_state(s, UTCP_TIME_WAIT, cause, now);
	timer_cancel_all(s);
	ring_free(&s->snd);
	reass_free(&s->ooo);
	sack_clear(s);
	if (!s->app_owned)
		ring_free(&s->rcv);
	/* RFC 9293 3.10.7.4: 2 MSL, restarted by a retransmitted FIN. */
	timer_set(s, TCPT_2MSL, now + s->st->cfg.time_wait);
}

void
tcp_established(struct utcp_sock *s, const char *cause, utcp_time_t now)
{
	struct utcp_sock *l = s->parent;

	/* A close() during the handshake already moved on to FIN-WAIT-1. */
	if (s->state == UTCP_SYN_SENT || s->state == UTCP_SYN_RECEIVED)
		tcp_set_state(s, UTCP_ESTABLISHED, cause, now);
	stat_inc(s->st, UTCP_STAT_tcp_conn_established);
	/* RFC 6298 5.7: a handshake that needed retransmissions gave no
	 * RTT sample: data starts with a 3 s RTO. */
	if (s->srtt == 0) {
		s->rto = (uint32_t)UTCP_SEC(3);
		if (s->rto > s->st->cfg.rto_max)
			s->rto = (uint32_t)s->st->cfg.rto_max;
	}
	s->quickack = TCP_MAX_QUICKACKS;
	s->last_rcv = now;
	s->cc->init(s);
	if (s->keepalive)
		tcp_keep_reset(s, now);
	if (l != NULL && s->on_synq) {
		/* Three-way handshake done: the listener's accept queue. */
		TAILQ_REMOVE(&l->synq, s, qe);
		l->synq_len--;
		s->on_synq = false;
		TAILQ_INSERT_TAIL(&l->accq, s, qe);
		l->accq_len++;
		s->on_accq = true;
		if (app_sees(l)) {
			struct utcp_event ev = {
			    .type = UTCP_EV_ACCEPTABLE,
			    .sock = l,
			    .old_state = l->state,
			    .new_state = l->state,
			    .arg = l->accq_len,
			    .cause = cause,
			    .now = now,
			};

			ev_emit_full(s->st, &ev);
		}
	} else if (app_sees(s)) {
		ev_emit(s, UTCP_EV_CONNECTED, cause, now);
		if (s->wants_writable) {
			s->wants_writable = false;
			ev_emit(s, UTCP_EV_WRITABLE, cause, now);
		}
	}
}

void
tcp_listen_close(struct utcp_sock *l, utcp_time_t now)
{
	struct utcp_sock *c;

	/* Linux (inet_csk_listen_stop): connections nobody accepted are
	 * reset, embryos dropped quietly. */
	while ((c = TAILQ_FIRST(&l->accq)) != NULL) {
		if (UTCP_HAVEESTABLISHED(c->state) &&
		    c->state != UTCP_TIME_WAIT)
			tcp_send_rst(c, "listener closed", now);
		sock_release(c);
	}
	while ((c = TAILQ_FIRST(&l->synq)) != NULL)
		sock_release(c);
	listen_unhash(l);
	tcp_set_state(l, UTCP_CLOSED, "close()", now);
}
