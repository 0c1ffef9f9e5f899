/*
 * script.c — parser for the packet-script language (tests/pkt/README).
 *
 * One statement a line:  TIME  ( "<" segment | ">" segment | call )
 * or a directive:        %name [args]
 * Comments: "//" to the end of the line, or a line starting with "#".
 */
#include "script.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

/* ---- symbols ---- */

struct sym {
	const char *name;
	int64_t val;
};

#define S(x) {#x, x}
static const struct sym syms[] = {
	S(AF_INET), S(AF_INET6), S(AF_UNSPEC), S(PF_INET), S(PF_INET6),
	S(SOCK_STREAM), S(SOCK_DGRAM), S(SOCK_NONBLOCK), S(SOCK_CLOEXEC),
	S(IPPROTO_TCP), S(IPPROTO_IP), S(IPPROTO_UDP), S(SOL_SOCKET),
	S(SOL_TCP),
	S(SO_REUSEADDR), S(SO_REUSEPORT), S(SO_KEEPALIVE), S(SO_LINGER),
	S(SO_ERROR), S(SO_SNDBUF), S(SO_RCVBUF), S(SO_RCVLOWAT),
	S(SO_SNDLOWAT), S(SO_TYPE), S(SO_ACCEPTCONN), S(SO_OOBINLINE),
	S(SO_DEBUG), S(SO_BROADCAST), S(SO_DOMAIN), S(SO_PROTOCOL),
	S(TCP_NODELAY), S(TCP_MAXSEG), S(TCP_CORK), S(TCP_KEEPIDLE),
	S(TCP_KEEPINTVL), S(TCP_KEEPCNT), S(TCP_SYNCNT), S(TCP_LINGER2),
	S(TCP_DEFER_ACCEPT), S(TCP_WINDOW_CLAMP), S(TCP_INFO),
	S(TCP_QUICKACK), S(TCP_USER_TIMEOUT), S(TCP_CONGESTION),
	S(TCP_NOTSENT_LOWAT),
	S(SHUT_RD), S(SHUT_WR), S(SHUT_RDWR),
	S(MSG_PEEK), S(MSG_MORE), S(MSG_DONTWAIT), S(MSG_WAITALL),
	S(MSG_NOSIGNAL), S(MSG_OOB),
	S(O_RDONLY), S(O_WRONLY), S(O_RDWR), S(O_NONBLOCK),
	S(F_GETFL), S(F_SETFL), S(F_GETFD), S(F_SETFD),
	S(POLLIN), S(POLLOUT), S(POLLERR), S(POLLHUP), S(POLLRDHUP),
	S(POLLPRI), S(POLLNVAL), S(POLLRDNORM), S(POLLWRNORM),
	S(FIONREAD), S(SIOCINQ), S(SIOCOUTQ),
	{"NULL", 0},
};

struct errname {
	const char *name;
	int val;
};
#define E(x) {#x, x}
static const struct errname errs[] = {
	E(EPERM), E(ENOENT), E(EINTR), E(EBADF), E(EAGAIN), E(ENOMEM),
	E(EFAULT), E(EINVAL), E(EPIPE), E(ENOTSOCK), E(EDESTADDRREQ),
	E(EMSGSIZE), E(EPROTOTYPE), E(ENOPROTOOPT), E(EPROTONOSUPPORT),
	E(ESOCKTNOSUPPORT), E(EOPNOTSUPP), E(EAFNOSUPPORT), E(EADDRINUSE),
	E(EADDRNOTAVAIL), E(ENETDOWN), E(ENETUNREACH), E(ECONNABORTED),
	E(ECONNRESET), E(ENOBUFS), E(EISCONN), E(ENOTCONN), E(ESHUTDOWN),
	E(ETIMEDOUT), E(ECONNREFUSED), E(EHOSTUNREACH), E(EALREADY),
	E(EINPROGRESS), E(EHOSTDOWN), E(ENOSYS), E(ERANGE), E(EEXIST),
	E(EMFILE), E(ENFILE),
};

bool sym_lookup(const char *name, int64_t *val)
{
	for (size_t i = 0; i < sizeof(syms) / sizeof(syms[0]); i++)
		if (strcmp(syms[i].name, name) == 0) {
			*val = syms[i].val;
			return true;
		}
	for (size_t i = 0; i < sizeof(errs) / sizeof(errs[0]); i++)
		if (strcmp(errs[i].name, name) == 0) {
			*val = errs[i].val;
			return true;
		}
	if (strcmp(name, "EWOULDBLOCK") == 0) {
		*val = EAGAIN;
		return true;
	}
	return false;
}

const char *errno_name(int err)
{
	for (size_t i = 0; i < sizeof(errs) / sizeof(errs[0]); i++)
		if (errs[i].val == err)
			return errs[i].name;
	return NULL;
}

/* ---- a cursor over one line ---- */

struct cur {
	const char *p;
	const char *line_start;
	const char *path;
	int line;
	char *err;
	size_t errlen;
	bool failed;
};

static int fail(struct cur *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int fail(struct cur *c, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (c->failed)
		return -1;
	c->failed = true;
	n = snprintf(c->err, c->errlen, "%s:%d: ", c->path, c->line);
	if (n < 0 || (size_t)n >= c->errlen)
		return -1;
	va_start(ap, fmt);
	vsnprintf(c->err + n, c->errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return -1;
}

static void skip_ws(struct cur *c)
{
	while (*c->p == ' ' || *c->p == '\t')
		c->p++;
}

static bool eat(struct cur *c, const char *tok)
{
	size_t n = strlen(tok);

	skip_ws(c);
	if (strncmp(c->p, tok, n) == 0) {
		c->p += n;
		return true;
	}
	return false;
}

static bool at_end(struct cur *c)
{
	skip_ws(c);
	return *c->p == 0;
}

/* An identifier: letters, digits, '_' (and '-' inside, for state names). */
static int ident(struct cur *c, char *out, size_t cap)
{
	size_t n = 0;

	skip_ws(c);
	if (!isalpha((unsigned char)*c->p) && *c->p != '_')
		return -1;
	while (isalnum((unsigned char)*c->p) || *c->p == '_' ||
	       (*c->p == '-' && isalpha((unsigned char)c->p[1]))) {
		if (n + 1 < cap)
			out[n++] = *c->p;
		c->p++;
	}
	out[n] = 0;
	return 0;
}

static int number(struct cur *c, int64_t *v)
{
	char *end;
	long long x;

	skip_ws(c);
	errno = 0;
	x = strtoll(c->p, &end, 0);
	if (end == c->p || errno)
		return fail(c, "expected a number at '%.20s'", c->p);
	c->p = end;
	*v = x;
	return 0;
}

static int unumber32(struct cur *c, uint32_t *v)
{
	int64_t x;

	if (number(c, &x))
		return -1;
	if (x < 0 || x > 0xffffffffLL)
		return fail(c, "number out of range: %lld", (long long)x);
	*v = (uint32_t)x;
	return 0;
}

/* Seconds with up to 6 decimals -> µs. */
static int seconds(struct cur *c, int64_t *us)
{
	const char *p = c->p;
	int64_t whole = 0, frac = 0;
	int digits = 0;
	bool any = false;

	while (isdigit((unsigned char)*p)) {
		whole = whole * 10 + (*p++ - '0');
		any = true;
	}
	/* "..." follows a bare number: a '.' followed by '.' is not decimal. */
	if (*p == '.' && p[1] != '.') {
		p++;
		while (isdigit((unsigned char)*p)) {
			if (digits < 6) {
				frac = frac * 10 + (*p - '0');
				digits++;
			}
			p++;
			any = true;
		}
	}
	if (!any)
		return fail(c, "expected a time at '%.20s'", c->p);
	while (digits++ < 6)
		frac *= 10;
	*us = whole * 1000000 + frac;
	c->p = p;
	return 0;
}

/* ---- time ---- */

static int parse_time(struct cur *c, struct stime *t)
{
	bool rel = false;

	memset(t, 0, sizeof(*t));
	skip_ws(c);
	if (*c->p == '*') {
		c->p++;
		t->kind = T_ANY;
		return 0;
	}
	if (*c->p == '+') {
		rel = true;
		c->p++;
	}
	t->kind = rel ? T_REL : T_ABS;
	if (seconds(c, &t->start))
		return -1;
	t->end = t->start;
	if (*c->p == '~' || strncmp(c->p, "...", 3) == 0) {
		bool blocking = *c->p == '.';

		c->p += blocking ? 3 : 1;
		/* The end uses the same base as the start (packetdrill). */
		if (*c->p == '+') {
			if (!rel)
				return fail(c, "relative end after an absolute start");
			c->p++;
		}
		if (seconds(c, &t->end))
			return -1;
		if (t->end < t->start)
			return fail(c, "time range ends before it starts");
		t->range = !blocking;
		t->blocking = blocking;
	}
	if (*c->p != ' ' && *c->p != '\t')
		return fail(c, "expected a blank after the time");
	return 0;
}

/* ---- segments ---- */

static int parse_opt(struct cur *c, struct seg_spec *s)
{
	char name[24];
	struct tcp_opt *o;

	if (s->nopts == MAX_OPTS)
		return fail(c, "too many options");
	o = &s->opts[s->nopts];
	memset(o, 0, sizeof(*o));
	if (ident(c, name, sizeof(name)))
		return fail(c, "expected a TCP option at '%.20s'", c->p);
	if (strcmp(name, "nop") == 0) {
		o->kind = OPT_NOP;
	} else if (strcmp(name, "eol") == 0) {
		o->kind = OPT_EOL;
	} else if (strcmp(name, "mss") == 0) {
		o->kind = OPT_MSS;
		if (unumber32(c, &o->val))
			return -1;
	} else if (strcmp(name, "wscale") == 0) {
		o->kind = OPT_WSCALE;
		if (unumber32(c, &o->val))
			return -1;
	} else if (strcmp(name, "sackOK") == 0) {
		o->kind = OPT_SACKOK;
	} else if (strcmp(name, "sack") == 0) {
		o->kind = OPT_SACK;
		for (;;) {
			skip_ws(c);
			if (!isdigit((unsigned char)*c->p))
				break;
			if (o->nsack == MAX_SACK_BLOCKS)
				return fail(c, "too many SACK blocks");
			if (unumber32(c, &o->sack[o->nsack][0]) ||
			    !eat(c, ":") ||
			    unumber32(c, &o->sack[o->nsack][1]))
				return fail(c, "bad SACK block");
			o->nsack++;
		}
		if (!o->nsack)
			return fail(c, "sack needs blocks a:b");
	} else if (strcmp(name, "TS") == 0) {
		o->kind = OPT_TS;
		if (!eat(c, "val"))
			return fail(c, "expected 'TS val X ecr Y'");
		skip_ws(c);
		if (*c->p == '*') {
			c->p++;
			s->ts_val_any[s->nopts] = true;
		} else if (unumber32(c, &o->val)) {
			return -1;
		}
		if (!eat(c, "ecr") || unumber32(c, &o->ecr))
			return fail(c, "expected 'TS val X ecr Y'");
	} else if (strcmp(name, "opt") == 0 || strcmp(name, "rawbytes") == 0) {
		/* opt KIND [byte ...]: a well-formed option of any kind;
		 * rawbytes b ...: bytes as given, for malformed options. */
		bool raw = name[0] == 'r';
		int64_t b;

		o->kind = raw ? OPT_RAW : OPT_GENERIC;
		for (;;) {
			skip_ws(c);
			if (!isdigit((unsigned char)*c->p))
				break;
			if (number(c, &b))
				return -1;
			if (b < 0 || b > 255 || o->nbytes == 39)
				return fail(c, "bad option byte");
			o->bytes[o->nbytes++] = (uint8_t)b;
		}
		if (!o->nbytes)
			return fail(c, "%s needs bytes", name);
	} else {
		return fail(c, "unknown TCP option '%s'", name);
	}
	s->nopts++;
	return 0;
}

static int parse_seg(struct cur *c, struct seg_spec *s)
{
	char tok[16];
	size_t n = 0;
	int f;
	uint32_t len = 0;
	int64_t port;

	memset(s, 0, sizeof(*s));
	skip_ws(c);
	if (*c->p == '@') {
		c->p++;
		if (number(c, &port) || port <= 0 || port > 65535)
			return fail(c, "bad flow port after '@'");
		s->port = (int)port;
		skip_ws(c);
	}
	while (*c->p && *c->p != ' ' && *c->p != '\t' && n + 1 < sizeof(tok))
		tok[n++] = *c->p++;
	tok[n] = 0;
	f = wire_flags_parse(tok);
	if (f < 0 || n == 0)
		return fail(c, "bad TCP flags '%s'", tok);
	s->flags = (uint8_t)f;
	if (unumber32(c, &s->start) || !eat(c, ":") || unumber32(c, &s->end) ||
	    !eat(c, "(") || unumber32(c, &len) || !eat(c, ")"))
		return fail(c, "expected start:end(len)");
	if (s->end - s->start != len)
		return fail(c, "start:end(len) does not add up");
	for (;;) {
		if (at_end(c))
			break;
		if (eat(c, "ack")) {
			if (unumber32(c, &s->ack))
				return -1;
			s->has_ack = true;
		} else if (eat(c, "win")) {
			if (unumber32(c, &s->win))
				return -1;
			if (s->win > 65535)
				return fail(c, "win is the raw 16-bit field");
			s->has_win = true;
		} else if (eat(c, "urg")) {
			if (unumber32(c, &s->urp))
				return -1;
			s->has_urp = true;
		} else if (eat(c, "badcsum")) {
			s->dmg.tcp_csum = true;
		} else if (eat(c, "badipcsum")) {
			s->dmg.ip_csum = true;
		} else if (eat(c, "frag")) {
			s->dmg.frag = true;
		} else if (eat(c, "proto") || eat(c, "doff") || eat(c, "truncate") ||
			   eat(c, "ipversion")) {
			/* Which keyword matched: look back at the text. */
			const char *kw = c->p;
			int64_t v;

			while (kw > c->line_start && kw[-1] != ' ' && kw[-1] != '\t')
				kw--;
			if (number(c, &v) || v < 0 || v > 65535)
				return fail(c, "bad number after '%.8s'", kw);
			if (*kw == 'p')
				s->dmg.proto = (int)v;
			else if (*kw == 'd')
				s->dmg.doff = (int)v;
			else if (*kw == 't')
				s->dmg.truncate = (int)v;
			else
				s->dmg.ip_version = (int)v;
		} else if (eat(c, "dst") || eat(c, "src")) {
			bool is_src = c->p[-3] == 's';
			unsigned a[4];
			int used = 0;

			skip_ws(c);
			if (sscanf(c->p, "%u.%u.%u.%u%n", &a[0], &a[1], &a[2], &a[3],
				   &used) != 4)
				return fail(c, "dst/src A.B.C.D");
			for (int i = 0; i < 4; i++) {
				if (is_src)
					s->src[i] = (uint8_t)a[i];
				else
					s->dst[i] = (uint8_t)a[i];
			}
			if (is_src)
				s->has_src = true;
			else
				s->has_dst = true;
			c->p += used;
		} else if (eat(c, "<")) {
			s->has_opts = true;
			if (eat(c, ">"))
				continue;
			for (;;) {
				if (parse_opt(c, s))
					return -1;
				if (eat(c, ">"))
					break;
				if (!eat(c, ","))
					return fail(c, "expected ',' or '>' in options");
			}
		} else {
			return fail(c, "unexpected '%.20s'", c->p);
		}
	}
	if (s->has_ack && !(s->flags & TH_ACK))
		return fail(c, "'ack' given without the '.' flag");
	return 0;
}

/* ---- expressions ---- */

static struct expr *new_expr(enum expr_kind k)
{
	struct expr *e = calloc(1, sizeof(*e));

	if (!e) {
		perror("calloc");
		exit(2);
	}
	e->kind = k;
	return e;
}

static void free_expr(struct expr *e)
{
	if (!e)
		return;
	for (int i = 0; i < e->n; i++)
		free_expr(e->items[i]);
	free(e);
}

static struct expr *parse_expr(struct cur *c);

/* 192.0.2.1:8080, or :8080 for the default address. */
static bool try_addr(struct cur *c, struct expr **out)
{
	const char *p = c->p;
	unsigned a[4] = {0, 0, 0, 0}, port;
	int n = 0;
	struct expr *e;

	if (*p == ':') {
		if (sscanf(p, ":%u%n", &port, &n) != 1)
			return false;
		a[0] = 256; /* marker: default address */
	} else if (sscanf(p, "%u.%u.%u.%u:%u%n", &a[0], &a[1], &a[2], &a[3],
			  &port, &n) != 5) {
		return false;
	}
	if (port > 65535)
		return false;
	e = new_expr(X_ADDR);
	if (a[0] == 256) {
		e->ival = 1; /* default address */
	} else {
		for (int i = 0; i < 4; i++)
			e->ip[i] = (uint8_t)a[i];
	}
	e->port = (uint16_t)port;
	c->p = p + n;
	*out = e;
	return true;
}

static struct expr *parse_term(struct cur *c)
{
	struct expr *e;
	char name[48];

	skip_ws(c);
	if (strncmp(c->p, "...", 3) == 0) {
		c->p += 3;
		return new_expr(X_ELLIPSIS);
	}
	if (*c->p == '@') {
		int64_t port;

		c->p++;
		if (number(c, &port) || port <= 0 || port > 65535) {
			fail(c, "bad flow after '@'");
			return NULL;
		}
		e = new_expr(X_FLOW);
		e->port = (uint16_t)port;
		return e;
	}
	if (*c->p == '[' || *c->p == '{') {
		bool list = *c->p == '[';
		char close = list ? ']' : '}';

		c->p++;
		e = new_expr(list ? X_LIST : X_STRUCT);
		skip_ws(c);
		if (*c->p == close) {
			c->p++;
			return e;
		}
		for (;;) {
			if (e->n == MAX_ITEMS) {
				fail(c, "too many items");
				free_expr(e);
				return NULL;
			}
			if (!list) {
				if (ident(c, e->names[e->n], sizeof(e->names[0])) ||
				    !eat(c, "=")) {
					fail(c, "expected name=value in {}");
					free_expr(e);
					return NULL;
				}
			}
			e->items[e->n] = parse_expr(c);
			if (!e->items[e->n]) {
				free_expr(e);
				return NULL;
			}
			e->n++;
			skip_ws(c);
			if (*c->p == close) {
				c->p++;
				return e;
			}
			if (!eat(c, ",")) {
				fail(c, "expected ',' or '%c'", close);
				free_expr(e);
				return NULL;
			}
		}
	}
	if (try_addr(c, &e))
		return e;
	if (isdigit((unsigned char)*c->p) || *c->p == '-') {
		e = new_expr(X_INT);
		if (number(c, &e->ival)) {
			free_expr(e);
			return NULL;
		}
		return e;
	}
	if (ident(c, name, sizeof(name)) == 0) {
		int64_t v;

		if (sym_lookup(name, &v)) {
			e = new_expr(X_INT);
			e->ival = v;
			snprintf(e->sym, sizeof(e->sym), "%s", name);
			return e;
		}
		e = new_expr(X_SYM);
		snprintf(e->sym, sizeof(e->sym), "%s", name);
		return e;
	}
	fail(c, "unexpected '%.20s'", c->p);
	return NULL;
}

/* term { '|' term } — only integers combine. */
static struct expr *parse_expr(struct cur *c)
{
	struct expr *e = parse_term(c);

	while (e && eat(c, "|")) {
		struct expr *r = parse_term(c);

		if (!r || e->kind != X_INT || r->kind != X_INT) {
			fail(c, "'|' needs numbers or known symbols");
			free_expr(e);
			free_expr(r);
			return NULL;
		}
		e->ival |= r->ival;
		e->sym[0] = 0;
		free_expr(r);
	}
	return e;
}

static int parse_call(struct cur *c, struct call_spec *k)
{
	memset(k, 0, sizeof(*k));
	if (ident(c, k->name, sizeof(k->name)) || !eat(c, "("))
		return fail(c, "expected '<', '>' or a call at '%.20s'", c->p);
	skip_ws(c);
	if (*c->p == ')') {
		c->p++;
	} else {
		for (;;) {
			if (k->nargs == MAX_ARGS)
				return fail(c, "too many arguments");
			k->args[k->nargs] = parse_expr(c);
			if (!k->args[k->nargs])
				return -1;
			k->nargs++;
			if (eat(c, ")"))
				break;
			if (!eat(c, ","))
				return fail(c, "expected ',' or ')'");
		}
	}
	if (at_end(c))
		return 0;
	if (!eat(c, "="))
		return fail(c, "expected '= result' at '%.20s'", c->p);
	k->result = parse_expr(c);
	if (!k->result)
		return -1;
	if (k->result->kind == X_INT && k->result->ival == -1) {
		char name[32];
		int64_t v;

		if (ident(c, name, sizeof(name)) || !sym_lookup(name, &v) ||
		    name[0] != 'E')
			return fail(c, "'-1' must be followed by an errno name");
		k->err = (int)v;
	}
	/* A trailing "(Explanation)" is a comment, as in packetdrill. */
	skip_ws(c);
	if (*c->p == '(') {
		const char *q = strchr(c->p, ')');

		if (!q)
			return fail(c, "unclosed '('");
		c->p = q + 1;
	}
	if (!at_end(c))
		return fail(c, "trailing text '%.20s'", c->p);
	return 0;
}

/* ---- lines ---- */

static void strip_comment(char *s)
{
	char *p = strstr(s, "//");

	if (p)
		*p = 0;
	p = s + strlen(s);
	while (p > s && isspace((unsigned char)p[-1]))
		*--p = 0;
}

int script_parse(const char *path, struct script *sc, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	char line[1024];
	struct event **tail = &sc->head;
	struct cur c = {.path = path, .err = err, .errlen = errlen};
	bool first = true;

	memset(sc, 0, sizeof(*sc));
	sc->path = path;
	if (!f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f)) {
		struct event *ev;
		char *s = line;

		c.line++;
		if (!strchr(line, '\n') && !feof(f)) {
			fail(&c, "line too long");
			goto bad;
		}
		strip_comment(line);
		while (*s == ' ' || *s == '\t')
			s++;
		if (*s == 0 || *s == '#')
			continue;
		ev = calloc(1, sizeof(*ev));
		if (!ev) {
			perror("calloc");
			exit(2);
		}
		ev->line = c.line;
		*tail = ev;
		tail = &ev->next;
		sc->nevents++;
		c.p = s;
		c.line_start = s;
		if (*s == '%') {
			struct directive *d = &ev->u.dir;

			c.p++;
			ev->kind = EV_DIRECTIVE;
			if (ident(&c, d->name, sizeof(d->name))) {
				fail(&c, "expected a directive name");
				goto bad;
			}
			skip_ws(&c);
			snprintf(d->arg, sizeof(d->arg), "%s", c.p);
			continue;
		}
		if (parse_time(&c, &ev->time))
			goto bad;
		if (first && ev->time.kind == T_REL && ev->time.start != 0) {
			fail(&c, "the first event is at time 0");
			goto bad;
		}
		first = false;
		skip_ws(&c);
		if (*c.p == '<' || *c.p == '>') {
			ev->kind = *c.p == '<' ? EV_IN : EV_OUT;
			c.p++;
			bool opt = ev->kind == EV_OUT && *c.p == '?';

			if (opt)
				c.p++;
			if (ev->time.blocking) {
				fail(&c, "'...' is for calls; use '~' for a segment");
				goto bad;
			}
			if (parse_seg(&c, &ev->u.seg))
				goto bad;
			ev->u.seg.optional = opt;
			if (ev->kind == EV_IN && ev->time.range) {
				fail(&c, "an inbound segment has one time");
				goto bad;
			}
		} else {
			ev->kind = EV_CALL;
			if (ev->time.range) {
				fail(&c, "use 'a...b' for a blocking call");
				goto bad;
			}
			if (parse_call(&c, &ev->u.call))
				goto bad;
		}
	}
	fclose(f);
	return 0;
bad:
	fclose(f);
	script_free(sc);
	return -1;
}

void script_free(struct script *sc)
{
	struct event *ev = sc->head, *next;

	for (; ev; ev = next) {
		next = ev->next;
		if (ev->kind == EV_CALL) {
			for (int i = 0; i < ev->u.call.nargs; i++)
				free_expr(ev->u.call.args[i]);
			free_expr(ev->u.call.result);
		}
		free(ev);
	}
	sc->head = NULL;
}
