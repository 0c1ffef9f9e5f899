/*
 * events.c — the engine's event callback and the trace streams.
 *
 * Each engine event goes to the socket's record (which only marks itself
 * dirty: no engine calls from here), to the log, and to every `utcp trace`
 * subscriber whose filters match. Programs under `utcp run --trace` report
 * their own calls (UTCP_OP_CALL), and with UTCP_TRACE_PACKETS every packet
 * crossing the TUN is copied too (and written to utcpd --pcap's file,
 * pcapd.c). The loop never waits for a subscriber:
 * a message that does not fit is dropped and counted in that subscriber's
 * `lost` (ipc.h, "Tracing").
 */
#include "utcpd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/ip.h>
#include <netinet/ip6.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

void
events_fmt_addr(const struct utcp_addr *a, char *buf, size_t len)
{
	char ip[INET6_ADDRSTRLEN];

	if (a->family == AF_INET6) {
		inet_ntop(AF_INET6, a->ip, ip, sizeof(ip));
		snprintf(buf, len, "[%s]:%u", ip, a->port);
	} else if (a->family == AF_INET) {
		inet_ntop(AF_INET, a->ip, ip, sizeof(ip));
		snprintf(buf, len, "%s:%u", ip, a->port);
	} else {
		snprintf(buf, len, "*:*");
	}
}

/* Who a socket belongs to, for filters and the event's fields. */
struct owner {
	uint32_t id;
	pid_t pid;
	uint32_t tag;
	const char *comm;
};

static bool
matches(const struct client *c, const struct owner *o)
{
	return c->trace && !c->dead &&
	       (c->trace_pid == 0 || c->trace_pid == o->pid) &&
	       (c->trace_tag == 0 || c->trace_tag == o->tag);
}

/* Send one message (iov) to a subscriber without ever waiting. */
static void
send_to(struct daemon *d, struct client *c, struct iovec *iov, int n)
{
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)n };
	size_t want = 0;
	ssize_t r;

	for (int i = 0; i < n; i++)
		want += iov[i].iov_len;
	r = sendmsg(c->fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (r == (ssize_t)want) {
		d->stats[DST_trace_events]++;
	} else if (r < 0 && (errno == EAGAIN || errno == ENOBUFS ||
			     errno == EMSGSIZE)) {
		c->lost++;
		d->stats[DST_trace_dropped]++;
	} else {
		/* Gone: the loop reaps it (never freed here). */
		ctl_client_kill(d, c);
	}
}

static void
broadcast(struct daemon *d, struct utcp_ipc_event *e, const struct owner *o)
{
	struct client *c;

	TAILQ_FOREACH(c, &d->clients, link) {
		if (!matches(c, o))
			continue;
		struct iovec iov = { .iov_base = e, .iov_len = sizeof(*e) };
		e->lost = c->lost;
		send_to(d, c, &iov, 1);
	}
}

static void
owner_of_rec(const struct rec *r, struct owner *o)
{
	o->id = r->id;
	o->pid = r->pid;
	o->tag = r->tag;
	o->comm = r->comm;
}

/* A socket with no record of its own: an embryo on a listener's queue.
 * It belongs to the listener's program (sock_id 0: it has no id yet). */
static void
owner_of_sock(struct daemon *d, struct utcp_sock *s, struct owner *o)
{
	struct utcp_addr l;
	struct tuple_key k;
	const struct rec *lr;

	memset(o, 0, sizeof(*o));
	o->comm = "";
	if (s == NULL)
		return;
	utcp_sock_names(s, &l, NULL);
	memset(&k, 0, sizeof(k));
	k.family = l.family;
	k.lport = l.port;
	if (l.family != 0 && (lr = rec_by_tuple(d, &k)) != NULL) {
		o->pid = lr->pid;
		o->tag = lr->tag;
		o->comm = lr->comm;
	}
}

static const char *
event_name(int t)
{
	switch (t) {
	case UTCP_EV_STATE: return "state";
	case UTCP_EV_CONNECTED: return "connected";
	case UTCP_EV_READABLE: return "readable";
	case UTCP_EV_WRITABLE: return "writable";
	case UTCP_EV_ACCEPTABLE: return "acceptable";
	case UTCP_EV_ERROR: return "error";
	case UTCP_EV_FREED: return "freed";
	case UTCP_EV_RETRANSMIT: return "retransmit";
	case UTCP_EV_KEEPALIVE: return "keepalive";
	case UTCP_EV_RST_SENT: return "rst-sent";
	case UTCP_EV_RST_RCVD: return "rst-rcvd";
	case UTCP_EV_ZERO_WINDOW: return "zero-window";
	case UTCP_EV_DROP: return "drop";
	}
	return "?";
}

/* The human-readable summary (text) of an engine event. */
static void
describe(const struct utcp_event *ev, char *buf, size_t len)
{
	const char *cause = ev->cause != NULL ? ev->cause : "";
	const char *sp = cause[0] != '\0' ? " (" : "";
	const char *ep = cause[0] != '\0' ? ")" : "";
	int err = ev->err < 0 ? -ev->err : ev->err;

	switch (ev->type) {
	case UTCP_EV_STATE:
		snprintf(buf, len, "%s -> %s%s%s%s",
			 utcp_state_name(ev->old_state),
			 utcp_state_name(ev->new_state), sp, cause, ep);
		break;
	case UTCP_EV_CONNECTED:
		snprintf(buf, len, "connected");
		break;
	case UTCP_EV_ACCEPTABLE:
		snprintf(buf, len, "connection ready to accept");
		break;
	case UTCP_EV_ERROR:
		snprintf(buf, len, "error %s%s%s%s", strerror(err), sp, cause,
			 ep);
		break;
	case UTCP_EV_FREED:
		snprintf(buf, len, "freed");
		break;
	case UTCP_EV_RETRANSMIT:
		snprintf(buf, len, "retransmit seq %u%s%s%s", ev->seq, sp,
			 cause, ep);
		break;
	case UTCP_EV_KEEPALIVE:
		snprintf(buf, len, "keepalive probe %u", ev->arg);
		break;
	case UTCP_EV_RST_SENT:
		snprintf(buf, len, "RST sent%s%s%s", sp, cause, ep);
		break;
	case UTCP_EV_RST_RCVD:
		snprintf(buf, len, "RST received%s%s%s", sp, cause, ep);
		break;
	case UTCP_EV_ZERO_WINDOW:
		snprintf(buf, len, "zero-window probe %u", ev->arg);
		break;
	case UTCP_EV_DROP: {
		const char *desc = utcp_stat_desc((int)ev->arg);
		snprintf(buf, len, "%s", desc != NULL ? desc : "dropped");
		break;
	}
	case UTCP_EV_READABLE:
	case UTCP_EV_WRITABLE:
		buf[0] = '\0';
		break;
	}
}

static int
event_level(enum utcp_event_type t)
{
	switch (t) {
	case UTCP_EV_STATE:
	case UTCP_EV_ERROR:
	case UTCP_EV_RST_SENT:
	case UTCP_EV_RST_RCVD:
	case UTCP_EV_KEEPALIVE:
		return ULOG_INFO;
	default:
		return ULOG_DEBUG;
	}
}

static void
fill_names(struct utcp_ipc_event *e, struct utcp_sock *s)
{
	struct utcp_addr l, r;

	utcp_sock_names(s, &l, &r);
	events_fmt_addr(&l, e->local, sizeof(e->local));
	events_fmt_addr(&r, e->remote, sizeof(e->remote));
}

void
events_cb(void *ctx, const struct utcp_event *ev)
{
	struct daemon *d = ctx;
	struct rec *r = ev->sock != NULL ? utcp_sock_user(ev->sock) : NULL;
	int level = event_level(ev->type);

	/* Data-path wake-ups are the daemon's business, not a trace's. */
	if (ev->type != UTCP_EV_READABLE && ev->type != UTCP_EV_WRITABLE &&
	    !d->tearing_down && (d->ntrace > 0 || ULOG_ON(level))) {
		struct utcp_ipc_event e;
		struct owner o;

		if (r != NULL)
			owner_of_rec(r, &o);
		else
			owner_of_sock(d, ev->sock, &o);
		memset(&e, 0, sizeof(e));
		e.t_us = ev->now != 0 ? ev->now : d->now;
		e.sock_id = o.id;
		e.pid = o.pid;
		e.tag = o.tag;
		e.type = (int32_t)ev->type;
		e.old_state = ev->old_state;
		e.new_state = ev->new_state;
		if (ev->type != UTCP_EV_STATE && ev->sock != NULL)
			e.old_state = e.new_state =
				(int)utcp_sock_state(ev->sock);
		e.err = ev->err < 0 ? -ev->err : ev->err;
		e.arg = ev->arg;
		e.seq = ev->seq;
		e.fd = -1;
		strlcpy(e.comm, o.comm, sizeof(e.comm));
		if (ev->cause != NULL)
			strlcpy(e.cause, ev->cause, sizeof(e.cause));
		if (ev->type == UTCP_EV_DROP) {
			const char *n = utcp_stat_name((int)ev->arg);
			strlcpy(e.name, n != NULL ? n : "?", sizeof(e.name));
		}
		describe(ev, e.text, sizeof(e.text));
		if (ev->sock != NULL)
			fill_names(&e, ev->sock);
		if (ULOG_ON(level)) {
			if (ev->type == UTCP_EV_DROP)
				ulog(level, "drop %s: %s", e.cause, e.text);
			else
				ulog(level, "sock %u %s: %s > %s %s", e.sock_id,
				     event_name(ev->type), e.local, e.remote,
				     e.text);
		}
		if (d->ntrace > 0)
			broadcast(d, &e, &o);
	}
	if (r != NULL)
		rec_on_event(d, r, ev);
}

void
events_call(struct daemon *d, const struct rec *r, const char *fmt, ...)
{
	char text[200];
	va_list ap;

	if (!ULOG_ON(ULOG_INFO))
		return;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	ulog(ULOG_INFO, "sock %u call (pid %ld %s): %s", r != NULL ? r->id : 0,
	     (long)(r != NULL ? r->pid : 0), r != NULL ? r->comm : "", text);
}

void
events_program_call(struct daemon *d, const struct client *c,
		    const struct utcp_req *q)
{
	struct utcp_ipc_event e;
	struct rec *r = q->sock_id != 0 ? rec_find(d, q->sock_id) : NULL;
	struct owner o = { .id = q->sock_id, .pid = c->pid, .tag = c->tag,
			   .comm = c->comm };
	size_t len = q->len < sizeof(q->data) ? q->len : sizeof(q->data);
	const char *name = (const char *)q->data;
	size_t nl = strnlen(name, len);

	if (d->ntrace == 0)
		return;
	if (r != NULL && o.tag == 0)
		o.tag = r->tag;
	memset(&e, 0, sizeof(e));
	e.t_us = d->now;
	e.sock_id = q->sock_id;
	e.pid = c->pid;
	e.tag = o.tag;
	e.type = UTCP_IPC_CALL;
	if (r != NULL && r->sk != NULL) {
		e.old_state = e.new_state = (int)utcp_sock_state(r->sk);
		fill_names(&e, r->sk);
	}
	e.fd = q->arg[0];
	e.result = q->arg[1];
	e.err = q->arg[2];
	e.dur_us = q->arg[3] < 0 ? 0 : (uint32_t)q->arg[3];
	strlcpy(e.comm, c->comm, sizeof(e.comm));
	/* data = "name\0args\0"; either may be cut short by a bad sender. */
	if (nl < len) {
		const char *args = name + nl + 1;
		size_t al = strnlen(args, len - nl - 1);
		if (al >= sizeof(e.text))
			al = sizeof(e.text) - 1;
		memcpy(e.text, args, al);
	}
	memcpy(e.name, name, nl < sizeof(e.name) ? nl : sizeof(e.name) - 1);
	broadcast(d, &e, &o);
}

void
events_sync(struct daemon *d, struct client *c, uint32_t cookie)
{
	struct utcp_ipc_event e;
	struct iovec iov = { .iov_base = &e, .iov_len = sizeof(e) };

	if (!c->trace || c->dead)
		return;
	memset(&e, 0, sizeof(e));
	e.t_us = d->now;
	e.type = UTCP_IPC_SYNC;
	e.arg = cookie;
	e.fd = -1;
	e.lost = c->lost;
	send_to(d, c, &iov, 1);
}

/* The engine-side tuple of a packet: 0, or -1 if it is not TCP/IP. */
static int
packet_tuple(const uint8_t *p, size_t len, int dir, struct tuple_key *k)
{
	const uint8_t *src, *dst, *tcp;
	size_t alen;

	memset(k, 0, sizeof(*k));
	if (len < 20)
		return -1;
	if ((p[0] >> 4) == 4) {
		size_t ihl = (size_t)(p[0] & 0x0f) * 4;
		if (p[9] != IPPROTO_TCP || ihl < 20 || len < ihl + 4)
			return -1;
		k->family = AF_INET;
		src = p + 12;
		dst = p + 16;
		alen = 4;
		tcp = p + ihl;
	} else if ((p[0] >> 4) == 6) {
		/* Extension headers are not followed: the engine sends none
		 * and drops what it cannot read. */
		if (len < 40 + 4 || p[6] != IPPROTO_TCP)
			return -1;
		k->family = AF_INET6;
		src = p + 8;
		dst = p + 24;
		alen = 16;
		tcp = p + 40;
	} else {
		return -1;
	}
	uint16_t sport = (uint16_t)(tcp[0] << 8 | tcp[1]);
	uint16_t dport = (uint16_t)(tcp[2] << 8 | tcp[3]);
	/* IN: kernel → engine, so the engine's end is the destination. */
	k->lport = dir == UTCP_PKT_IN ? dport : sport;
	k->rport = dir == UTCP_PKT_IN ? sport : dport;
	memcpy(k->raddr, dir == UTCP_PKT_IN ? src : dst, alen);
	return 0;
}

void
events_packet(struct daemon *d, const uint8_t *pkt, size_t len, int dir)
{
	struct utcp_ipc_packet h;
	struct tuple_key k;
	struct owner o = { .comm = "" };
	struct rec *r = NULL;
	struct client *c;

	if (d->pcap != NULL) {
		pcapd_packet(d, pkt, len, dir);
		if (d->npkt == 1)
			return; /* no subscriber wants packets */
	}
	if (d->npkt == 0 || len > 65536)
		return;
	if (packet_tuple(pkt, len, dir, &k) == 0) {
		r = rec_by_tuple(d, &k);
		if (r == NULL) {
			/* A handshake or an embryo: its listener's. */
			k.rport = 0;
			memset(k.raddr, 0, sizeof(k.raddr));
			r = rec_by_tuple(d, &k);
			if (r != NULL) {
				owner_of_rec(r, &o);
				o.id = 0;
			}
		} else {
			owner_of_rec(r, &o);
		}
	}
	memset(&h, 0, sizeof(h));
	h.t_us = d->now;
	h.sock_id = o.id;
	h.pid = o.pid;
	h.type = UTCP_IPC_PACKET;
	h.tag = o.tag;
	h.len = (uint32_t)len;
	h.dir = (uint8_t)dir;
	TAILQ_FOREACH(c, &d->clients, link) {
		if (!(c->trace_flags & UTCP_TRACE_PACKETS) || !matches(c, &o))
			continue;
		struct iovec iov[2] = {
			{ .iov_base = &h, .iov_len = sizeof(h) },
			{ .iov_base = (void *)pkt, .iov_len = len },
		};
		h.lost = c->lost;
		send_to(d, c, iov, 2);
	}
}
