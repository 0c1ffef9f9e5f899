/*
 * tracecore.c — the trace subscriber (trace.h): reading the stream,
 * the text and JSON formats, and the pcap of what crossed the TUN.
 *
 * Text, one line per event, strace-like:
 *     0.000105 curl[412] sock 1  connect(3, 198.18.0.1:80) = 0  3.2 ms
 *     0.000120 curl[412] sock 1  SYN-SENT → ESTABLISHED  rcvd SYN|ACK
 * JSON, one object per line, stable keys (README.md lists them):
 *   {"t":0.000120,"pid":412,"comm":"curl","sock":1,"kind":"state",
 *    "from":"SYN-SENT","to":"ESTABLISHED","cause":"rcvd SYN|ACK",...}
 */
#include "trace.h"

#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "utcp.h"

/* RFC 9293 spelling, as the engine's utcp_state_name() (the tool does not
 * link the engine). */
static const char *const state_names[UTCP_NSTATES] = {
    [UTCP_CLOSED] = "CLOSED",	       [UTCP_LISTEN] = "LISTEN",
    [UTCP_SYN_SENT] = "SYN-SENT",      [UTCP_SYN_RECEIVED] = "SYN-RECEIVED",
    [UTCP_ESTABLISHED] = "ESTABLISHED", [UTCP_CLOSE_WAIT] = "CLOSE-WAIT",
    [UTCP_FIN_WAIT_1] = "FIN-WAIT-1",  [UTCP_CLOSING] = "CLOSING",
    [UTCP_LAST_ACK] = "LAST-ACK",      [UTCP_FIN_WAIT_2] = "FIN-WAIT-2",
    [UTCP_TIME_WAIT] = "TIME-WAIT",
};

static const char *
state_name(int s)
{
	return s >= 0 && s < UTCP_NSTATES ? state_names[s] : "?";
}

/* The "kind" of the JSON format. */
static const char *
kind_name(int type)
{
	switch (type) {
	case UTCP_IPC_CALL: return "call";
	case UTCP_EV_STATE: return "state";
	case UTCP_EV_CONNECTED: return "connected";
	case UTCP_EV_READABLE: return "readable";
	case UTCP_EV_WRITABLE: return "writable";
	case UTCP_EV_ACCEPTABLE: return "acceptable";
	case UTCP_EV_ERROR: return "error";
	case UTCP_EV_FREED: return "freed";
	case UTCP_EV_RETRANSMIT: return "retransmit";
	case UTCP_EV_KEEPALIVE: return "keepalive";
	case UTCP_EV_RST_SENT: return "rst_sent";
	case UTCP_EV_RST_RCVD: return "rst_rcvd";
	case UTCP_EV_ZERO_WINDOW: return "zero_window";
	case UTCP_EV_DROP: return "drop";
	}
	return "other";
}

uint64_t
trace_mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int64_t
real_minus_mono(void)
{
	struct timespec r;
	uint64_t m = trace_mono_us();

	clock_gettime(CLOCK_REALTIME, &r);
	return (int64_t)((uint64_t)r.tv_sec * 1000000u +
			 (uint64_t)r.tv_nsec / 1000u) -
	       (int64_t)m;
}

bool
trace_want_color(FILE *f)
{
	const char *nc = getenv("NO_COLOR"), *term = getenv("TERM");

	if (nc != NULL && nc[0] != '\0')
		return false;
	if (term != NULL && strcmp(term, "dumb") == 0)
		return false;
	return isatty(fileno(f)) == 1;
}

int
trace_open(struct trace *t, const char *path, pid_t pid, uint32_t tag,
	   int flags)
{
	struct utcp_req req;
	struct utcp_rep rep;
	int fd, r;

	t->fd = -1;
	t->socks = NULL;
	t->buf = malloc(UTCP_IPC_PACKET_MAX);
	if (t->buf == NULL)
		return -ENOMEM;
	fd = cli_ctl_open(path, NULL);
	if (fd < 0) {
		fprintf(stderr, "%s: no utcpd answers at %s (%s)\n", t->prog,
			path, strerror(-fd));
		free(t->buf);
		t->buf = NULL;
		return fd;
	}
	cli_req_init(&req, UTCP_OP_TRACE);
	req.arg[0] = (int32_t)pid;
	req.arg[1] = (int32_t)tag;
	req.arg[2] = flags;
	r = cli_ctl_call(fd, &req, &rep);
	if (r == 0 && rep.err != 0)
		r = -rep.err;
	if (r < 0) {
		fprintf(stderr, "%s: the daemon at %s refused to trace: %s\n",
			t->prog, path, strerror(-r));
		close(fd);
		free(t->buf);
		t->buf = NULL;
		return r;
	}
	t->fd = fd;
	t->t0 = trace_mono_us();
	t->real_off = real_minus_mono();
	return 0;
}

void
trace_close(struct trace *t)
{
	struct trace_sock *s, *tmp;

	HASH_ITER(hh, t->socks, s, tmp) {
		HASH_DEL(t->socks, s);
		free(s);
	}
	if (t->fd >= 0)
		close(t->fd);
	t->fd = -1;
	free(t->buf);
	t->buf = NULL;
}

static struct trace_sock *
sock_get(struct trace *t, uint32_t id)
{
	struct trace_sock *s;

	HASH_FIND(hh, t->socks, &id, sizeof(id), s);
	if (s != NULL)
		return s;
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return NULL;
	s->id = id;
	s->state = UTCP_CLOSED;
	HASH_ADD(hh, t->socks, id, sizeof(s->id), s);
	return s;
}

bool
trace_quiet(const struct trace *t)
{
	const struct trace_sock *s;

	for (s = t->socks; s != NULL; s = s->hh.next)
		if (!s->freed && s->state != UTCP_CLOSED &&
		    s->state != UTCP_TIME_WAIT)
			return false;
	return true;
}

/* ---- text ---- */

enum { C_OFF, C_DIM, C_STATE, C_CALL, C_BAD, C_WARN, C_DROP };

static const char *
color(const struct trace *t, int c)
{
	static const char *const seq[] = {
	    [C_OFF] = "\033[0m",   [C_DIM] = "\033[2m",
	    [C_STATE] = "\033[36m", [C_CALL] = "",
	    [C_BAD] = "\033[31m",   [C_WARN] = "\033[33m",
	    [C_DROP] = "\033[35m",
	};
	return t->color ? seq[c] : "";
}

static void
fmt_dur(char *buf, size_t len, uint32_t us)
{
	if (us >= 1000)
		snprintf(buf, len, "%.1f ms", us / 1000.0);
	else
		snprintf(buf, len, "%.3f ms", us / 1000.0);
}

static const char *
errname(int e)
{
	const char *n = strerrorname_np(e);

	return n != NULL ? n : "E?";
}

/* A copy of a fixed-size field that may lack its NUL. */
#define FIELD(dst, src)                                                      \
	do {                                                                 \
		memcpy(dst, src, sizeof(src));                               \
		(dst)[sizeof(src)] = '\0';                                   \
	} while (0)

/* "198.18.0.1:80" yes; "0.0.0.0:0", "*:*", "" no. */
static bool
has_port(const char *a)
{
	const char *c = strrchr(a, ':');

	return c != NULL && c[1] != '\0' && strcmp(c + 1, "0") != 0 &&
	       strcmp(c + 1, "*") != 0;
}

static void
print_text(struct trace *t, const struct utcp_ipc_event *e,
	   struct trace_sock *s)
{
	char comm[sizeof(e->comm) + 1], text[sizeof(e->text) + 1];
	char name[sizeof(e->name) + 1], cause[sizeof(e->cause) + 1];
	char who[64], dur[32];
	int col = C_OFF;
	FILE *f = t->out;
	double rel = e->t_us >= t->t0 ? (double)(e->t_us - t->t0) / 1e6
				      : -(double)(t->t0 - e->t_us) / 1e6;

	FIELD(comm, e->comm);
	FIELD(text, e->text);
	FIELD(name, e->name);
	FIELD(cause, e->cause);
	if (e->type == UTCP_EV_CONNECTED || e->type == UTCP_EV_READABLE ||
	    e->type == UTCP_EV_WRITABLE)
		return; /* the state line says it */
	if (e->pid > 0)
		snprintf(who, sizeof(who), "%s[%d]", comm[0] ? comm : "?",
			 e->pid);
	else
		snprintf(who, sizeof(who), "-");
	fprintf(f, "%s%11.6f%s %s", color(t, C_DIM), rel, color(t, C_OFF),
		who);
	/* sock -: an embryo on a listener's queue, not accepted yet */
	if (e->sock_id != 0)
		fprintf(f, " sock %u", e->sock_id);
	else if (e->type != UTCP_EV_DROP)
		fputs(" sock -", f);
	fputs("  ", f);
	switch (e->type) {
	case UTCP_IPC_CALL:
		col = e->err != 0 ? C_WARN : C_CALL;
		fputs(color(t, col), f);
		if (name[0] != '\0')
			fprintf(f, "%s(%s) = ", name, text);
		else
			fprintf(f, "%s = ", text);
		if (e->err != 0)
			fprintf(f, "-1 %s (%s)", errname(e->err),
				strerror(e->err));
		else
			fprintf(f, "%lld", (long long)e->result);
		fputs(color(t, C_OFF), f);
		if (name[0] != '\0') {
			fmt_dur(dur, sizeof(dur), e->dur_us);
			fprintf(f, "  %s", dur);
		}
		break;
	case UTCP_EV_STATE:
		fprintf(f, "%s%s → %s%s", color(t, C_STATE),
			state_name(e->old_state), state_name(e->new_state),
			color(t, C_OFF));
		if (cause[0] != '\0')
			fprintf(f, "  %s", cause);
		break;
	case UTCP_EV_ERROR:
		fprintf(f, "%serror %s (%s)%s", color(t, C_BAD),
			errname(e->err), strerror(e->err), color(t, C_OFF));
		if (cause[0] != '\0')
			fprintf(f, "  %s", cause);
		break;
	case UTCP_EV_RETRANSMIT:
		fprintf(f, "%sretransmit seq %u%s", color(t, C_WARN), e->seq,
			color(t, C_OFF));
		if (cause[0] != '\0')
			fprintf(f, "  %s", cause);
		if (e->arg != 0)
			fprintf(f, " (backoff %u)", e->arg);
		break;
	case UTCP_EV_KEEPALIVE:
		fprintf(f, "%skeepalive probe %u%s", color(t, C_WARN), e->arg,
			color(t, C_OFF));
		break;
	case UTCP_EV_ZERO_WINDOW:
		fprintf(f, "%szero-window probe %u%s  the peer's window is "
			   "closed",
			color(t, C_WARN), e->arg, color(t, C_OFF));
		break;
	case UTCP_EV_RST_SENT:
	case UTCP_EV_RST_RCVD:
		fprintf(f, "%sRST %s%s", color(t, C_BAD),
			e->type == UTCP_EV_RST_SENT ? "sent" : "received",
			color(t, C_OFF));
		if (cause[0] != '\0')
			fprintf(f, "  %s", cause);
		break;
	case UTCP_EV_DROP:
		/* cause holds the counter's whole name; name (16 bytes)
		 * may be cut short */
		fprintf(f, "%sdrop %s%s", color(t, C_DROP),
			cause[0] != '\0' ? cause : name, color(t, C_OFF));
		if (text[0] != '\0')
			fprintf(f, "  %s", text);
		break;
	case UTCP_EV_ACCEPTABLE:
		fprintf(f, "connection ready to accept");
		break;
	case UTCP_EV_FREED:
		fprintf(f, "%sfreed%s", color(t, C_DIM), color(t, C_OFF));
		break;
	default:
		fprintf(f, "%s", text);
		break;
	}
	/* Where a connection goes, once: the first line that knows it. */
	if (s != NULL && !s->named) {
		FIELD(s->local, e->local);
		FIELD(s->remote, e->remote);
		if (has_port(s->local) && has_port(s->remote)) {
			fprintf(f, "  %s[%s > %s]%s", color(t, C_DIM),
				s->local, s->remote, color(t, C_OFF));
			s->named = true;
		}
	}
	fputc('\n', f);
}

/* ---- JSON ---- */

static void
json_str(FILE *f, const char *key, const char *s)
{
	fprintf(f, ",\"%s\":\"", key);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p < 0x20 || *p == 0x7f)
			fprintf(f, "\\u%04x", *p);
		else
			fputc(*p, f);
	}
	fputc('"', f);
}

static void
print_json(struct trace *t, const struct utcp_ipc_event *e)
{
	char comm[sizeof(e->comm) + 1], text[sizeof(e->text) + 1];
	char name[sizeof(e->name) + 1], cause[sizeof(e->cause) + 1];
	char local[sizeof(e->local) + 1], remote[sizeof(e->remote) + 1];
	FILE *f = t->out;
	int64_t rel = (int64_t)(e->t_us - t->t0);

	FIELD(comm, e->comm);
	FIELD(text, e->text);
	FIELD(name, e->name);
	FIELD(cause, e->cause);
	FIELD(local, e->local);
	FIELD(remote, e->remote);
	fprintf(f, "{\"t\":%s%lld.%06lld,\"t_us\":%llu,\"pid\":%d",
		rel < 0 ? "-" : "", (long long)(rel < 0 ? -rel : rel) / 1000000,
		(long long)(rel < 0 ? -rel : rel) % 1000000,
		(unsigned long long)e->t_us, e->pid);
	json_str(f, "comm", comm);
	fprintf(f, ",\"sock\":%u", e->sock_id);
	json_str(f, "kind", kind_name(e->type));
	switch (e->type) {
	case UTCP_IPC_CALL:
		json_str(f, "call", name[0] != '\0' ? name : text);
		json_str(f, "args", name[0] != '\0' ? text : "");
		fprintf(f, ",\"fd\":%d,\"ret\":%lld", e->fd,
			e->err != 0 ? -1LL : (long long)e->result);
		if (e->err != 0)
			json_str(f, "errno", errname(e->err));
		fprintf(f, ",\"dur_ms\":%.3f", e->dur_us / 1000.0);
		break;
	case UTCP_EV_STATE:
		json_str(f, "from", state_name(e->old_state));
		json_str(f, "to", state_name(e->new_state));
		json_str(f, "cause", cause);
		break;
	case UTCP_EV_ERROR:
		json_str(f, "errno", errname(e->err));
		json_str(f, "cause", cause);
		break;
	case UTCP_EV_RETRANSMIT:
		fprintf(f, ",\"seq\":%u,\"backoff\":%u", e->seq, e->arg);
		json_str(f, "cause", cause);
		break;
	case UTCP_EV_KEEPALIVE:
	case UTCP_EV_ZERO_WINDOW:
		fprintf(f, ",\"probe\":%u", e->arg);
		break;
	case UTCP_EV_RST_SENT:
	case UTCP_EV_RST_RCVD:
		fprintf(f, ",\"seq\":%u", e->seq);
		json_str(f, "cause", cause);
		break;
	case UTCP_EV_DROP:
		json_str(f, "counter", cause[0] != '\0' ? cause : name);
		json_str(f, "cause", cause);
		break;
	default:
		break;
	}
	if (e->type != UTCP_EV_STATE && e->type != UTCP_IPC_CALL &&
	    e->sock_id != 0)
		json_str(f, "state", state_name(e->new_state));
	if (local[0] != '\0')
		json_str(f, "local", local);
	if (remote[0] != '\0')
		json_str(f, "remote", remote);
	json_str(f, "text", text);
	fputs("}\n", f);
}

/* ---- the stream ---- */

static void
note_lost(struct trace *t, uint64_t lost)
{
	if (lost > t->lost)
		t->lost = lost;
}

static void
say_lost(struct trace *t)
{
	if (t->lost <= t->lost_said || t->out == NULL)
		return;
	uint64_t n = t->lost - t->lost_said;
	t->lost_said = t->lost;
	if (t->json)
		fprintf(t->out,
			"{\"t\":%.6f,\"kind\":\"lost\",\"count\":%llu}\n",
			(double)(trace_mono_us() - t->t0) / 1e6,
			(unsigned long long)n);
	else
		fprintf(t->out,
			"%s(%llu trace messages lost: this reader was too "
			"slow for the daemon)%s\n",
			color(t, C_WARN), (unsigned long long)n,
			color(t, C_OFF));
}

static void
on_event(struct trace *t, struct utcp_ipc_event *e)
{
	struct trace_sock *s = NULL;

	note_lost(t, e->lost);
	if (e->type == UTCP_IPC_SYNC) {
		t->sync_seen = e->arg;
		return;
	}
	t->events++;
	if (e->sock_id != 0 && (s = sock_get(t, e->sock_id)) != NULL) {
		if (e->type == UTCP_EV_FREED)
			s->freed = true;
		else if (e->type == UTCP_EV_STATE || e->type == UTCP_IPC_CALL)
			s->state = e->new_state;
	}
	if (t->out == NULL)
		return;
	say_lost(t);
	if (t->json)
		print_json(t, e);
	else
		print_text(t, e, s);
}

static void
on_packet(struct trace *t, const struct utcp_ipc_packet *p, size_t n)
{
	note_lost(t, p->lost);
	if (n != sizeof(*p) + p->len)
		return; /* cut short: never write a broken record */
	t->packets++;
	if (t->pcap == NULL)
		return;
	int r = utcp_pcap_write(t->pcap, (uint64_t)((int64_t)p->t_us + t->real_off),
				(const uint8_t *)p + sizeof(*p), p->len);
	if (r < 0 && t->write_err == 0)
		t->write_err = r;
}

static void
on_message(struct trace *t, size_t n)
{
	const size_t head = offsetof(struct utcp_ipc_event, type) + sizeof(int32_t);
	int32_t type;

	if (n < head)
		return;
	memcpy(&type, t->buf + offsetof(struct utcp_ipc_event, type),
	       sizeof(type));
	if (type == UTCP_IPC_PACKET) {
		if (n >= sizeof(struct utcp_ipc_packet))
			on_packet(t, (const struct utcp_ipc_packet *)t->buf, n);
		return;
	}
	/* An event; a shorter one (an older daemon) reads as zeros past
	 * its end. */
	if (n < offsetof(struct utcp_ipc_event, tag) ||
	    n > sizeof(struct utcp_ipc_event))
		return;
	struct utcp_ipc_event e;
	memset(&e, 0, sizeof(e));
	memcpy(&e, t->buf, n);
	on_event(t, &e);
}

int
trace_drain(struct trace *t)
{
	if (t->fd < 0 || t->eof)
		return -ECONNRESET;
	for (;;) {
		ssize_t n = recv(t->fd, t->buf, UTCP_IPC_PACKET_MAX,
				 MSG_DONTWAIT | MSG_TRUNC);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			t->eof = true;
			break;
		}
		if (n == 0) {
			t->eof = true;
			break;
		}
		if ((size_t)n > UTCP_IPC_PACKET_MAX)
			continue; /* larger than anything we know */
		on_message(t, (size_t)n);
	}
	if (t->out != NULL && fflush(t->out) != 0 && t->write_err == 0)
		t->write_err = -errno;
	if (t->pcap != NULL) {
		int r = utcp_pcap_flush(t->pcap);
		if (r < 0 && t->write_err == 0)
			t->write_err = r;
	}
	return t->eof ? -ECONNRESET : 0;
}

int
trace_sync(struct trace *t, int timeout_ms)
{
	uint64_t end = trace_mono_us() + (uint64_t)timeout_ms * 1000u;
	struct utcp_req req;

	while (!t->eof) {
		uint64_t now = trace_mono_us(), resend;
		if (now >= end)
			return -ETIMEDOUT;
		/* Ask (again: the answer is dropped if the stream is full,
		 * and reading now makes room). */
		cli_req_init(&req, UTCP_OP_TRACE_SYNC);
		req.arg[0] = (int32_t)++t->sync_sent;
		if (send(t->fd, &req, sizeof(req), MSG_DONTWAIT | MSG_NOSIGNAL) < 0 &&
		    errno != EAGAIN)
			return -errno;
		resend = now + 250000u;
		while (!t->eof && t->sync_seen != t->sync_sent) {
			struct pollfd p = {.fd = t->fd, .events = POLLIN};
			now = trace_mono_us();
			if (now >= resend || now >= end)
				break;
			uint64_t until = resend < end ? resend : end;
			if (poll(&p, 1, (int)((until - now + 999) / 1000)) < 0 &&
			    errno != EINTR)
				return -errno;
			trace_drain(t);
		}
		if (t->sync_seen == t->sync_sent)
			return 0;
	}
	return -ECONNRESET;
}

void
trace_finish(struct trace *t)
{
	say_lost(t);
	if (t->out != NULL)
		fflush(t->out);
	if (t->lost > 0 && (t->out == NULL || t->out == stdout))
		fprintf(stderr,
			"%s: the daemon dropped %llu trace messages: this "
			"reader was too slow\n",
			t->prog, (unsigned long long)t->lost);
}
