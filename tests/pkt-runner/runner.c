/*
 * runner.c — runs packet scripts against the engine core at virtual time.
 *
 *   pkt-runner [-v] [-k] script.pkt ...
 *
 * Each script runs in a forked child with a fresh struct utcp_stack, so a
 * crash or a hang fails that script only. The language, the addresses, the
 * engine configuration and the matching rules are in tests/pkt/README.
 *
 * The clock: script time 0 is engine time BASE_TIME. Before an inbound
 * segment or a call at time t, the runner fires every engine deadline up
 * to t (utcp_poll at exactly each deadline), so timers go off at their
 * virtual instant; a 2-hour keepalive idle is a handful of polls.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "script.h"
#include "utcp.h"
#include "wire.h"

/* Fixed addresses (tests/pkt/README, "Addresses"). */
static const uint8_t LOCAL_IP[4] = {192, 168, 0, 1};
static const uint8_t REMOTE_IP[4] = {192, 0, 2, 1};
#define BIND_PORT 8080      /* bind(fd, ..., ...) */
#define CONNECT_PORT 8080   /* connect(fd, ..., ...) */
#define PASSIVE_RPORT 40000 /* the remote port of the default passive flow */
#define REMOTE_ISN 2000000000u /* the script's sequence 0 on the wire */

#define BASE_TIME UTCP_SEC(10)
#define DEFAULT_TOL 5000 /* µs */
#define DRAIN_US (3LL * 3600 * 1000000) /* after the script: past TIME-WAIT */
#define MAX_STEPS 2000000 /* polls per script before "runaway timers" */
#define SCRIPT_ALARM 30   /* real seconds per script */

#define MAXFD 64
#define MAXFLOWS 32
#define MAXTS 64

struct outpkt {
	struct outpkt *next;
	int64_t t;
	size_t len;
	uint8_t data[];
};

struct flow {
	uint16_t lport, rport;
	bool lisn_known;
	uint32_t lisn; /* engine ISN */
	uint32_t risn; /* wire value of the script's remote sequence 0 */
	uint32_t ts_script[MAXTS], ts_live[MAXTS];
	int nts;
	bool have_ts;
	uint32_t last_ts;
	uint32_t isns[8]; /* every engine ISN learned on this flow */
	int nisns;
};

struct fdent {
	bool used;
	struct utcp_sock *s;
	bool nonblock;
	unsigned acceptable; /* UTCP_EV_ACCEPTABLE minus accept() */
	uint64_t rd_off, wr_off; /* application stream offsets */
};

enum { DONE, BLOCKED };

struct pending {
	bool active;
	struct event *ev;
	int64_t lo, hi;  /* when it must return (tolerance included) */
	int64_t wake;    /* poll() timeout instant, or INT64_MAX */
	bool started;    /* connect: SYN sent */
	size_t done;     /* write: bytes queued so far */
};

struct runner {
	const char *path;
	bool verbose;
	struct utcp_config cfg;
	struct utcp_stack *st;
	int64_t now;    /* µs since script start */
	int64_t last_t; /* actual time of the previous event */
	int64_t tol;
	uint32_t remote_isn;
	bool allow_trailing, strict_psh;
	struct outpkt *qhead, **qtail;
	struct fdent fds[MAXFD];
	struct flow flows[MAXFLOWS];
	int nflows;
	int active_flow; /* flow of the last connect(), or -1 */
	uint16_t bind_port;
	uint16_t ip_id;
	struct pending pend;
	unsigned long steps;
	struct event *cur; /* event being run, for messages */
	bool failed;
	char msg[16384];
};

/* ---- messages ---- */

static void failf(struct runner *r, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void failf(struct runner *r, int line, const char *fmt, ...)
{
	va_list ap;
	size_t n;

	if (r->failed)
		return;
	r->failed = true;
	if (line > 0)
		n = (size_t)snprintf(r->msg, sizeof(r->msg), "%s:%d: ", r->path,
				     line);
	else
		n = (size_t)snprintf(r->msg, sizeof(r->msg), "%s: ", r->path);
	va_start(ap, fmt);
	vsnprintf(r->msg + n, sizeof(r->msg) - n, fmt, ap);
	va_end(ap);
}

static int cur_line(struct runner *r)
{
	return r->cur ? r->cur->line : 0;
}

static double secs(int64_t us)
{
	return (double)us / 1e6;
}

static utcp_time_t etime(struct runner *r)
{
	return BASE_TIME + (utcp_time_t)r->now;
}

/* ---- payload patterns: every byte is a function of its stream offset ---- */

static uint8_t rpat(uint64_t off) /* peer -> engine */
{
	return (uint8_t)(off % 251);
}

static uint8_t lpat(uint64_t off) /* application -> peer */
{
	return (uint8_t)((off % 239) ^ 0xa5);
}

/* ---- flows ---- */

static struct flow *flow_by_ports(struct runner *r, uint16_t lport,
				  uint16_t rport)
{
	for (int i = 0; i < r->nflows; i++)
		if (r->flows[i].lport == lport && r->flows[i].rport == rport)
			return &r->flows[i];
	return NULL;
}

static struct flow *flow_new(struct runner *r, uint16_t lport, uint16_t rport)
{
	struct flow *f;

	if (r->nflows == MAXFLOWS) {
		failf(r, cur_line(r), "too many flows");
		return NULL;
	}
	f = &r->flows[r->nflows++];
	memset(f, 0, sizeof(*f));
	f->lport = lport;
	f->rport = rport;
	f->risn = r->remote_isn;
	return f;
}

/* The flow a segment line means: "@P" is the flow whose remote port is P;
 * otherwise the flow of the last connect(), else the passive flow from
 * PASSIVE_RPORT. Created on first use for inbound segments. */
static struct flow *flow_for(struct runner *r, int port, bool create)
{
	struct flow *f;

	if (port == 0 && r->active_flow >= 0)
		return &r->flows[r->active_flow];
	if (port == 0)
		port = PASSIVE_RPORT;
	for (int i = r->nflows - 1; i >= 0; i--)
		if (r->flows[i].rport == port)
			return &r->flows[i];
	if (!create)
		return NULL;
	f = flow_new(r, r->bind_port, (uint16_t)port);
	return f;
}

static uint32_t lbase(const struct flow *f)
{
	return f->lisn_known ? f->lisn : 0;
}

/* ---- printing segments in script terms ---- */

static size_t fmt_opts(char *b, size_t cap, const struct tcp_opt *o, int n,
		       uint32_t sack_base)
{
	size_t k = 0;

#define OUT(...)                                                             \
	do {                                                                 \
		if (k < cap)                                                 \
			k += (size_t)snprintf(b + k, cap - k, __VA_ARGS__); \
	} while (0)
	OUT("<");
	for (int i = 0; i < n; i++) {
		if (i)
			OUT(",");
		switch (o[i].kind) {
		case OPT_EOL:
			OUT("eol");
			break;
		case OPT_NOP:
			OUT("nop");
			break;
		case OPT_MSS:
			OUT("mss %u", o[i].val);
			break;
		case OPT_WSCALE:
			OUT("wscale %u", o[i].val);
			break;
		case OPT_SACKOK:
			OUT("sackOK");
			break;
		case OPT_SACK:
			OUT("sack");
			for (int j = 0; j < o[i].nsack; j++)
				OUT(" %u:%u", o[i].sack[j][0] - sack_base,
				    o[i].sack[j][1] - sack_base);
			break;
		case OPT_TS:
			OUT("TS val %u ecr %u", o[i].val, o[i].ecr);
			break;
		case OPT_GENERIC:
			OUT("opt");
			for (int j = 0; j < o[i].nbytes; j++)
				OUT(" %u", o[i].bytes[j]);
			break;
		case OPT_RAW:
			OUT("rawbytes");
			for (int j = 0; j < o[i].nbytes; j++)
				OUT(" %u", o[i].bytes[j]);
			break;
		}
	}
	OUT(">");
#undef OUT
	return k < cap ? k : cap;
}

/* A segment's flags, seq:end(len), ack, window and options, with seq
 * relative to sb and ack to ab; the length written. */
static size_t fmt_seg(const struct seg *s, uint32_t sb, uint32_t ab, char *b,
		      size_t cap)
{
	char fl[12];
	size_t k;

	k = (size_t)snprintf(b, cap, "%s %u:%u(%zu)", wire_flags_str(s->flags, fl),
			     s->seq - sb, s->seq - sb + (uint32_t)s->len,
			     s->len);
	if (s->flags & TH_ACK && k < cap)
		k += (size_t)snprintf(b + k, cap - k, " ack %u", s->ack - ab);
	if (k < cap)
		k += (size_t)snprintf(b + k, cap - k, " win %u", s->win);
	if (s->nopts && k + 1 < cap) {
		b[k++] = ' ';
		k += fmt_opts(b + k, cap - k, s->opts, s->nopts, ab);
	}
	return k;
}

/* An outbound (engine) segment, relative to its flow when known. */
static void fmt_out(struct runner *r, const struct seg *s, char *b, size_t cap)
{
	struct flow *f = flow_by_ports(r, s->sport, s->dport);
	size_t k = fmt_seg(s, f ? lbase(f) : 0, f ? f->risn : 0, b, cap);

	if (k < cap)
		snprintf(b + k, cap - k, "  [%u > %u%s%s%s]", s->sport, s->dport,
			 s->csum_ok ? "" : ", BAD TCP CHECKSUM",
			 s->ip_csum_ok ? "" : ", BAD IP CHECKSUM",
			 s->opts_bad ? ", MALFORMED OPTIONS" : "");
}

static void fmt_in(struct runner *r, const struct seg *s, char *b, size_t cap)
{
	struct flow *f = flow_by_ports(r, s->dport, s->sport);

	fmt_seg(s, f ? f->risn : 0, f ? lbase(f) : 0, b, cap);
}

/* ---- engine callbacks ---- */

static void on_output(void *ctx, const uint8_t *pkt, size_t len)
{
	struct runner *r = ctx;
	struct outpkt *p = malloc(sizeof(*p) + len);

	if (!p) {
		perror("malloc");
		exit(2);
	}
	p->next = NULL;
	p->t = r->now;
	p->len = len;
	memcpy(p->data, pkt, len);
	*r->qtail = p;
	r->qtail = &p->next;
	if (r->verbose) {
		struct seg s;
		const char *why;
		char buf[512];

		if (wire_parse(pkt, len, &s, &why) == 0) {
			fmt_out(r, &s, buf, sizeof(buf));
			fprintf(stderr, "  %10.6f out  > %s\n", secs(r->now), buf);
		} else {
			fprintf(stderr, "  %10.6f out  unparsable (%s)\n",
				secs(r->now), why);
		}
	}
}

static int fd_of(struct runner *r, const struct utcp_sock *s)
{
	for (int i = 0; i < MAXFD; i++)
		if (r->fds[i].used && r->fds[i].s == s)
			return i;
	return -1;
}

static const char *ev_names[] = {
	"state", "connected", "readable", "writable", "acceptable", "error",
	"freed", "retransmit", "keepalive", "rst-sent", "rst-rcvd",
	"zero-window", "drop",
};

static void on_event(void *ctx, const struct utcp_event *ev)
{
	struct runner *r = ctx;
	int fd = ev->sock ? fd_of(r, ev->sock) : -1;

	if (r->verbose) {
		fprintf(stderr, "  %10.6f ev   %s", secs(r->now),
			(unsigned)ev->type < sizeof(ev_names) / sizeof(ev_names[0])
				? ev_names[ev->type]
				: "?");
		if (ev->type == UTCP_EV_STATE)
			fprintf(stderr, " %s -> %s", utcp_state_name(ev->old_state),
				utcp_state_name(ev->new_state));
		if (ev->type == UTCP_EV_DROP && ev->arg < UTCP_NSTATS)
			fprintf(stderr, " %s", utcp_stat_name((int)ev->arg));
		if (ev->type == UTCP_EV_KEEPALIVE)
			fprintf(stderr, " probe %u", ev->arg);
		if (ev->err)
			fprintf(stderr, " err %d", ev->err);
		if (ev->cause)
			fprintf(stderr, " (%s)", ev->cause);
		if (fd >= 0)
			fprintf(stderr, " fd %d", fd);
		fprintf(stderr, "\n");
	}
	if (ev->type == UTCP_EV_ACCEPTABLE && fd >= 0)
		r->fds[fd].acceptable++;
	if (ev->type == UTCP_EV_FREED && fd >= 0) {
		/* The application still holds it: the engine must keep it
		 * until utcp_close(). */
		failf(r, cur_line(r),
		      "engine freed the socket behind fd %d before close()", fd);
		r->fds[fd].s = NULL;
	}
}

/* ---- the clock ---- */

static void check_pending_late(struct runner *r)
{
	if (r->pend.active && r->now > r->pend.hi)
		failf(r, r->pend.ev->line,
		      "blocking %s() still blocked at %.6f; expected it to "
		      "return by %.6f",
		      r->pend.ev->u.call.name, secs(r->now), secs(r->pend.hi));
}

static void retry_pending(struct runner *r);

static void unexpected_out(struct runner *r, int line, const char *when)
{
	struct seg s;
	const char *why;
	char buf[512];

	if (wire_parse(r->qhead->data, r->qhead->len, &s, &why) == 0)
		fmt_out(r, &s, buf, sizeof(buf));
	else
		snprintf(buf, sizeof(buf), "unparsable packet (%s)", why);
	failf(r, line, "unexpected outbound packet %s: > %s (sent at %.6f)",
	      when, buf, secs(r->qhead->t));
}

/*
 * Move virtual time to `until`, firing each engine deadline on the way at
 * its exact instant. With stop_on_out, return as soon as a packet is
 * queued (a '>' line is waiting for it); otherwise any packet emitted on
 * the way is unexpected.
 */
static void advance(struct runner *r, int64_t until, bool stop_on_out)
{
	for (;;) {
		int64_t next = INT64_MAX;
		utcp_time_t d;

		if (r->failed || (stop_on_out && r->qhead))
			return;
		d = utcp_next_deadline(r->st);
		if (d != UTCP_TIME_NEVER)
			next = d < BASE_TIME ? 0 : (int64_t)(d - BASE_TIME);
		if (r->pend.active && r->pend.wake < next)
			next = r->pend.wake;
		if (next < r->now)
			next = r->now;
		if (next > until)
			break;
		if (++r->steps > MAX_STEPS) {
			failf(r, cur_line(r),
			      "runaway timers: %d polls and the engine deadline "
			      "is still %.6f (now %.6f)",
			      MAX_STEPS, secs(next), secs(r->now));
			return;
		}
		r->now = next;
		utcp_poll(r->st, etime(r));
		retry_pending(r);
		check_pending_late(r);
		if (!stop_on_out && r->qhead && !r->failed) {
			unexpected_out(r, cur_line(r), "while time advanced");
			return;
		}
	}
	if (until != INT64_MAX && until > r->now)
		r->now = until;
	check_pending_late(r);
}

/* ---- stack set-up ---- */

static void config_defaults(struct runner *r)
{
	struct utcp_config *c = &r->cfg;

	utcp_config_defaults(c);
	c->local4.family = AF_INET;
	memcpy(c->local4.ip, LOCAL_IP, 4);
	c->mtu = 1500;
	for (int i = 0; i < 16; i++)
		c->isn_key[i] = (uint8_t)(0x11 * (i + 1));
	c->seed = 0x7574637020706b74ULL; /* "utcp pkt" */
	c->ctx = r;
	c->output = on_output;
	c->event = on_event;
}

static int set_config(struct runner *r, const char *kv)
{
	char key[32];
	double v;
	struct utcp_config *c = &r->cfg;

	if (sscanf(kv, "%31[a-z_0-9]=%lf", key, &v) != 2)
		return -1;
#define SECS(name)                                                           \
	if (strcmp(key, #name) == 0) {                                       \
		c->name = (utcp_time_t)(v * 1e6 + 0.5);                      \
		return 0;                                                    \
	}
#define NUM(name)                                                            \
	if (strcmp(key, #name) == 0) {                                       \
		c->name = (unsigned)v;                                       \
		return 0;                                                    \
	}
	SECS(rto_initial)
	SECS(rto_min)
	SECS(rto_max)
	SECS(delack)
	SECS(time_wait)
	SECS(fin_timeout)
	NUM(mtu)
	NUM(sndbuf)
	NUM(rcvbuf)
	NUM(syn_retries)
	NUM(synack_retries)
	NUM(retries2)
	NUM(keepidle)
	NUM(keepintvl)
	NUM(keepcnt)
	NUM(max_backlog)
#undef SECS
#undef NUM
	return -1;
}

static bool ensure_stack(struct runner *r)
{
	if (r->st)
		return true;
	r->st = utcp_stack_new(&r->cfg);
	if (!r->st)
		failf(r, cur_line(r), "utcp_stack_new failed");
	return r->st != NULL;
}

/* ---- inbound segments ---- */

static uint32_t ts_ecr_live(struct flow *f, uint32_t script)
{
	/* packetdrill's rule: an ecr equal to a TS val the script wrote on
	 * an outbound line echoes the live value that line matched. */
	for (int i = f->nts - 1; i >= 0; i--)
		if (f->ts_script[i] == script)
			return f->ts_live[i];
	if (script == 0 || !f->have_ts)
		return script;
	return f->last_ts; /* otherwise: the engine's latest TS val */
}

static void run_inbound(struct runner *r, struct event *ev)
{
	const struct seg_spec *sp = &ev->u.seg;
	struct flow *f = flow_for(r, sp->port, true);
	struct seg s;
	uint8_t pkt[70000];
	uint8_t *payload = NULL;
	size_t len;

	if (!f)
		return;
	memset(&s, 0, sizeof(s));
	memcpy(s.src, REMOTE_IP, 4);
	memcpy(s.dst, LOCAL_IP, 4);
	s.sport = f->rport;
	s.dport = f->lport;
	s.seq = f->risn + sp->start;
	s.ack = sp->has_ack ? lbase(f) + sp->ack : 0;
	s.flags = sp->flags;
	s.win = sp->has_win ? (uint16_t)sp->win : 65535;
	s.urp = (uint16_t)sp->urp;
	for (int i = 0; i < sp->nopts; i++) {
		s.opts[i] = sp->opts[i];
		if (s.opts[i].kind == OPT_SACK)
			for (int b = 0; b < s.opts[i].nsack; b++) {
				s.opts[i].sack[b][0] += lbase(f);
				s.opts[i].sack[b][1] += lbase(f);
			}
		if (s.opts[i].kind == OPT_TS)
			s.opts[i].ecr = ts_ecr_live(f, s.opts[i].ecr);
	}
	s.nopts = sp->nopts;
	s.len = sp->end - sp->start;
	if (s.len) {
		/* Data starts after the SYN's sequence number. */
		int64_t off = (int64_t)sp->start - 1 + ((sp->flags & TH_SYN) ? 1 : 0);

		payload = malloc(s.len);
		if (!payload) {
			perror("malloc");
			exit(2);
		}
		for (size_t i = 0; i < s.len; i++)
			payload[i] = rpat((uint64_t)(off + (int64_t)i) & 0xffffffff);
		s.payload = payload;
	}
	if (sp->has_dst)
		memcpy(s.dst, sp->dst, 4);
	if (sp->has_src)
		memcpy(s.src, sp->src, 4);
	len = wire_build(pkt, sizeof(pkt), &s, ++r->ip_id, &sp->dmg);
	if (!len) {
		failf(r, ev->line, "segment does not fit (options over 40 bytes?)");
		free(payload);
		return;
	}
	if (r->verbose) {
		char buf[512];

		fmt_in(r, &s, buf, sizeof(buf));
		fprintf(stderr, "  %10.6f in   < %s\n", secs(r->now), buf);
	}
	utcp_input(r->st, pkt, len, etime(r));
	free(payload);
	retry_pending(r);
}

/* ---- outbound segments ---- */

static bool opts_match(struct runner *r, struct flow *f,
		       const struct seg_spec *sp, const struct seg *s,
		       char *why, size_t cap)
{
	if (sp->nopts != s->nopts) {
		snprintf(why, cap, "%d options, expected %d", s->nopts, sp->nopts);
		return false;
	}
	for (int i = 0; i < sp->nopts; i++) {
		const struct tcp_opt *e = &sp->opts[i], *a = &s->opts[i];
		bool ok = e->kind == a->kind;

		if (ok) {
			switch (e->kind) {
			case OPT_MSS:
			case OPT_WSCALE:
				ok = e->val == a->val;
				break;
			case OPT_SACK:
				ok = e->nsack == a->nsack;
				for (int b = 0; ok && b < e->nsack; b++)
					ok = e->sack[b][0] == a->sack[b][0] - f->risn &&
					     e->sack[b][1] == a->sack[b][1] - f->risn;
				break;
			case OPT_TS:
				/* TS val is the engine's clock: not checked. */
				ok = e->ecr == a->ecr;
				break;
			case OPT_GENERIC:
			case OPT_RAW:
				ok = e->nbytes == a->nbytes &&
				     memcmp(e->bytes, a->bytes, (size_t)e->nbytes) == 0;
				break;
			default:
				break;
			}
		}
		if (!ok) {
			snprintf(why, cap, "option %d differs", i + 1);
			return false;
		}
	}
	(void)r;
	return true;
}

/* Compare the live segment with the script's; on a match, learn the ISN
 * and TS values. Returns false with a reason. */
static bool seg_match(struct runner *r, const struct seg_spec *sp,
		      const struct seg *s, char *why, size_t cap)
{
	struct flow *f = flow_for(r, sp->port, false);
	uint8_t mask = r->strict_psh ? 0xff : (uint8_t)~TH_PSH;
	uint32_t lisn;

	if (!s->ip_csum_ok || !s->csum_ok) {
		snprintf(why, cap, "bad %s checksum", s->ip_csum_ok ? "TCP" : "IP");
		return false;
	}
	if (s->opts_bad) {
		snprintf(why, cap, "malformed TCP options");
		return false;
	}
	if (memcmp(s->src, LOCAL_IP, 4) || memcmp(s->dst, REMOTE_IP, 4)) {
		snprintf(why, cap, "addresses %u.%u.%u.%u > %u.%u.%u.%u", s->src[0],
			 s->src[1], s->src[2], s->src[3], s->dst[0], s->dst[1],
			 s->dst[2], s->dst[3]);
		return false;
	}
	if (!f) {
		snprintf(why, cap, "no such flow (no segment or connect() yet)");
		return false;
	}
	if (s->sport != f->lport || s->dport != f->rport) {
		snprintf(why, cap, "ports %u > %u, expected %u > %u", s->sport,
			 s->dport, f->lport, f->rport);
		return false;
	}
	if ((s->flags & mask) != (sp->flags & mask)) {
		snprintf(why, cap, "flags differ");
		return false;
	}
	lisn = lbase(f);
	if ((sp->flags & TH_SYN) && !f->lisn_known)
		lisn = s->seq - sp->start; /* learn the engine's ISN */
	if (s->seq - lisn != sp->start) {
		snprintf(why, cap, "sequence %u, expected %u%s", s->seq - lisn,
			 sp->start,
			 (sp->flags & TH_SYN) ? " (a new ISN? see %relearn_isn)" : "");
		return false;
	}
	if (s->len != sp->end - sp->start) {
		snprintf(why, cap, "length %zu, expected %u", s->len,
			 sp->end - sp->start);
		return false;
	}
	if (sp->has_ack && s->ack - f->risn != sp->ack) {
		snprintf(why, cap, "ack %u, expected %u", s->ack - f->risn, sp->ack);
		return false;
	}
	if (sp->has_win && s->win != sp->win) {
		snprintf(why, cap, "window %u, expected %u", s->win, sp->win);
		return false;
	}
	if (sp->has_urp && s->urp != sp->urp) {
		snprintf(why, cap, "urgent pointer %u, expected %u", s->urp, sp->urp);
		return false;
	}
	if (sp->has_opts && !opts_match(r, f, sp, s, why, cap))
		return false;
	/* Payload bytes are the application's stream at that offset. */
	if (s->len) {
		uint32_t first = s->seq - lisn - 1 + ((s->flags & TH_SYN) ? 1 : 0);

		for (size_t i = 0; i < s->len; i++)
			if (s->payload[i] != lpat(first + i)) {
				snprintf(why, cap,
					 "payload byte at stream offset %zu is "
					 "0x%02x, the application wrote 0x%02x",
					 (size_t)first + i, s->payload[i],
					 lpat(first + i));
				return false;
			}
	}
	/* RFC 7323 §5.4: TSval never goes backwards on a connection. */
	for (int i = 0; i < s->nopts; i++) {
		if (s->opts[i].kind != OPT_TS)
			continue;
		if (f->have_ts && (int32_t)(s->opts[i].val - f->last_ts) < 0) {
			snprintf(why, cap, "TS val %u went backwards (last %u)",
				 s->opts[i].val, f->last_ts);
			return false;
		}
	}
	/* A match: remember what it taught us. */
	if ((sp->flags & TH_SYN) && !f->lisn_known) {
		f->lisn = lisn;
		f->lisn_known = true;
		if (f->nisns < 8)
			f->isns[f->nisns++] = lisn;
		if (r->verbose)
			fprintf(stderr, "  engine ISN %u on flow %u>%u\n", lisn,
				f->lport, f->rport);
	}
	for (int i = 0; i < s->nopts; i++) {
		if (s->opts[i].kind != OPT_TS)
			continue;
		f->have_ts = true;
		f->last_ts = s->opts[i].val;
		if (sp->has_opts && i < sp->nopts && sp->opts[i].kind == OPT_TS &&
		    !sp->ts_val_any[i]) {
			int k = f->nts < MAXTS ? f->nts++ : MAXTS - 1;

			f->ts_script[k] = sp->opts[i].val;
			f->ts_live[k] = s->opts[i].val;
		}
	}
	return true;
}

static void run_outbound(struct runner *r, struct event *ev, int64_t lo,
			 int64_t hi)
{
	struct outpkt *p;
	struct seg s;
	const char *perr;
	char why[256], buf[512];

	/* ">?": a packet the engine may or may not send (RFC leaves it open,
	 * e.g. an immediate ACK in quick-ACK mode). Matched only if it has
	 * already been sent and matches; never waited for. */
	if (ev->u.seg.optional) {
		if (!r->qhead || wire_parse(r->qhead->data, r->qhead->len, &s, &perr) ||
		    !seg_match(r, &ev->u.seg, &s, why, sizeof(why)))
			return;
		p = r->qhead;
		r->qhead = p->next;
		if (!r->qhead)
			r->qtail = &r->qhead;
		free(p);
		return;
	}
	if (!r->qhead)
		advance(r, hi + r->tol, true);
	if (r->failed)
		return;
	if (!r->qhead) {
		failf(r, ev->line,
		      "expected outbound packet at %.6f%s, none sent by %.6f",
		      secs(lo), ev->time.kind == T_ANY ? " (any time)" : "",
		      secs(r->now));
		return;
	}
	p = r->qhead;
	if (wire_parse(p->data, p->len, &s, &perr)) {
		failf(r, ev->line, "engine sent an unparsable packet: %s", perr);
		return;
	}
	fmt_out(r, &s, buf, sizeof(buf));
	if (!seg_match(r, &ev->u.seg, &s, why, sizeof(why))) {
		failf(r, ev->line, "outbound packet differs: %s\n    actual: > %s",
		      why, buf);
		return;
	}
	if (ev->time.kind != T_ANY &&
	    (p->t < lo - r->tol || p->t > hi + r->tol)) {
		failf(r, ev->line,
		      "timing: packet expected at %.6f~%.6f (tolerance %.3f) but "
		      "sent at %.6f\n    packet: > %s",
		      secs(lo), secs(hi), secs(r->tol), secs(p->t), buf);
		return;
	}
	r->qhead = p->next;
	if (!r->qhead)
		r->qtail = &r->qhead;
	r->last_t = p->t;
	free(p);
}

/* ---- calls ---- */

static struct expr *arg(struct event *ev, int i)
{
	return i < ev->u.call.nargs ? ev->u.call.args[i] : NULL;
}

static bool int_arg(struct runner *r, struct event *ev, int i, int64_t *v)
{
	struct expr *e = arg(ev, i);

	if (e && e->kind == X_LIST && e->n == 1)
		e = e->items[0];
	if (!e || e->kind != X_INT) {
		failf(r, ev->line, "%s(): argument %d must be a number",
		      ev->u.call.name, i + 1);
		return false;
	}
	*v = e->ival;
	return true;
}

static struct fdent *fd_arg(struct runner *r, struct event *ev, int i,
			    int *fdno)
{
	int64_t fd;

	if (!int_arg(r, ev, i, &fd))
		return NULL;
	*fdno = (int)fd;
	if (fd < 0 || fd >= MAXFD || !r->fds[fd].used)
		return NULL; /* EBADF */
	return &r->fds[fd];
}

static int fd_alloc(struct runner *r)
{
	for (int i = 3; i < MAXFD; i++)
		if (!r->fds[i].used) {
			memset(&r->fds[i], 0, sizeof(r->fds[i]));
			r->fds[i].used = true;
			return i;
		}
	return -1;
}

static bool addr_arg(struct runner *r, struct event *ev, int i,
		     struct utcp_addr *a, const uint8_t *defip,
		     uint16_t defport)
{
	struct expr *e = arg(ev, i);

	memset(a, 0, sizeof(*a));
	a->family = AF_INET;
	memcpy(a->ip, defip, 4);
	a->port = defport;
	if (!e || e->kind == X_ELLIPSIS)
		return true;
	if (e->kind != X_ADDR) {
		failf(r, ev->line, "argument %d: expected '...' or A.B.C.D:PORT",
		      i + 1);
		return false;
	}
	if (!e->ival)
		memcpy(a->ip, e->ip, 4);
	a->port = e->port;
	return true;
}

/* The negative-errno convention of the engine to (ret, err). */
static int from_engine(int64_t v, int64_t *ret, int *err)
{
	if (v < 0) {
		*ret = -1;
		*err = (int)-v;
	} else {
		*ret = v;
		*err = 0;
	}
	return DONE;
}

static const char *state_names[] = {
	"CLOSED",     "LISTEN",     "SYN_SENT",  "SYN_RECEIVED",
	"ESTABLISHED", "CLOSE_WAIT", "FIN_WAIT_1", "CLOSING",
	"LAST_ACK",   "FIN_WAIT_2", "TIME_WAIT",
};

/* "TCP_SYN_RECV", "SYN-SENT", "FIN_WAIT1" -> enum utcp_state, or -1. */
static int state_from_name(const char *in)
{
	char n[48];
	size_t k = 0;

	if (strncmp(in, "TCP_", 4) == 0)
		in += 4;
	for (; *in && k + 1 < sizeof(n); in++)
		n[k++] = *in == '-' ? '_' : *in;
	n[k] = 0;
	if (strcmp(n, "SYN_RECV") == 0)
		return UTCP_SYN_RECEIVED;
	if (strcmp(n, "FIN_WAIT1") == 0)
		return UTCP_FIN_WAIT_1;
	if (strcmp(n, "FIN_WAIT2") == 0)
		return UTCP_FIN_WAIT_2;
	if (strcmp(n, "CLOSE") == 0)
		return UTCP_CLOSED;
	for (int i = 0; i < (int)(sizeof(state_names) / sizeof(state_names[0])); i++)
		if (strcmp(n, state_names[i]) == 0)
			return i;
	return -1;
}

struct find_ctx {
	uint16_t lport, rport;
	struct utcp_sock *found;
};

static void find_cb(void *arg_, struct utcp_sock *s)
{
	struct find_ctx *c = arg_;
	struct utcp_addr l, rm;

	utcp_sock_names(s, &l, &rm);
	if (l.port == c->lport && rm.port == c->rport &&
	    utcp_sock_state(s) != UTCP_LISTEN)
		c->found = s;
}

static void list_cb(void *arg_, struct utcp_sock *s)
{
	char *b = arg_;
	size_t k = strlen(b);
	struct utcp_addr l, rm;

	utcp_sock_names(s, &l, &rm);
	if (k + 64 < 1024)
		snprintf(b + k, 1024 - k, " [%s %u>%u]",
			 utcp_state_name(utcp_sock_state(s)), l.port, rm.port);
}

/* poll(): the revents Linux would report for one engine socket. */
static short revents_of(struct fdent *fe)
{
	struct utcp_sock *s = fe->s;
	int st;
	short rev = 0;

	if (!s)
		return POLLNVAL;
	st = utcp_sock_state(s);
	if (st == UTCP_LISTEN)
		return fe->acceptable ? POLLIN | POLLRDNORM : 0;
	if (utcp_recv_avail(s) || utcp_sock_eof(s))
		rev |= POLLIN | POLLRDNORM;
	if (utcp_sock_eof(s))
		rev |= POLLRDHUP;
	if ((st == UTCP_ESTABLISHED || st == UTCP_CLOSE_WAIT) &&
	    utcp_send_space(s))
		rev |= POLLOUT | POLLWRNORM;
	if (utcp_sock_error(s, false))
		rev |= POLLERR;
	/* Closed (reset, timed out): Linux's tcp_poll() reports a socket
	 * with both directions shut as readable, writable and hung up. */
	if (st == UTCP_CLOSED)
		rev |= POLLIN | POLLRDNORM | POLLRDHUP | POLLOUT | POLLWRNORM |
		       POLLHUP;
	return rev;
}

/* poll([{fd=4, events=POLLIN, revents=POLLIN}], 1, TIMEOUT): revents as
 * Linux computes them; a timeout other than 0 blocks like a call. */
static int attempt_poll(struct runner *r, struct event *ev, bool first,
			int64_t *ret)
{
	/* poll([{fd=4, events=POLLIN, revents=POLLIN}], 1, TIMEOUT) */
	struct expr *l = arg(ev, 0);
	int64_t timeout = 0;
	int nready = 0;
	bool mismatch = false;
	char got[256] = "";

	if (!l || l->kind != X_LIST || !int_arg(r, ev, 2, &timeout))
		return DONE;
	for (int i = 0; i < l->n; i++) {
		struct expr *pf = l->items[i];
		int64_t pfd = -1, evmask = 0, want = -1;
		short rev;

		for (int j = 0; pf->kind == X_STRUCT && j < pf->n; j++) {
			if (strcmp(pf->names[j], "fd") == 0)
				pfd = pf->items[j]->ival;
			else if (strcmp(pf->names[j], "events") == 0)
				evmask = pf->items[j]->ival;
			else if (strcmp(pf->names[j], "revents") == 0)
				want = pf->items[j]->ival;
		}
		if (pfd < 0 || pfd >= MAXFD || !r->fds[pfd].used)
			rev = POLLNVAL;
		else
			rev = revents_of(&r->fds[pfd]);
		rev &= (short)(evmask | POLLERR | POLLHUP | POLLNVAL);
		if (rev)
			nready++;
		snprintf(got + strlen(got), sizeof(got) - strlen(got),
			 "%s{fd=%d revents=0x%x}", i ? ", " : "", (int)pfd,
			 (unsigned)rev);
		if (want >= 0 && rev != want)
			mismatch = true;
	}
	if (!nready && timeout != 0) {
		if (first)
			r->pend.wake = timeout < 0 ? INT64_MAX
						   : r->now + timeout * 1000;
		if (r->now < r->pend.wake)
			return BLOCKED;
	}
	if (mismatch)
		failf(r, ev->line, "poll: revents %s", got);
	*ret = nready;
	return DONE;
}

/* One attempt at a call. Returns DONE with (ret, err) or BLOCKED.
 * `first` is false on the retries of a blocking call. */
static int attempt(struct runner *r, struct event *ev, bool first,
		   int64_t *ret, int *err)
{
	struct call_spec *k = &ev->u.call;
	const char *n = k->name;
	struct fdent *fe = NULL;
	int fdno = -1;
	int64_t v;

	*ret = 0;
	*err = 0;
	if (strcmp(n, "socket") == 0) {
		int64_t type = SOCK_STREAM, fam = AF_INET;
		struct utcp_sock *s;
		int fd;

		if (arg(ev, 0) && arg(ev, 0)->kind == X_INT)
			fam = arg(ev, 0)->ival;
		if (arg(ev, 1) && arg(ev, 1)->kind == X_INT)
			type = arg(ev, 1)->ival;
		if (fam != AF_INET)
			return from_engine(-EAFNOSUPPORT, ret, err);
		if ((type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC)) != SOCK_STREAM)
			return from_engine(-ESOCKTNOSUPPORT, ret, err);
		fd = fd_alloc(r);
		if (fd < 0)
			return from_engine(-EMFILE, ret, err);
		s = utcp_socket(r->st, AF_INET);
		if (!s) {
			r->fds[fd].used = false;
			return from_engine(-ENOMEM, ret, err);
		}
		r->fds[fd].s = s;
		r->fds[fd].nonblock = (type & SOCK_NONBLOCK) != 0;
		*ret = fd;
		return DONE;
	}
	/* The runner's own calls. */
	if (strcmp(n, "quiet") == 0)
		return DONE;
	if (strcmp(n, "sock_count") == 0) {
		*ret = utcp_sock_count(r->st);
		return DONE;
	}
	if (strcmp(n, "utcp_stat") == 0) {
		struct expr *e = arg(ev, 0);

		if (!e || (e->kind != X_SYM && e->kind != X_INT)) {
			failf(r, ev->line, "utcp_stat(NAME)");
			return DONE;
		}
		for (int i = 0; i < UTCP_NSTATS; i++)
			if (strcmp(utcp_stat_name(i), e->sym) == 0) {
				*ret = (int64_t)utcp_stats(r->st)[i];
				return DONE;
			}
		failf(r, ev->line, "no counter named '%s'", e->sym);
		return DONE;
	}
	if (strcmp(n, "isn_distinct") == 0) {
		/* RFC 6528: ISNs of different 4-tuples are unrelated. */
		uint32_t seen[MAXFLOWS * 8];
		int ns = 0;

		for (int i = 0; i < r->nflows; i++)
			for (int j = 0; j < r->flows[i].nisns; j++) {
				int m;

				for (m = 0; m < ns; m++)
					if (seen[m] == r->flows[i].isns[j])
						break;
				if (m == ns)
					seen[ns++] = r->flows[i].isns[j];
			}
		*ret = ns;
		return DONE;
	}
	if (strcmp(n, "isn_advanced") == 0) {
		/* RFC 6528: a later incarnation of the same 4-tuple starts
		 * later in sequence space (the clock term M). */
		struct expr *e = arg(ev, 0);
		struct flow *f = flow_for(r, e && e->kind == X_FLOW ? e->port : 0,
					  false);

		if (!f || f->nisns < 2) {
			failf(r, ev->line, "isn_advanced(): the flow needs two ISNs");
			return DONE;
		}
		uint32_t d = f->isns[f->nisns - 1] - f->isns[f->nisns - 2];
		if (r->verbose)
			fprintf(stderr, "  ISN advanced by %u\n", d);
		*ret = d != 0 && d < 0x80000000u;
		return DONE;
	}
	if (strcmp(n, "tcp_state") == 0) {
		struct expr *e = arg(ev, 0);

		if (e && e->kind == X_INT) {
			fe = fd_arg(r, ev, 0, &fdno);
			if (!fe || !fe->s)
				return from_engine(-EBADF, ret, err);
			*ret = utcp_sock_state(fe->s);
		} else {
			struct flow *f = flow_for(r, e && e->kind == X_FLOW ? e->port : 0,
						  false);
			struct find_ctx c = {0};

			if (!f) {
				failf(r, ev->line, "tcp_state(): no such flow");
				return DONE;
			}
			c.lport = f->lport;
			c.rport = f->rport;
			utcp_foreach(r->st, find_cb, &c);
			*ret = c.found ? (int64_t)utcp_sock_state(c.found) : UTCP_CLOSED;
		}
		return DONE;
	}

	if (strcmp(n, "poll") == 0)
		return attempt_poll(r, ev, first, ret);

	/* Everything else takes an fd first. */
	fe = fd_arg(r, ev, 0, &fdno);
	if (r->failed)
		return DONE;
	if (!fe || !fe->s)
		return from_engine(-EBADF, ret, err);

	if (strcmp(n, "bind") == 0) {
		struct utcp_addr a;

		if (!addr_arg(r, ev, 1, &a, LOCAL_IP, BIND_PORT))
			return DONE;
		v = utcp_bind(fe->s, &a);
		if (v == 0)
			r->bind_port = a.port;
		return from_engine(v, ret, err);
	}
	if (strcmp(n, "listen") == 0) {
		if (!int_arg(r, ev, 1, &v))
			return DONE;
		return from_engine(utcp_listen(fe->s, (int)v), ret, err);
	}
	if (strcmp(n, "accept") == 0 || strcmp(n, "accept4") == 0) {
		int e2 = 0, fd;
		struct utcp_sock *c = utcp_accept(fe->s, &e2);
		struct utcp_addr l, rm;

		if (!c) {
			if (e2 == -EAGAIN && !fe->nonblock)
				return BLOCKED;
			return from_engine(e2 ? e2 : -EAGAIN, ret, err);
		}
		if (fe->acceptable)
			fe->acceptable--;
		fd = fd_alloc(r);
		if (fd < 0) {
			utcp_close(c, etime(r));
			return from_engine(-EMFILE, ret, err);
		}
		r->fds[fd].s = c;
		utcp_sock_names(c, &l, &rm);
		if (!flow_by_ports(r, l.port, rm.port))
			flow_new(r, l.port, rm.port);
		*ret = fd;
		return DONE;
	}
	if (strcmp(n, "connect") == 0) {
		int st;

		if (first) {
			struct utcp_addr a, l, rm;
			struct flow *f;

			if (!addr_arg(r, ev, 1, &a, REMOTE_IP, CONNECT_PORT))
				return DONE;
			v = utcp_connect(fe->s, &a, etime(r));
			if (v < 0)
				return from_engine(v, ret, err);
			utcp_sock_names(fe->s, &l, &rm);
			f = flow_by_ports(r, l.port, rm.port);
			if (!f)
				f = flow_new(r, l.port, rm.port);
			if (!f)
				return DONE;
			r->active_flow = (int)(f - r->flows);
			if (fe->nonblock)
				return from_engine(-EINPROGRESS, ret, err);
		}
		st = utcp_sock_state(fe->s);
		if (UTCP_HAVEESTABLISHED(st))
			return DONE;
		v = utcp_sock_error(fe->s, true);
		if (v)
			return from_engine(-v, ret, err);
		if (st == UTCP_CLOSED)
			return from_engine(-ECONNABORTED, ret, err);
		return BLOCKED;
	}
	if (strcmp(n, "write") == 0 || strcmp(n, "send") == 0) {
		int64_t len, flags = 0;
		bool nb;
		uint8_t *buf;

		if (!int_arg(r, ev, 2, &len))
			return DONE;
		if (n[0] == 's' && !int_arg(r, ev, 3, &flags))
			return DONE;
		nb = fe->nonblock || (flags & MSG_DONTWAIT);
		if (first)
			r->pend.done = 0;
		size_t left = (size_t)len - r->pend.done;
		buf = malloc(left ? left : 1);
		if (!buf) {
			perror("malloc");
			exit(2);
		}
		for (size_t i = 0; i < left; i++)
			buf[i] = lpat(fe->wr_off + i);
		v = utcp_send(fe->s, buf, left,
			      (flags & MSG_MORE) ? UTCP_MSG_MORE : 0, etime(r));
		free(buf);
		if (v > 0) {
			fe->wr_off += (uint64_t)v;
			r->pend.done += (size_t)v;
		}
		if (r->pend.done == (size_t)len && (len > 0 || v >= 0))
			return from_engine((int64_t)len, ret, err);
		if (v == -EAGAIN || v >= 0) {
			if (!nb)
				return BLOCKED;
			/* Non-blocking: a short count, or EAGAIN. */
			return from_engine(r->pend.done ? (int64_t)r->pend.done
							: -EAGAIN,
					   ret, err);
		}
		/* An error after some bytes went in: the count (as Linux). */
		return from_engine(r->pend.done ? (int64_t)r->pend.done : v, ret,
				   err);
	}
	if (strcmp(n, "read") == 0 || strcmp(n, "recv") == 0) {
		int64_t len, flags = 0;
		uint8_t *buf;
		bool nb;

		if (!int_arg(r, ev, 2, &len))
			return DONE;
		if (n[0] == 'r' && n[1] == 'e' && n[2] == 'c' &&
		    !int_arg(r, ev, 3, &flags))
			return DONE;
		nb = fe->nonblock || (flags & MSG_DONTWAIT);
		buf = malloc(len ? (size_t)len : 1);
		if (!buf) {
			perror("malloc");
			exit(2);
		}
		v = utcp_recv(fe->s, buf, (size_t)len,
			      (flags & MSG_PEEK) ? UTCP_MSG_PEEK : 0, etime(r));
		if (v == -EAGAIN && !nb) {
			free(buf);
			return BLOCKED;
		}
		for (int64_t i = 0; i < v; i++)
			if (buf[i] != rpat(fe->rd_off + (uint64_t)i)) {
				failf(r, ev->line,
				      "read: byte at stream offset %" PRIu64
				      " is 0x%02x, the peer sent 0x%02x",
				      fe->rd_off + (uint64_t)i, buf[i],
				      rpat(fe->rd_off + (uint64_t)i));
				break;
			}
		free(buf);
		if (v > 0 && !(flags & MSG_PEEK))
			fe->rd_off += (uint64_t)v;
		return from_engine(v, ret, err);
	}
	if (strcmp(n, "shutdown") == 0) {
		if (!int_arg(r, ev, 1, &v))
			return DONE;
		return from_engine(utcp_shutdown(fe->s, (int)v, etime(r)), ret, err);
	}
	if (strcmp(n, "close") == 0) {
		struct utcp_sock *s = fe->s;

		/* The fd goes first, so a FREED event during close is fine. */
		fe->used = false;
		fe->s = NULL;
		utcp_close(s, etime(r));
		return DONE;
	}
	if (strcmp(n, "setsockopt") == 0) {
		int64_t level, name, len;
		uint8_t val[64];
		struct expr *e = arg(ev, 3);

		if (!int_arg(r, ev, 1, &level) || !int_arg(r, ev, 2, &name) ||
		    !int_arg(r, ev, 4, &len))
			return DONE;
		memset(val, 0, sizeof(val));
		if (e && e->kind == X_LIST && e->n == 1 && e->items[0]->kind == X_INT) {
			int x = (int)e->items[0]->ival;
			memcpy(val, &x, sizeof(x));
		} else if (e && e->kind == X_STRUCT && e->n == 2) {
			/* struct linger {onoff, linger} in either spelling. */
			int x[2] = {(int)e->items[0]->ival, (int)e->items[1]->ival};
			memcpy(val, x, sizeof(x));
		} else if (e && e->kind == X_INT) {
			int x = (int)e->ival;
			memcpy(val, &x, sizeof(x));
		} else {
			failf(r, ev->line, "setsockopt value: [N] or {onoff=A, linger=B}");
			return DONE;
		}
		if (len < 0 || len > (int64_t)sizeof(val))
			len = sizeof(val);
		return from_engine(utcp_setsockopt(fe->s, (int)level, (int)name,
						   val, (size_t)len, etime(r)),
				   ret, err);
	}
	if (strcmp(n, "getsockopt") == 0) {
		int64_t level, name, elen = 4;
		uint8_t val[64];
		size_t len;
		struct expr *ev_val = arg(ev, 3), *ev_len = arg(ev, 4);

		if (!int_arg(r, ev, 1, &level) || !int_arg(r, ev, 2, &name))
			return DONE;
		if (ev_len && ev_len->kind != X_ELLIPSIS && !int_arg(r, ev, 4, &elen))
			return DONE;
		memset(val, 0, sizeof(val));
		len = (size_t)elen;
		if (level == SOL_SOCKET && name == SO_ERROR) {
			int x = utcp_sock_error(fe->s, true);
			memcpy(val, &x, sizeof(x));
			v = 0;
			len = sizeof(int);
		} else {
			if (len > sizeof(val))
				len = sizeof(val);
			v = utcp_getsockopt(fe->s, (int)level, (int)name, val, &len);
		}
		if (v == 0 && ev_len && ev_len->kind != X_ELLIPSIS &&
		    (int64_t)len != elen)
			failf(r, ev->line, "getsockopt: length %zu, expected %" PRId64,
			      len, elen);
		if (v == 0 && ev_val && ev_val->kind == X_LIST && ev_val->n == 1 &&
		    ev_val->items[0]->kind == X_INT) {
			int x;

			memcpy(&x, val, sizeof(x));
			if (x != ev_val->items[0]->ival) {
				const char *en = errno_name(x);
				failf(r, ev->line,
				      "getsockopt: value %d%s%s%s, expected %" PRId64,
				      x, en ? " (" : "", en ? en : "", en ? ")" : "",
				      ev_val->items[0]->ival);
			}
		} else if (v == 0 && ev_val && ev_val->kind == X_STRUCT &&
			   ev_val->n == 2) {
			int x[2];

			memcpy(x, val, sizeof(x));
			if (x[0] != ev_val->items[0]->ival ||
			    x[1] != ev_val->items[1]->ival)
				failf(r, ev->line,
				      "getsockopt: value {%d, %d}, expected {%" PRId64
				      ", %" PRId64 "}",
				      x[0], x[1], ev_val->items[0]->ival,
				      ev_val->items[1]->ival);
		}
		return from_engine(v, ret, err);
	}
	if (strcmp(n, "fcntl") == 0) {
		int64_t cmd, fl;

		if (!int_arg(r, ev, 1, &cmd))
			return DONE;
		if (cmd == F_GETFL) {
			*ret = O_RDWR | (fe->nonblock ? O_NONBLOCK : 0);
			return DONE;
		}
		if (cmd == F_SETFL) {
			if (!int_arg(r, ev, 2, &fl))
				return DONE;
			fe->nonblock = (fl & O_NONBLOCK) != 0;
			return DONE;
		}
		return from_engine(-EINVAL, ret, err);
	}
	if (strcmp(n, "ioctl") == 0) {
		int64_t req;
		struct expr *e = arg(ev, 2);
		int64_t got;

		if (!int_arg(r, ev, 1, &req))
			return DONE;
		if (req == FIONREAD) {
			got = (int64_t)utcp_recv_avail(fe->s);
		} else if (req == SIOCOUTQ) {
			struct utcp_info in;

			utcp_sock_info(fe->s, &in, etime(r));
			got = in.send_q;
		} else {
			return from_engine(-EINVAL, ret, err);
		}
		if (e && e->kind == X_LIST && e->n == 1 && e->items[0]->kind == X_INT &&
		    e->items[0]->ival != got)
			failf(r, ev->line, "ioctl: value %" PRId64 ", expected %" PRId64,
			      got, e->items[0]->ival);
		return DONE;
	}
	failf(r, ev->line, "unknown call %s()", n);
	return DONE;
}

static void check_result(struct runner *r, struct event *ev, int64_t ret,
			 int err)
{
	struct call_spec *k = &ev->u.call;
	struct expr *e = k->result;
	int64_t want;

	if (r->failed || !e)
		return;
	if (e->kind == X_SYM) {
		int st = state_from_name(e->sym);

		if (st < 0) {
			failf(r, ev->line, "unknown result '%s'", e->sym);
			return;
		}
		want = st;
	} else if (e->kind == X_INT) {
		want = e->ival;
	} else {
		failf(r, ev->line, "result must be a number or a state name");
		return;
	}
	if (ret == want && (ret != -1 || err == k->err))
		return;
	if (strcmp(k->name, "tcp_state") == 0) {
		failf(r, ev->line, "tcp_state: %s, expected %s",
		      ret >= 0 && ret < UTCP_NSTATES ? state_names[ret] : "?",
		      want >= 0 && want < UTCP_NSTATES ? state_names[want] : "?");
		return;
	}
	if (ret == -1) {
		const char *en = errno_name(err);
		failf(r, ev->line, "%s() = -1 %s (%s), expected %" PRId64 "%s%s",
		      k->name, en ? en : "?", strerror(err), want,
		      want == -1 ? " " : "",
		      want == -1 ? (errno_name(k->err) ? errno_name(k->err) : "?") : "");
	} else {
		failf(r, ev->line, "%s(%s) = %" PRId64 ", expected %" PRId64 "%s%s",
		      k->name,
		      k->nargs && k->args[0]->kind == X_SYM ? k->args[0]->sym : "",
		      ret, want, want == -1 ? " " : "",
		      want == -1 ? (errno_name(k->err) ? errno_name(k->err) : "?") : "");
	}
}

static void retry_pending(struct runner *r)
{
	int64_t ret;
	int err;

	if (!r->pend.active || r->failed)
		return;
	if (attempt(r, r->pend.ev, false, &ret, &err) == BLOCKED)
		return;
	r->pend.active = false;
	if (r->now < r->pend.lo || r->now > r->pend.hi) {
		failf(r, r->pend.ev->line,
		      "%s() returned at %.6f, expected between %.6f and %.6f",
		      r->pend.ev->u.call.name, secs(r->now), secs(r->pend.lo),
		      secs(r->pend.hi));
		return;
	}
	check_result(r, r->pend.ev, ret, err);
}

static bool is_builtin(const char *n)
{
	static const char *const b[] = {"quiet", "tcp_state", "utcp_stat",
					"sock_count", "isn_distinct",
					"isn_advanced"};

	for (size_t i = 0; i < sizeof(b) / sizeof(b[0]); i++)
		if (strcmp(n, b[i]) == 0)
			return true;
	return false;
}

static void run_call(struct runner *r, struct event *ev, int64_t start,
		     int64_t end)
{
	struct pending saved;
	bool nested = r->pend.active;
	int64_t ret;
	int err;

	/* The runner's own checks may run while a call blocks; socket calls
	 * may not (one blocking call at a time, like packetdrill). */
	if (r->pend.active && !is_builtin(ev->u.call.name)) {
		failf(r, ev->line, "a call while %s() from line %d still blocks",
		      r->pend.ev->u.call.name, r->pend.ev->line);
		return;
	}
	if (nested) {
		/* A builtin never blocks and leaves the pending call alone. */
		saved = r->pend;
		attempt(r, ev, true, &ret, &err);
		r->pend = saved;
		check_result(r, ev, ret, err);
		return;
	}
	memset(&r->pend, 0, sizeof(r->pend));
	r->pend.ev = ev;
	r->pend.wake = INT64_MAX;
	r->pend.lo = end - r->tol;
	r->pend.hi = end + r->tol;
	if (attempt(r, ev, true, &ret, &err) == DONE) {
		if (ev->time.blocking && end - start > r->tol && !r->failed)
			failf(r, ev->line,
			      "%s() returned at once (%.6f), expected it to block "
			      "until %.6f",
			      ev->u.call.name, secs(r->now), secs(end));
		check_result(r, ev, ret, err);
		return;
	}
	if (!ev->time.blocking) {
		failf(r, ev->line,
		      "%s() would block; write 'START...END %s(...)' for a "
		      "blocking call, or make the socket non-blocking",
		      ev->u.call.name, ev->u.call.name);
		return;
	}
	r->pend.active = true;
	(void)start;
}

/* ---- directives ---- */

static void run_directive(struct runner *r, struct event *ev)
{
	struct directive *d = &ev->u.dir;

	if (strcmp(d->name, "tolerance") == 0) {
		double s;

		if (sscanf(d->arg, "%lf", &s) != 1 || s < 0)
			failf(r, ev->line, "%%tolerance SECONDS");
		else
			r->tol = (int64_t)(s * 1e6 + 0.5);
	} else if (strcmp(d->name, "remote_isn") == 0) {
		unsigned long v;

		if (r->nflows || sscanf(d->arg, "%lu", &v) != 1)
			failf(r, ev->line, "%%remote_isn N, before any segment");
		else
			r->remote_isn = (uint32_t)v;
	} else if (strcmp(d->name, "config") == 0) {
		char buf[96], *save = NULL, *tok;

		if (r->st) {
			failf(r, ev->line, "%%config must come before the first event");
			return;
		}
		snprintf(buf, sizeof(buf), "%s", d->arg);
		for (tok = strtok_r(buf, " \t", &save); tok;
		     tok = strtok_r(NULL, " \t", &save))
			if (set_config(r, tok)) {
				failf(r, ev->line, "%%config: bad setting '%s'", tok);
				return;
			}
	} else if (strcmp(d->name, "allow_trailing") == 0) {
		r->allow_trailing = true;
	} else if (strcmp(d->name, "strict_psh") == 0) {
		r->strict_psh = true;
	} else if (strcmp(d->name, "relearn_isn") == 0) {
		int port = 0;
		struct flow *f;

		if (d->arg[0] == '@')
			port = atoi(d->arg + 1);
		f = flow_for(r, port, false);
		if (f)
			f->lisn_known = false;
	} else {
		failf(r, ev->line, "unknown directive %%%s", d->name);
	}
}

/* ---- one script ---- */

static void drain_queue(struct runner *r)
{
	while (r->qhead) {
		struct outpkt *p = r->qhead;

		r->qhead = p->next;
		free(p);
	}
	r->qtail = &r->qhead;
}

static int run_script(const char *path, bool verbose)
{
	struct script sc;
	struct runner *r = calloc(1, sizeof(*r));
	char err[1024];
	int rc;

	if (!r) {
		perror("calloc");
		return 2;
	}
	if (script_parse(path, &sc, err, sizeof(err))) {
		printf("FAIL %s\n", err);
		free(r);
		return 1;
	}
	r->path = path;
	r->verbose = verbose;
	r->tol = DEFAULT_TOL;
	r->remote_isn = REMOTE_ISN;
	r->active_flow = -1;
	r->bind_port = BIND_PORT;
	r->qtail = &r->qhead;
	config_defaults(r);

	for (struct event *ev = sc.head; ev && !r->failed; ev = ev->next) {
		int64_t base, lo, hi;

		r->cur = ev;
		if (ev->kind == EV_DIRECTIVE) {
			run_directive(r, ev);
			continue;
		}
		if (!ensure_stack(r))
			break;
		base = ev->time.kind == T_REL ? r->last_t : 0;
		lo = base + ev->time.start;
		hi = base + ev->time.end;
		if (ev->time.kind == T_ANY) {
			lo = r->now;
			hi = r->now + DRAIN_US;
		}
		if (verbose)
			fprintf(stderr, "%s:%d: (t=%.6f)\n", path, ev->line, secs(lo));
		if (ev->kind == EV_OUT) {
			run_outbound(r, ev, lo, hi);
			continue;
		}
		/* Inbound segments and calls happen at their time; anything
		 * the engine sent before must have been matched. */
		if (r->qhead) {
			unexpected_out(r, ev->line, "before this line");
			break;
		}
		if (lo < r->now) {
			hi += r->now - lo;
			lo = r->now;
		}
		advance(r, lo, false);
		if (r->failed)
			break;
		r->last_t = lo;
		if (ev->kind == EV_IN)
			run_inbound(r, ev);
		else
			run_call(r, ev, lo, hi);
	}
	r->cur = NULL;

	if (!r->failed && r->st) {
		if (r->pend.active) {
			advance(r, r->pend.hi, true);
			if (r->pend.active && !r->failed)
				failf(r, r->pend.ev->line,
				      "blocking %s() never returned",
				      r->pend.ev->u.call.name);
		}
		if (!r->failed && r->qhead && !r->allow_trailing)
			unexpected_out(r, 0, "left unmatched at the end");
	}
	/* The leak check: close what the script left open, run far past
	 * TIME-WAIT and every timeout, and count what remains. */
	if (!r->failed && r->st) {
		int64_t end = r->now + DRAIN_US;

		drain_queue(r);
		memset(&r->pend, 0, sizeof(r->pend));
		for (int i = 0; i < MAXFD; i++)
			if (r->fds[i].used && r->fds[i].s) {
				struct utcp_sock *s = r->fds[i].s;

				r->fds[i].used = false;
				r->fds[i].s = NULL;
				utcp_close(s, etime(r));
			}
		while (!r->failed) {
			utcp_time_t d = utcp_next_deadline(r->st);
			int64_t next;

			drain_queue(r);
			if (d == UTCP_TIME_NEVER)
				break;
			next = d < BASE_TIME ? 0 : (int64_t)(d - BASE_TIME);
			if (next > end)
				break;
			if (next > r->now)
				r->now = next;
			if (++r->steps > MAX_STEPS) {
				failf(r, 0, "runaway timers after the script (deadline %.6f)",
				      secs(next));
				break;
			}
			utcp_poll(r->st, etime(r));
		}
		drain_queue(r);
		if (!r->failed && utcp_sock_count(r->st) != 0) {
			char list[1024] = "";

			utcp_foreach(r->st, list_cb, list);
			failf(r, 0,
			      "leak: %u socket(s) remain %.0f s after the script:%s",
			      utcp_sock_count(r->st), secs(DRAIN_US), list);
		}
	}
	rc = r->failed ? 1 : 0;
	if (r->failed)
		printf("FAIL %s\n", r->msg);
	else if (verbose)
		printf("ok   %s\n", path);
	drain_queue(r);
	/* utcp_stack_free() reports FREED for what the script still held. */
	memset(r->fds, 0, sizeof(r->fds));
	if (r->st)
		utcp_stack_free(r->st);
	script_free(&sc);
	free(r);
	return rc;
}

static int run_forked(const char *path, bool verbose)
{
	pid_t pid;
	int status;

	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		perror("fork");
		return 1;
	}
	if (pid == 0) {
		alarm(SCRIPT_ALARM);
		/* exit(), not _exit(): LeakSanitizer runs at exit in SAN builds. */
		exit(run_script(path, verbose));
	}
	if (waitpid(pid, &status, 0) < 0) {
		perror("waitpid");
		return 1;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) > 1)
		printf("FAIL %s: runner exited with status %d (a sanitizer report "
		       "above?)\n",
		       path, WEXITSTATUS(status));
	if (WIFEXITED(status))
		return WEXITSTATUS(status) != 0;
	printf("FAIL %s: runner died: %s%s\n", path,
	       strsignal(WTERMSIG(status)),
	       WTERMSIG(status) == SIGALRM ? " (script took too long)" : "");
	return 1;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: pkt-runner [-v] [-k] SCRIPT.pkt ...\n"
		"  -v  trace every packet, event and step to stderr\n"
		"  -k  keep going is the default; -x stops at the first failure\n"
		"  -n  run in-process (no fork; for debuggers)\n");
}

int main(int argc, char **argv)
{
	bool verbose = false, stop = false, nofork = false;
	int opt, passed = 0, failed = 0;
	struct timespec t0, t1;

	while ((opt = getopt(argc, argv, "vkxnh")) != -1) {
		switch (opt) {
		case 'v':
			verbose = true;
			break;
		case 'k':
			break;
		case 'x':
			stop = true;
			break;
		case 'n':
			nofork = true;
			break;
		default:
			usage();
			return 2;
		}
	}
	if (optind == argc) {
		usage();
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = optind; i < argc; i++) {
		int rc = nofork ? run_script(argv[i], verbose)
				: run_forked(argv[i], verbose);

		if (rc)
			failed++;
		else
			passed++;
		if (rc && stop)
			break;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	fprintf(stderr, "pkt: %d scripts in %.2f s\n", passed + failed,
		(double)(t1.tv_sec - t0.tv_sec) +
			(double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
