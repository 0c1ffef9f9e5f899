/*
 * sockopt.c — setsockopt/getsockopt with Linux names, ranges and errors,
 * TCP_INFO, and utcp_sock_info().
 */
#include "internal.h"

#include <errno.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#define MAX_TCP_KEEPIDLE 32767
#define MAX_TCP_KEEPINTVL 32767
#define MAX_TCP_KEEPCNT 127
#define MAX_TCP_WINDOW 32767 /* Linux's ceiling for TCP_MAXSEG */
#define SOCK_MIN_SNDBUF 4608
#define SOCK_MIN_RCVBUF 2304
#define UTCP_BUF_MAX (256u << 20)
#define TCP_CA_NAME_MAX 16 /* Linux include/net/tcp.h */

_Static_assert(sizeof(struct utcp_info) <= 256,
	       "struct utcp_info travels in utcp_ipc_conn.info[256]");

static int
get_int(const void *val, size_t len, int *out)
{
	if (val == NULL || len < sizeof(int))
		return -EINVAL;
	memcpy(out, val, sizeof(int));
	return 0;
}

static int
put_int(void *val, size_t *len, int v)
{
	size_t n = *len < sizeof(int) ? *len : sizeof(int);

	/* Linux copies min(len, sizeof(int)) bytes. */
	memcpy(val, &v, n);
	*len = n;
	return 0;
}

static bool
synchronized(const struct utcp_sock *s)
{
	return UTCP_HAVEESTABLISHED(s->state) && s->state != UTCP_TIME_WAIT;
}

/* Keepalive parameters changed: re-aim the timer from the last segment
 * received, as Linux's keepalive_time_elapsed() does. */
static void
keep_rearm(struct utcp_sock *s, utcp_time_t now)
{
	utcp_time_t idle = UTCP_SEC(s->keepidle), elapsed;

	if (!s->keepalive || !synchronized(s)) {
		timer_cancel(s, TCPT_KEEP);
		return;
	}
	elapsed = now - s->last_rcv;
	timer_set(s, TCPT_KEEP, elapsed < idle ? now + idle - elapsed : now);
}

/* SO_SNDBUF, SO_RCVBUF: Linux doubles the request for bookkeeping
 * overhead, then holds it between its floor and our ceiling. */
static uint32_t
buf_size(int v, uint64_t floor)
{
	uint64_t b = v < 0 ? 0 : 2 * (uint64_t)v;

	if (b < floor)
		b = floor;
	return (uint32_t)(b > UTCP_BUF_MAX ? UTCP_BUF_MAX : b);
}

static int
set_sol_socket(struct utcp_sock *s, int name, const void *val, size_t len,
	       utcp_time_t now)
{
	int v, err;

	if (name == SO_LINGER) {
		struct linger l;

		if (val == NULL || len < sizeof(l))
			return -EINVAL;
		memcpy(&l, val, sizeof(l));
		s->linger_on = l.l_onoff != 0;
		s->linger = l.l_linger < 0 ? 0 : l.l_linger;
		return 0;
	}
	if ((err = get_int(val, len, &v)) != 0)
		return err;
	switch (name) {
	case SO_KEEPALIVE:
		/* Linux (tcp_set_keepalive): turning it on arms the timer
		 * a full keepidle from now. */
		if (v && !s->keepalive) {
			s->keepalive = true;
			tcp_keep_reset(s, now);
		} else if (!v) {
			s->keepalive = false;
			timer_cancel(s, TCPT_KEEP);
		}
		return 0;
	case SO_SNDBUF:
	case SO_SNDBUFFORCE:
		s->sndbuf = buf_size(v, SOCK_MIN_SNDBUF);
		return 0;
	case SO_RCVBUF:
	case SO_RCVBUFFORCE:
		s->rcvbuf = buf_size(v, SOCK_MIN_RCVBUF);
		return 0;
	case SO_REUSEADDR:
		s->reuseaddr = v != 0;
		return 0;
	case SO_REUSEPORT:
		s->reuseport = v != 0;
		return 0;
	case SO_OOBINLINE:
		return 0;
	default:
		return -ENOPROTOOPT;
	}
}

static int
set_tcp(struct utcp_sock *s, int name, const void *val, size_t len,
	utcp_time_t now)
{
	int v, err;

	if (name == TCP_CONGESTION) {
		char buf[TCP_CA_NAME_MAX];
		const struct cc_algo *cc;
		size_t n = len < sizeof(buf) - 1 ? len : sizeof(buf) - 1;

		if (val == NULL || len == 0)
			return -EINVAL;
		memcpy(buf, val, n);
		buf[n] = '\0';
		if ((cc = cc_find(buf)) == NULL)
			return -ENOENT;
		if (cc != s->cc) {
			s->cc = cc;
			if (synchronized(s)) {
				/* Keep the window; restart the algorithm's
				 * own state. */
				s->cc_epoch = 0;
				s->cc_wmax = 0;
				s->cc_cnt = 0;
			}
		}
		return 0;
	}
	if (name == TCP_INFO)
		return -ENOPROTOOPT;
	if ((err = get_int(val, len, &v)) != 0)
		return err;
	switch (name) {
	case TCP_NODELAY:
		s->nodelay = v != 0;
		/* Linux pushes what Nagle was holding. */
		if (s->nodelay && synchronized(s))
			tcp_output(s, now);
		return 0;
	case TCP_CORK:
		s->cork = v != 0;
		if (s->cork == false && synchronized(s))
			tcp_output_force(s, now);
		return 0;
	case TCP_MAXSEG:
		if (v != 0 && (v < UTCP_MIN_MSS || v > MAX_TCP_WINDOW))
			return -EINVAL;
		s->user_mss = (uint16_t)v;
		return 0;
	case TCP_KEEPIDLE:
		if (v < 1 || v > MAX_TCP_KEEPIDLE)
			return -EINVAL;
		s->keepidle = (unsigned)v;
		keep_rearm(s, now);
		return 0;
	case TCP_KEEPINTVL:
		if (v < 1 || v > MAX_TCP_KEEPINTVL)
			return -EINVAL;
		s->keepintvl = (unsigned)v;
		return 0;
	case TCP_KEEPCNT:
		if (v < 1 || v > MAX_TCP_KEEPCNT)
			return -EINVAL;
		s->keepcnt = (unsigned)v;
		return 0;
	case TCP_USER_TIMEOUT:
		if (v < 0)
			return -EINVAL;
		s->user_timeout = (unsigned)v;
		return 0;
	case TCP_QUICKACK:
		if (v) {
			s->quickack = TCP_MAX_QUICKACKS;
			/* Linux sends an ACK that was being delayed. */
			if (timer_on(s, TCPT_DELACK) && synchronized(s))
				tcp_send_ack(s, now);
		} else {
			s->quickack = 0;
		}
		return 0;
	case TCP_SYNCNT:
		if (v < 1 || v > MAX_TCP_KEEPCNT)
			return -EINVAL;
		s->syncnt = v;
		return 0;
	case TCP_LINGER2:
		s->linger2 = v;
		return 0;
	case TCP_DEFER_ACCEPT:
		s->defer_accept = v < 0 ? 0 : v;
		return 0;
	case TCP_WINDOW_CLAMP:
		if (v < 0)
			return -EINVAL;
		s->window_clamp = v;
		return 0;
	case TCP_NOTSENT_LOWAT:
		s->notsent_lowat = v;
		return 0;
	default:
		return -ENOPROTOOPT;
	}
}

static int
set_ip(struct utcp_sock *s, int level, int name, const void *val, size_t len)
{
	int v;

	if (level == IPPROTO_IP && name == IP_TOS) {
		if (val == NULL || len < 1)
			return -EINVAL;
		/* Linux takes an int, or a single byte. */
		if (len >= sizeof(int))
			memcpy(&v, val, sizeof(int));
		else
			v = *(const uint8_t *)val;
		/* TCP keeps the ECN bits its own. */
		s->tos = (uint8_t)((v & ~3) | (s->tos & 3));
		return 0;
	}
	if (level == IPPROTO_IPV6 && name == IPV6_TCLASS) {
		if (get_int(val, len, &v) != 0 || v < -1 || v > 255)
			return -EINVAL;
		s->tos = (uint8_t)(v < 0 ? 0 : (v & ~3) | (s->tos & 3));
		return 0;
	}
	if (level == IPPROTO_IPV6 && name == IPV6_V6ONLY) {
		if (s->family != AF_INET6)
			return -ENOPROTOOPT;
		if (get_int(val, len, &v) != 0)
			return -EINVAL;
		if (s->bound)
			return -EINVAL;
		s->v6only = v != 0;
		return 0;
	}
	return -ENOPROTOOPT;
}

int
utcp_setsockopt(struct utcp_sock *s, int level, int name, const void *val,
		size_t len, utcp_time_t now)
{
	int err;

	stack_time(s->st, now);
	switch (level) {
	case SOL_SOCKET:
		err = set_sol_socket(s, name, val, len, now);
		break;
	case IPPROTO_TCP:
		err = set_tcp(s, name, val, len, now);
		break;
	case IPPROTO_IP:
	case IPPROTO_IPV6:
		err = set_ip(s, level, name, val, len);
		break;
	default:
		err = -ENOPROTOOPT;
		break;
	}
	stack_reap(s->st);
	return err;
}

/* Linux's numbering of states in struct tcp_info. */
static uint8_t
linux_state(enum utcp_state st)
{
	static const uint8_t map[UTCP_NSTATES] = {
	    [UTCP_CLOSED] = 7,	    [UTCP_LISTEN] = 10,
	    [UTCP_SYN_SENT] = 2,    [UTCP_SYN_RECEIVED] = 3,
	    [UTCP_ESTABLISHED] = 1, [UTCP_CLOSE_WAIT] = 8,
	    [UTCP_FIN_WAIT_1] = 4,  [UTCP_CLOSING] = 11,
	    [UTCP_LAST_ACK] = 9,    [UTCP_FIN_WAIT_2] = 5,
	    [UTCP_TIME_WAIT] = 6,
	};

	return st < UTCP_NSTATES ? map[st] : 7;
}

static uint32_t
ms_since(utcp_time_t then, utcp_time_t now)
{
	if (then == 0 || now < then)
		return 0;
	return (uint32_t)((now - then) / 1000);
}

static void
fill_tcp_info(const struct utcp_sock *s, struct tcp_info *ti, utcp_time_t now)
{
	struct utcp_info in;
	uint32_t mss = s->mss ? s->mss : UTCP_MSS_DEFAULT;

	utcp_sock_info(s, &in, now);
	memset(ti, 0, sizeof(*ti));
	ti->tcpi_state = linux_state(s->state);
	ti->tcpi_ca_state = s->backoff ? 4 : s->in_recovery ? 3 : 0;
	ti->tcpi_retransmits = (uint8_t)s->retransmits;
	ti->tcpi_probes = (uint8_t)s->probes;
	ti->tcpi_backoff = (uint8_t)s->backoff;
	if (s->ts_ok)
		ti->tcpi_options |= TCPI_OPT_TIMESTAMPS;
	if (s->sack_ok)
		ti->tcpi_options |= TCPI_OPT_SACK;
	if (s->ws_ok) {
		ti->tcpi_options |= TCPI_OPT_WSCALE;
		ti->tcpi_snd_wscale = s->snd_wscale & 0xf;
		ti->tcpi_rcv_wscale = s->rcv_wscale & 0xf;
	}
	ti->tcpi_rto = in.rto;
	ti->tcpi_ato = (uint32_t)s->st->cfg.delack;
	ti->tcpi_snd_mss = mss - tcp_seg_opts_len(s);
	ti->tcpi_rcv_mss = s->rcv_mss;
	ti->tcpi_unacked = (in.unacked + mss - 1) / mss;
	ti->tcpi_sacked = 0;
	ti->tcpi_lost = 0;
	ti->tcpi_retrans = s->backoff || s->in_recovery ? 1 : 0;
	ti->tcpi_last_data_sent = ms_since(s->last_data_sent, now);
	ti->tcpi_last_data_recv = ms_since(s->last_data_recv, now);
	ti->tcpi_last_ack_recv = ms_since(s->last_ack_recv, now);
	ti->tcpi_pmtu = s->st->cfg.mtu;
	ti->tcpi_rcv_ssthresh = in.rcv_wnd;
	ti->tcpi_rtt = s->srtt;
	ti->tcpi_rttvar = s->rttvar;
	ti->tcpi_snd_ssthresh =
	    s->ssthresh >= 0x7fffffff ? 0x7fffffff : s->ssthresh / mss;
	ti->tcpi_snd_cwnd = s->cwnd / mss;
	ti->tcpi_advmss = tcp_adv_mss(s);
	ti->tcpi_reordering = 3;
	ti->tcpi_rcv_space = s->rcvbuf;
	ti->tcpi_total_retrans = s->total_retrans;
	ti->tcpi_bytes_acked = s->bytes_acked;
	ti->tcpi_bytes_received = s->bytes_received;
	ti->tcpi_segs_out = s->segs_out;
	ti->tcpi_segs_in = s->segs_in;
	ti->tcpi_notsent_bytes =
	    in.send_q > in.unacked ? in.send_q - in.unacked : 0u;
	ti->tcpi_min_rtt = s->srtt;
	ti->tcpi_bytes_sent = s->bytes_sent;
	ti->tcpi_bytes_retrans = s->bytes_retrans;
	ti->tcpi_rcv_ooopack = s->ooo_pkts;
	ti->tcpi_snd_wnd = s->snd_wnd;
}

static int
get_sol_socket(struct utcp_sock *s, int name, void *val, size_t *len)
{
	switch (name) {
	case SO_LINGER: {
		struct linger l = {.l_onoff = s->linger_on,
				   .l_linger = s->linger};
		size_t n = *len < sizeof(l) ? *len : sizeof(l);

		memcpy(val, &l, n);
		*len = n;
		return 0;
	}
	case SO_KEEPALIVE:
		return put_int(val, len, s->keepalive);
	case SO_SNDBUF:
		return put_int(val, len, (int)s->sndbuf);
	case SO_RCVBUF:
		return put_int(val, len, (int)s->rcvbuf);
	case SO_ERROR:
		return put_int(val, len, utcp_sock_error(s, true));
	case SO_ACCEPTCONN:
		return put_int(val, len, s->state == UTCP_LISTEN);
	case SO_TYPE:
		return put_int(val, len, SOCK_STREAM);
	case SO_DOMAIN:
		return put_int(val, len, s->family);
	case SO_PROTOCOL:
		return put_int(val, len, IPPROTO_TCP);
	case SO_REUSEADDR:
		return put_int(val, len, s->reuseaddr);
	case SO_REUSEPORT:
		return put_int(val, len, s->reuseport);
	case SO_OOBINLINE:
		return put_int(val, len, 0);
	default:
		return -ENOPROTOOPT;
	}
}

static int
get_tcp(struct utcp_sock *s, int name, void *val, size_t *len)
{
	switch (name) {
	case TCP_NODELAY:
		return put_int(val, len, s->nodelay);
	case TCP_CORK:
		return put_int(val, len, s->cork);
	case TCP_MAXSEG: {
		/* Linux: the current MSS, or the user's before a
		 * connection exists; 536 when neither is known. */
		int v = synchronized(s) ? (int)(s->mss - tcp_seg_opts_len(s))
					: UTCP_MSS_DEFAULT;

		if (s->user_mss &&
		    (s->state == UTCP_CLOSED || s->state == UTCP_LISTEN))
			v = s->user_mss;
		return put_int(val, len, v);
	}
	case TCP_KEEPIDLE:
		return put_int(val, len, (int)s->keepidle);
	case TCP_KEEPINTVL:
		return put_int(val, len, (int)s->keepintvl);
	case TCP_KEEPCNT:
		return put_int(val, len, (int)s->keepcnt);
	case TCP_USER_TIMEOUT:
		return put_int(val, len, (int)s->user_timeout);
	case TCP_QUICKACK:
		return put_int(val, len, s->quickack > 0);
	case TCP_SYNCNT:
		return put_int(val, len,
			       s->syncnt ? s->syncnt
					 : (int)s->st->cfg.syn_retries);
	case TCP_LINGER2:
		return put_int(
		    val, len,
		    s->linger2 ? s->linger2
			       : (int)(s->st->cfg.fin_timeout / UTCP_SEC(1)));
	case TCP_DEFER_ACCEPT:
		return put_int(val, len, s->defer_accept);
	case TCP_WINDOW_CLAMP:
		return put_int(val, len, s->window_clamp);
	case TCP_NOTSENT_LOWAT:
		return put_int(val, len, s->notsent_lowat);
	case TCP_CONGESTION: {
		char name16[TCP_CA_NAME_MAX] = {0};
		size_t n = *len < sizeof(name16) ? *len : sizeof(name16);

		strncpy(name16, s->cc->name, sizeof(name16) - 1);
		memcpy(val, name16, n);
		*len = n;
		return 0;
	}
	default:
		return -ENOPROTOOPT;
	}
}

int
utcp_getsockopt(struct utcp_sock *s, int level, int name, void *val,
		size_t *len)
{
	if (val == NULL || len == NULL)
		return -EFAULT;
	switch (level) {
	case SOL_SOCKET:
		return get_sol_socket(s, name, val, len);
	case IPPROTO_TCP:
		if (name == TCP_INFO) {
			struct tcp_info ti;
			size_t n = *len < sizeof(ti) ? *len : sizeof(ti);
			/* No clock here: TCP_INFO's "ms ago" fields count
			 * from the latest time any engine call brought. */
			fill_tcp_info(s, &ti, s->st->now);
			memcpy(val, &ti, n);
			*len = n;
			return 0;
		}
		return get_tcp(s, name, val, len);
	case IPPROTO_IP:
		if (name == IP_TOS)
			return put_int(val, len, s->tos);
		return -ENOPROTOOPT;
	case IPPROTO_IPV6:
		if (s->family != AF_INET6)
			return -ENOPROTOOPT;
		if (name == IPV6_TCLASS)
			return put_int(val, len, s->tos);
		if (name == IPV6_V6ONLY)
			return put_int(val, len, s->v6only);
		return -ENOPROTOOPT;
	default:
		return -ENOPROTOOPT;
	}
}

void
utcp_sock_info(const struct utcp_sock *s, struct utcp_info *in, utcp_time_t now)
{
	static const enum utcp_timer_kind kinds[TCPT_N] = {
	    [TCPT_REXMT] = UTCP_TIMER_RETRANS,
	    [TCPT_PERSIST] = UTCP_TIMER_PERSIST,
	    [TCPT_KEEP] = UTCP_TIMER_KEEPALIVE,
	    [TCPT_DELACK] = UTCP_TIMER_DELACK,
	    [TCPT_2MSL] = UTCP_TIMER_TIMEWAIT,
	};
	utcp_time_t best = UTCP_TIME_NEVER;

	(void)now;
	memset(in, 0, sizeof(*in));
	in->state = s->state;
	in->mss_snd = s->mss;
	in->mss_rcv = s->rcv_mss;
	in->wscale_snd = s->snd_wscale;
	in->wscale_rcv = s->rcv_wscale;
	in->ts_ok = s->ts_ok;
	in->sack_ok = s->sack_ok;
	in->rtt = s->srtt;
	in->rttvar = s->rttvar;
	in->rto = (uint32_t)tcp_rto_backed_off(s);
	in->cwnd = s->cwnd;
	in->ssthresh = s->ssthresh;
	in->snd_wnd = s->snd_wnd;
	in->rcv_wnd =
	    SEQ_GT(s->rcv_adv, s->rcv_nxt) ? s->rcv_adv - s->rcv_nxt : 0;
	in->unacked = UTCP_HAVEESTABLISHED(s->state) ? tcp_flight(s) : 0;
	in->retransmits = s->retransmits;
	in->total_retrans = s->total_retrans;
	in->backoff = s->backoff;
	in->bytes_sent = s->bytes_sent;
	in->bytes_acked = s->bytes_acked;
	in->bytes_received = s->bytes_received;
	in->segs_in = s->segs_in;
	in->segs_out = s->segs_out;
	in->recv_q = s->rcv.len;
	in->send_q = s->snd.len;
	in->timer = UTCP_TIMER_NONE;
	for (int t = 0; t < TCPT_N; t++) {
		if (s->t_deadline[t] < best) {
			best = s->t_deadline[t];
			in->timer = kinds[t];
		}
	}
	if (in->timer == UTCP_TIMER_TIMEWAIT && s->state == UTCP_FIN_WAIT_2)
		in->timer = UTCP_TIMER_FINWAIT2;
	in->timer_expires = best == UTCP_TIME_NEVER ? 0 : best;
	in->probes = s->probes;
	in->last_data_recv = s->last_data_recv;
	in->last_ack_recv = s->last_ack_recv;
	in->last_data_sent = s->last_data_sent;
}
