/*
 * events.c — the engine's event callback: hand the event to the socket's
 * record (which only marks itself dirty: no engine calls from here), log
 * it, and copy it to every `utcp trace` subscriber.
 */
#include "utcpd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

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

void
events_broadcast(struct daemon *d, const struct utcp_ipc_event *e)
{
	struct client *c;

	TAILQ_FOREACH(c, &d->clients, link) {
		if (!c->trace || c->dead ||
		    (c->trace_pid != 0 && c->trace_pid != e->pid))
			continue;
		ssize_t n = send(c->fd, e, sizeof(*e), MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n == (ssize_t)sizeof(*e)) {
			d->stats[DST_trace_events]++;
		} else if (n < 0 && (errno == EAGAIN || errno == ENOBUFS)) {
			/* A slow reader loses events; the loop never waits. */
			c->trace_dropped++;
			d->stats[DST_trace_dropped]++;
		} else {
			/* Gone: the loop reaps it (never freed here). */
			ctl_client_kill(d, c);
		}
	}
}

static bool
want_text(const struct daemon *d, int level)
{
	return d->ntrace > 0 || ULOG_ON(level);
}

static const char *
event_name(enum utcp_event_type t)
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

/* The human-readable part of an event; "" for the data-path ones. */
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
		snprintf(buf, len, "zero-window probe");
		break;
	case UTCP_EV_DROP: {
		const char *name = utcp_stat_name((int)ev->arg);
		const char *desc = utcp_stat_desc((int)ev->arg);
		if (name == NULL)
			name = "?";
		if (desc == NULL)
			desc = "";
		/* The engine's cause is often the counter's name again. */
		if (strcmp(cause, name) == 0)
			sp = ep = cause = "";
		snprintf(buf, len, "%s: %s%s%s%s", name, desc, sp, cause, ep);
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

void
events_cb(void *ctx, const struct utcp_event *ev)
{
	struct daemon *d = ctx;
	struct rec *r = ev->sock != NULL ? utcp_sock_user(ev->sock) : NULL;
	int level = event_level(ev->type);

	if (ev->type != UTCP_EV_READABLE && ev->type != UTCP_EV_WRITABLE &&
	    !d->tearing_down && want_text(d, level)) {
		struct utcp_ipc_event e;
		char what[160], la[64] = "", ra[64] = "";

		memset(&e, 0, sizeof(e));
		describe(ev, what, sizeof(what));
		if (ev->sock != NULL) {
			struct utcp_addr l, rm;
			utcp_sock_names(ev->sock, &l, &rm);
			events_fmt_addr(&l, la, sizeof(la));
			events_fmt_addr(&rm, ra, sizeof(ra));
		}
		e.t_us = ev->now != 0 ? ev->now : d->now;
		e.sock_id = r != NULL ? r->id : 0;
		e.pid = r != NULL ? r->pid : 0;
		e.type = (int32_t)ev->type;
		e.old_state = ev->old_state;
		e.new_state = ev->new_state;
		if (ev->sock != NULL)
			snprintf(e.text, sizeof(e.text), "%s > %s %s", la, ra,
				 what);
		else
			snprintf(e.text, sizeof(e.text), "%s", what);
		if (ULOG_ON(level))
			ulog(level, "sock %u %s: %s", e.sock_id,
			     event_name(ev->type), e.text);
		if (d->ntrace > 0)
			events_broadcast(d, &e);
	}
	if (r != NULL)
		rec_on_event(d, r, ev);
}

void
events_call(struct daemon *d, const struct rec *r, const char *fmt, ...)
{
	struct utcp_ipc_event e;
	va_list ap;

	if (!want_text(d, ULOG_INFO))
		return;
	memset(&e, 0, sizeof(e));
	e.t_us = d->now;
	e.sock_id = r != NULL ? r->id : 0;
	e.pid = r != NULL ? r->pid : 0;
	e.type = -1;
	e.old_state = e.new_state =
		(r != NULL && r->sk != NULL) ? (int)utcp_sock_state(r->sk) : 0;
	va_start(ap, fmt);
	vsnprintf(e.text, sizeof(e.text), fmt, ap);
	va_end(ap);
	log_info("sock %u call (pid %ld %s): %s", e.sock_id, (long)e.pid,
		 r != NULL ? r->comm : "", e.text);
	if (d->ntrace > 0)
		events_broadcast(d, &e);
}
