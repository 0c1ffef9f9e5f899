/*
 * fault_core.c — the fault injector's decisions and queue (fault.h).
 *
 * Per packet, in this order: loss= may drop it; dup= may make a second
 * copy; reorder= may hold one copy back until the next packet of that
 * direction has gone (it is then released right behind it) or until hold=
 * passes; every other copy leaves after delay ± jitter. Delay keeps the
 * order of a direction (a packet never leaves before the one ahead of it;
 * jitter stretches the gaps), so reordering happens only where reorder=
 * asks for it. One packet at most is held per direction: the packet that
 * comes while one is held is the one that overtakes it.
 */
#include "fault.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <bsd/string.h>

#define NEVER UINT64_MAX

struct fault_ent {
	TAILQ_ENTRY(fault_ent) link;
	uint64_t at;  /* release time; a held packet: its bound */
	uint32_t meta;
	size_t len;
	uint8_t data[];
};
TAILQ_HEAD(fault_q, fault_ent);

struct fault_way {
	uint64_t rng[4];         /* xoshiro256** */
	struct fault_q q;        /* release times non-decreasing */
	struct fault_ent *held;  /* reorder=: waiting to be overtaken */
};

struct fault {
	struct fault_spec s;
	fault_emit_fn *emit;
	void *ctx;
	uint64_t *stats;
	size_t npkts, nbytes; /* queued and held, both directions */
	struct fault_way way[FAULT_NDIR];
};

/* ---- the PRNG: splitmix64 seeds xoshiro256** (Vigna, Blackman) ---- */

static uint64_t
splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t
rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static uint64_t
xoshiro(uint64_t s[4])
{
	uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return r;
}

/* Uniform in [0, n): the high 32 bits scaled, no modulo bias worth the
 * name for n up to a few million. */
static uint64_t
below(uint64_t r, uint64_t n)
{
	return ((r >> 32) * n) >> 32;
}

/* ---- SPEC ---- */

static int __attribute__((format(printf, 3, 4)))
say(char *err, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
	return -1;
}

/* A decimal number with at most 6 decimals, scaled by 10^6 and checked
 * against max (unscaled), then the optional suffix. No strtod: the same
 * SPEC must mean the same thing in every locale. */
static int
parse_fixed(const char *v, const char *suffix, uint64_t max, uint64_t *out)
{
	uint64_t whole = 0, frac = 0, scale = 1000000;
	const char *p = v;

	if (*p < '0' || *p > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		whole = whole * 10 + (uint64_t)(*p - '0');
		if (whole > max)
			return -1;
	}
	if (*p == '.') {
		p++;
		if (*p < '0' || *p > '9')
			return -1;
		for (; *p >= '0' && *p <= '9'; p++) {
			if (scale == 1)
				return -1; /* finer than a millionth */
			scale /= 10;
			frac += (uint64_t)(*p - '0') * scale;
		}
	}
	if (*p != '\0' && (suffix == NULL || strcmp(p, suffix) != 0))
		return -1;
	*out = whole * 1000000 + frac;
	return *out > max * 1000000 ? -1 : 0;
}

static int
parse_u64(const char *v, uint64_t lo, uint64_t hi, uint64_t *out)
{
	uint64_t x = 0;

	if (*v == '\0')
		return -1;
	for (const char *p = v; *p != '\0'; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		if (x > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
			return -1;
		x = x * 10 + (uint64_t)(*p - '0');
	}
	if (x < lo || x > hi)
		return -1;
	*out = x;
	return 0;
}

/* "12.5%" or "0.001%" from millionths: at most 4 decimals, no zeros. */
static void
fmt_pct(char *b, size_t len, uint32_t ppm)
{
	int n = snprintf(b, len, "%u.%04u", ppm / 10000, ppm % 10000);

	while (n > 0 && b[n - 1] == '0')
		b[--n] = '\0';
	if (n > 0 && b[n - 1] == '.')
		b[--n] = '\0';
	strlcat(b, "%", len);
}

static void
fmt_ms(char *b, size_t len, uint64_t us)
{
	int n = snprintf(b, len, "%llu.%03u", (unsigned long long)(us / 1000),
			 (unsigned)(us % 1000));

	while (n > 0 && b[n - 1] == '0')
		b[--n] = '\0';
	if (n > 0 && b[n - 1] == '.')
		b[--n] = '\0';
}

enum { K_SEED, K_LOSS, K_DUP, K_REORDER, K_HOLD, K_DELAY, K_JITTER,
       K_DIR, K_LIMIT, K_N };
static const char *const keys[K_N] = {
	"seed", "loss", "dup", "reorder", "hold", "delay", "jitter", "dir",
	"limit",
};

int
fault_parse(const char *spec, struct fault_spec *s, char *err, size_t errlen)
{
	char buf[512], *item, *save = NULL;
	bool seen[K_N] = { false };
	uint64_t x;

	memset(s, 0, sizeof(*s));
	s->seed = 1;
	s->hold = FAULT_HOLD_US;
	s->limit = FAULT_LIMIT;
	s->dirs = FAULT_DIR_BIT(FAULT_IN) | FAULT_DIR_BIT(FAULT_OUT);
	if (spec == NULL || spec[0] == '\0')
		return say(err, errlen, "empty SPEC: want key=value,...");
	if (strlen(spec) >= sizeof(buf))
		return say(err, errlen, "SPEC longer than 511 characters");
	strlcpy(buf, spec, sizeof(buf));
	for (item = strtok_r(buf, ",", &save); item != NULL;
	     item = strtok_r(NULL, ",", &save)) {
		char *v = strchr(item, '=');
		int k;

		if (v == NULL)
			return say(err, errlen, "'%s' is not key=value", item);
		*v++ = '\0';
		for (k = 0; k < K_N && strcmp(item, keys[k]) != 0; k++)
			;
		if (k == K_N)
			return say(err, errlen,
				   "unknown key '%s'; keys: seed, loss, dup, "
				   "reorder, hold, delay, jitter, dir, limit",
				   item);
		if (seen[k])
			return say(err, errlen, "key '%s' given twice", item);
		seen[k] = true;
		switch (k) {
		case K_SEED:
			if (parse_u64(v, 0, UINT64_MAX, &s->seed) != 0)
				return say(err, errlen, "bad seed '%s': "
					   "a number, 0 to 2^64-1", v);
			break;
		case K_LOSS:
		case K_DUP:
		case K_REORDER:
			if (parse_fixed(v, "%", 100, &x) != 0)
				return say(err, errlen, "bad %s '%s': a percentage "
					   "0 to 100, e.g. 5%% or 0.5",
					   keys[k], v);
			x /= 100; /* millionths of 1 */
			if (k == K_LOSS)
				s->loss = (uint32_t)x;
			else if (k == K_DUP)
				s->dup = (uint32_t)x;
			else
				s->reorder = (uint32_t)x;
			break;
		case K_HOLD:
		case K_DELAY:
		case K_JITTER:
			if (parse_fixed(v, "ms", FAULT_MAX_MS, &x) != 0)
				return say(err, errlen, "bad %s '%s': milliseconds, "
					   "0 to 60000, e.g. 20 or 0.5",
					   keys[k], v);
			x /= 1000; /* µs */
			if (k == K_HOLD)
				s->hold = x;
			else if (k == K_DELAY)
				s->delay = x;
			else
				s->jitter = x;
			break;
		case K_DIR:
			if (strcmp(v, "in") == 0)
				s->dirs = FAULT_DIR_BIT(FAULT_IN);
			else if (strcmp(v, "out") == 0)
				s->dirs = FAULT_DIR_BIT(FAULT_OUT);
			else if (strcmp(v, "both") == 0)
				s->dirs = FAULT_DIR_BIT(FAULT_IN) |
					  FAULT_DIR_BIT(FAULT_OUT);
			else
				return say(err, errlen, "bad dir '%s': in, out "
					   "or both", v);
			break;
		case K_LIMIT:
			if (parse_u64(v, 1, 1000000, &x) != 0)
				return say(err, errlen, "bad limit '%s': packets, "
					   "1 to 1000000", v);
			s->limit = (uint32_t)x;
			break;
		}
	}
	if (s->jitter > s->delay) {
		char j[24], dl[24];
		fmt_ms(j, sizeof(j), s->jitter);
		fmt_ms(dl, sizeof(dl), s->delay);
		return say(err, errlen, "jitter=%s is more than delay=%s: "
			   "packets leave after delay ± jitter", j, dl);
	}
	return 0;
}

void
fault_format(const struct fault_spec *s, char *buf, size_t len)
{
	static const char *const dirs[] = { "none", "in", "out", "both" };
	char l[16], du[16], r[16], h[24], dl[24], j[24];

	fmt_pct(l, sizeof(l), s->loss);
	fmt_pct(du, sizeof(du), s->dup);
	fmt_pct(r, sizeof(r), s->reorder);
	fmt_ms(h, sizeof(h), s->hold);
	fmt_ms(dl, sizeof(dl), s->delay);
	fmt_ms(j, sizeof(j), s->jitter);
	snprintf(buf, len,
		 "seed=%llu,loss=%s,dup=%s,reorder=%s,hold=%s,delay=%s,"
		 "jitter=%s,dir=%s,limit=%u",
		 (unsigned long long)s->seed, l, du, r, h, dl, j,
		 dirs[s->dirs & 3], s->limit);
}

/* ---- the injector ---- */

struct fault *
fault_new(const struct fault_spec *s, fault_emit_fn *emit, void *ctx,
	  uint64_t *stats)
{
	struct fault *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return NULL;
	f->s = *s;
	f->emit = emit;
	f->ctx = ctx;
	f->stats = stats;
	for (int dir = 0; dir < FAULT_NDIR; dir++) {
		struct fault_way *w = &f->way[dir];
		/* A stream per direction: what one direction sees does not
		 * shift the other's decisions. */
		uint64_t x = s->seed ^ (0x6a09e667f3bcc909ull * (uint64_t)(dir + 1));

		for (int i = 0; i < 4; i++)
			w->rng[i] = splitmix64(&x);
		TAILQ_INIT(&w->q);
	}
	return f;
}

static void
ent_free(struct fault *f, struct fault_ent *e)
{
	f->npkts--;
	f->nbytes -= e->len;
	free(e);
}

void
fault_free(struct fault *f)
{
	if (f == NULL)
		return;
	for (int dir = 0; dir < FAULT_NDIR; dir++) {
		struct fault_way *w = &f->way[dir];
		struct fault_ent *e;

		while ((e = TAILQ_FIRST(&w->q)) != NULL) {
			TAILQ_REMOVE(&w->q, e, link);
			ent_free(f, e);
		}
		if (w->held != NULL)
			ent_free(f, w->held);
	}
	free(f);
}

/* A copy of pkt, counted against the bound; NULL (counted) when full. */
static struct fault_ent *
ent_new(struct fault *f, const uint8_t *pkt, size_t len, uint32_t meta,
	uint64_t at)
{
	struct fault_ent *e = NULL;

	if (f->npkts < f->s.limit && f->nbytes + len <= FAULT_MAX_BYTES)
		e = malloc(sizeof(*e) + len);
	if (e == NULL) {
		f->stats[FAULT_QUEUE_FULL]++;
		return NULL;
	}
	memcpy(e->data, pkt, len);
	e->len = len;
	e->meta = meta;
	e->at = at;
	f->npkts++;
	f->nbytes += len;
	return e;
}

static uint64_t
tail_at(const struct fault_way *w)
{
	const struct fault_ent *t = TAILQ_LAST(&w->q, fault_q);

	return t == NULL ? 0 : t->at;
}

/* Emit and free the head of w's queue while it is due. Each entry leaves
 * the queue before emit runs, which may queue more. */
static void
release_way(struct fault *f, enum fault_dir dir, uint64_t now)
{
	struct fault_way *w = &f->way[dir];
	struct fault_ent *e;

	/* A held packet nobody overtook: it goes at its bound. */
	if (w->held != NULL && w->held->at <= now) {
		e = w->held;
		w->held = NULL;
		if (e->at < tail_at(w))
			e->at = tail_at(w);
		TAILQ_INSERT_TAIL(&w->q, e, link);
	}
	while ((e = TAILQ_FIRST(&w->q)) != NULL && e->at <= now) {
		TAILQ_REMOVE(&w->q, e, link);
		f->emit(f->ctx, dir, e->data, e->len, e->meta);
		ent_free(f, e);
	}
}

void
fault_packet(struct fault *f, enum fault_dir dir, const uint8_t *pkt,
	     size_t len, uint32_t meta, uint64_t now)
{
	struct fault_way *w = &f->way[dir];
	struct fault_ent *held = NULL;
	uint64_t r_loss, r_dup, r_reorder, r_jitter, at;
	unsigned copies, pass;

	if (!(f->s.dirs & FAULT_DIR_BIT(dir))) {
		f->emit(f->ctx, dir, pkt, len, meta);
		return;
	}
	/* Always four draws, so packet N's fate does not depend on what
	 * happened to packets before it. */
	r_loss = below(xoshiro(w->rng), FAULT_PPM);
	r_dup = below(xoshiro(w->rng), FAULT_PPM);
	r_reorder = below(xoshiro(w->rng), FAULT_PPM);
	r_jitter = below(xoshiro(w->rng), 2 * f->s.jitter + 1);

	release_way(f, dir, now);
	if (r_loss < f->s.loss) {
		f->stats[FAULT_DROPPED]++;
		return;
	}
	copies = 1;
	if (r_dup < f->s.dup) {
		f->stats[FAULT_DUPLICATED]++;
		copies = 2;
	}
	at = now + f->s.delay - f->s.jitter + r_jitter;
	if (at < tail_at(w))
		at = tail_at(w); /* delay keeps the order */
	pass = copies;
	if (r_reorder < f->s.reorder && w->held == NULL) {
		/* With a duplicate, the copy is the one held back. */
		pass--;
		w->held = ent_new(f, pkt, len, meta, at + f->s.hold);
		if (w->held != NULL)
			f->stats[FAULT_REORDERED]++;
	} else if (pass > 0) {
		/* This packet overtakes the held one: it follows it out. */
		held = w->held;
		w->held = NULL;
	}
	if (at <= now && TAILQ_EMPTY(&w->q)) {
		for (unsigned i = 0; i < pass; i++)
			f->emit(f->ctx, dir, pkt, len, meta);
		if (held != NULL) {
			f->emit(f->ctx, dir, held->data, held->len, held->meta);
			ent_free(f, held);
		}
		return;
	}
	for (unsigned i = 0; i < pass; i++) {
		struct fault_ent *e = ent_new(f, pkt, len, meta, at);
		if (e == NULL)
			break;
		f->stats[FAULT_DELAYED]++;
		TAILQ_INSERT_TAIL(&w->q, e, link);
	}
	if (held != NULL) {
		held->at = at;
		TAILQ_INSERT_TAIL(&w->q, held, link);
	}
}

void
fault_release(struct fault *f, uint64_t now)
{
	for (int dir = 0; dir < FAULT_NDIR; dir++)
		release_way(f, (enum fault_dir)dir, now);
}

uint64_t
fault_next_deadline(const struct fault *f)
{
	uint64_t next = NEVER;

	for (int dir = 0; dir < FAULT_NDIR; dir++) {
		const struct fault_way *w = &f->way[dir];
		const struct fault_ent *e = TAILQ_FIRST(&w->q);

		if (e != NULL && e->at < next)
			next = e->at;
		if (w->held != NULL && w->held->at < next)
			next = w->held->at;
	}
	return next;
}

size_t
fault_queued(const struct fault *f, size_t *bytes)
{
	if (bytes != NULL)
		*bytes = f->nbytes;
	return f->npkts;
}
