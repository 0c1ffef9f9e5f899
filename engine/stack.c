/*
 * stack.c — stacks, sockets' memory, demultiplexing, ports, counters and
 * events; the utcp_input() entry point.
 */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

_Static_assert(UTCP_STAT_ip_in == 0, "parsers use 0 for 'no drop'");
_Static_assert(sizeof(struct utcp_tuple) == 38, "demux key has no holes");

static const char *const stat_names[] = {
#define UTCP_STAT_NAME(name, desc) #name,
    UTCP_STATS(UTCP_STAT_NAME)
#undef UTCP_STAT_NAME
};
static const char *const stat_descs[] = {
#define UTCP_STAT_DESC(name, desc) desc,
    UTCP_STATS(UTCP_STAT_DESC)
#undef UTCP_STAT_DESC
};

const char *
utcp_stat_name(int stat)
{
	return stat >= 0 && stat < UTCP_NSTATS ? stat_names[stat] : "?";
}

const char *
utcp_stat_desc(int stat)
{
	return stat >= 0 && stat < UTCP_NSTATS ? stat_descs[stat] : "?";
}

void
utcp_config_defaults(struct utcp_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->mtu = 1500;
	/* Large enough for a fast path with window scale 7 (as Linux);
	 * buffers grow only as data actually queues. */
	cfg->sndbuf = 2u << 20;
	cfg->rcvbuf = 4u << 20;
	cfg->rto_initial = UTCP_SEC(1); /* RFC 6298 2.1 */
	cfg->rto_min = UTCP_MS(200);	/* Linux TCP_RTO_MIN */
	cfg->rto_max = UTCP_SEC(120);	/* Linux TCP_RTO_MAX */
	cfg->delack = UTCP_MS(40);	/* Linux TCP_DELACK_MIN */
	cfg->time_wait = UTCP_SEC(60);
	cfg->fin_timeout = UTCP_SEC(60);
	cfg->syn_retries = 6;
	cfg->synack_retries = 5;
	cfg->retries2 = 15;
	cfg->keepidle = 7200;
	cfg->keepintvl = 75;
	cfg->keepcnt = 9;
	cfg->max_backlog = 4096;
	cfg->port_lo = 32768;
	cfg->port_hi = 60999;
}

struct utcp_stack *
utcp_stack_new(const struct utcp_config *cfg)
{
	struct utcp_stack *st = calloc(1, sizeof(*st));

	if (st == NULL)
		return NULL;
	st->cfg = *cfg;
	if (st->cfg.mtu == 0)
		st->cfg.mtu = 1500;
	if (st->cfg.mtu < 128)
		st->cfg.mtu = 128;
	if (st->cfg.mtu > 65535)
		st->cfg.mtu = 65535;
	if (st->cfg.port_lo == 0 || st->cfg.port_hi < st->cfg.port_lo) {
		st->cfg.port_lo = 32768;
		st->cfg.port_hi = 60999;
	}
	if (st->cfg.sndbuf < 4608)
		st->cfg.sndbuf = 4608;
	if (st->cfg.rcvbuf < 2304)
		st->cfg.rcvbuf = 2304;
	if (st->cfg.rto_min == 0)
		st->cfg.rto_min = UTCP_MS(1);
	if (st->cfg.rto_max < st->cfg.rto_min)
		st->cfg.rto_max = st->cfg.rto_min;
	if (st->cfg.rto_initial == 0)
		st->cfg.rto_initial = UTCP_SEC(1);
	if (st->cfg.max_backlog == 0)
		st->cfg.max_backlog = 4096;
	/* Queue lengths are 16-bit (Linux's somaxconn default is 4096). */
	if (st->cfg.max_backlog > 65534)
		st->cfg.max_backlog = 65534;
	st->prng = cfg->seed ^ 0x9e3779b97f4a7c15ULL;
	/* The demux hash is keyed (remote peers choose ports and could
	 * otherwise aim at one chain), with a key apart from the ISN's. */
	{
		static const char tag[] = "utcp demux hash";
		uint64_t k0 = siphash24(st->cfg.isn_key, tag, 8);
		uint64_t k1 = siphash24(st->cfg.isn_key, tag + 8, 8);

		memcpy(st->hkey, &k0, 8);
		memcpy(st->hkey + 8, &k1, 8);
	}
	st->pkt_cap = st->cfg.mtu;
	st->pkt = malloc(st->pkt_cap);
	if (st->pkt == NULL) {
		free(st);
		return NULL;
	}
	LIST_INIT(&st->socks);
	return st;
}

static void
sock_destroy(struct utcp_sock *s)
{
	ring_free(&s->snd);
	ring_free(&s->rcv);
	reass_free(&s->ooo);
	reass_free(&s->sacked);
	free(s->lsn);
	free(s);
}

void
utcp_stack_free(struct utcp_stack *st)
{
	struct utcp_sock *s;

	if (st == NULL)
		return;
	while ((s = LIST_FIRST(&st->socks)) != NULL)
		sock_release(s);
	stack_reap(st);
	free(st->ctab);
	HASH_CLEAR(hh, st->listeners);
	for (size_t i = 0; i < sizeof(st->ports) / sizeof(st->ports[0]); i++)
		free(st->ports[i]);
	free(st->heap);
	free(st->pkt);
	free(st);
}

const uint64_t *
utcp_stats(const struct utcp_stack *st)
{
	return st->stats;
}

unsigned
utcp_sock_count(const struct utcp_stack *st)
{
	return st->nsocks;
}

void
utcp_foreach(struct utcp_stack *st, void (*fn)(void *arg, struct utcp_sock *s),
	     void *arg)
{
	struct utcp_sock *s, *next;

	for (s = LIST_FIRST(&st->socks); s != NULL; s = next) {
		next = LIST_NEXT(s, all);
		fn(arg, s);
	}
}

void
stat_inc(struct utcp_stack *st, enum utcp_stat stat)
{
	st->stats[stat]++;
}

void
ev_emit_full(struct utcp_stack *st, const struct utcp_event *ev)
{
	if (st->cfg.event != NULL)
		st->cfg.event(st->cfg.ctx, ev);
}

void
ev_emit(struct utcp_sock *s, enum utcp_event_type type, const char *cause,
	utcp_time_t now)
{
	struct utcp_event ev = {
	    .type = type,
	    .sock = s,
	    .old_state = s->state,
	    .new_state = s->state,
	    .err = s->so_error,
	    .cause = cause,
	    .now = now,
	};

	ev_emit_full(s->st, &ev);
}

void
drop_pkt(struct utcp_stack *st, struct utcp_sock *s, int stat, utcp_time_t now)
{
	struct utcp_event ev = {
	    .type = UTCP_EV_DROP,
	    .sock = s,
	    .arg = (uint32_t)stat,
	    .cause = utcp_stat_name(stat),
	    .now = now,
	};

	if (s != NULL)
		ev.old_state = ev.new_state = s->state;
	stat_inc(st, (enum utcp_stat)stat);
	ev_emit_full(st, &ev);
}

/* splitmix64: small, seedable, good enough to spread ports. */
uint64_t
prng_next(struct utcp_stack *st)
{
	uint64_t z = (st->prng += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

const struct utcp_addr *
local_addr(struct utcp_stack *st, uint8_t family)
{
	const struct utcp_addr *a =
	    family == AF_INET6 ? &st->cfg.local6 : &st->cfg.local4;

	return a->family == family ? a : NULL;
}

/* A configured count, its default when 0, at most max. */
static unsigned
cfg_clamp(unsigned v, unsigned dflt, unsigned max)
{
	if (v == 0)
		v = dflt;
	return v > max ? max : v;
}

struct utcp_sock *
sock_alloc(struct utcp_stack *st, int family)
{
	struct utcp_sock *s = calloc(1, sizeof(*s));
	const struct utcp_config *c = &st->cfg;

	if (s == NULL)
		return NULL;
	s->st = st;
	s->family = (uint8_t)family;
	s->state = UTCP_CLOSED;
	s->app_owned = true;
	s->heap_idx = UINT32_MAX;
	for (int i = 0; i < TCPT_N; i++)
		s->t_deadline[i] = UTCP_TIME_NEVER;
	s->t_earliest = UTCP_TIME_NEVER;
	TAILQ_INIT(&s->synq);
	TAILQ_INIT(&s->accq);
	s->sndbuf = c->sndbuf;
	s->rcvbuf = c->rcvbuf;
	/* Linux's ranges (MAX_TCP_KEEPIDLE …), which the fields hold. */
	s->keepidle = (uint16_t)cfg_clamp(c->keepidle, 7200, 32767);
	s->keepintvl = (uint16_t)cfg_clamp(c->keepintvl, 75, 32767);
	s->keepcnt = (uint8_t)cfg_clamp(c->keepcnt, 9, 127);
	s->want_ws = s->want_ts = s->want_sack = true;
	s->cc = &cc_cubic;
	s->mss = UTCP_MSS_DEFAULT;
	s->rto = (uint32_t)c->rto_initial;
	LIST_INSERT_HEAD(&st->socks, s, all);
	st->nsocks++;
	return s;
}

void
sock_release(struct utcp_sock *s)
{
	struct utcp_stack *st = s->st;
	struct utcp_sock *c;

	if (s->dead)
		return;
	s->dead = true;
	/* Embryos and unaccepted connections die with their listener. */
	while ((c = TAILQ_FIRST(&s->synq)) != NULL)
		sock_release(c);
	while ((c = TAILQ_FIRST(&s->accq)) != NULL)
		sock_release(c);
	if (s->parent != NULL) {
		struct utcp_sock *p = s->parent;

		if (s->on_synq) {
			TAILQ_REMOVE(&p->synq, s, qe);
			p->synq_len--;
		} else if (s->on_accq) {
			TAILQ_REMOVE(&p->accq, s, qe);
			p->accq_len--;
		}
		s->on_synq = s->on_accq = false;
		s->parent = NULL;
	}
	conn_unhash(s);
	listen_unhash(s);
	timer_cancel_all(s);
	if (s->bound) {
		if (s->rp_bound)
			port_reuseport(st, s->tuple.lport, -1);
		s->rp_bound = false;
		port_unref(st, s->tuple.lport, s->port_explicit);
		s->bound = false;
	}
	LIST_REMOVE(s, all);
	/* utcp_foreach may be past s: s's own link stays as it was. */
	s->hnext = st->reap;
	st->reap = s;
}

void
stack_reap(struct utcp_stack *st)
{
	struct utcp_sock *s;

	while ((s = st->reap) != NULL) {
		struct utcp_event ev = {
		    .type = UTCP_EV_FREED,
		    .sock = s,
		    .old_state = s->state,
		    .new_state = s->state,
		    .cause = "freed",
		};

		st->reap = s->hnext;
		ev_emit_full(st, &ev);
		sock_destroy(s);
		st->nsocks--;
	}
}

/* ---- connections by 4-tuple: chained buckets, a power of two of them,
 * doubled when the chains average one entry and halved when they average
 * under 1/8. Each socket carries only its chain link and hash. ---- */

#define CTAB_MIN 64u

static uint32_t
tuple_hash(const struct utcp_stack *st, const struct utcp_tuple *t)
{
	return (uint32_t)siphash24(st->hkey, t, sizeof(*t));
}

/* Move every connection into a table of nb buckets; keep the old table
 * when memory is short (chains just grow longer). */
static void
ctab_resize(struct utcp_stack *st, uint32_t nb)
{
	struct utcp_sock **nt = calloc(nb, sizeof(*nt));
	uint32_t ob = st->ctab ? st->ctab_mask + 1 : 0;

	if (nt == NULL)
		return;
	for (uint32_t i = 0; i < ob; i++) {
		struct utcp_sock *s = st->ctab[i], *next;

		for (; s != NULL; s = next) {
			next = s->hnext;
			s->hnext = nt[s->hashv & (nb - 1)];
			nt[s->hashv & (nb - 1)] = s;
		}
	}
	free(st->ctab);
	st->ctab = nt;
	st->ctab_mask = nb - 1;
}

int
conn_hash(struct utcp_sock *s)
{
	struct utcp_stack *st = s->st;
	uint32_t b;

	if (s->in_conns)
		return 0;
	if (st->ctab == NULL) {
		ctab_resize(st, CTAB_MIN);
		if (st->ctab == NULL)
			return -ENOMEM;
	} else if (st->nconns > st->ctab_mask && st->ctab_mask < INT32_MAX) {
		ctab_resize(st, (st->ctab_mask + 1) * 2);
	}
	s->hashv = tuple_hash(st, &s->tuple);
	b = s->hashv & st->ctab_mask;
	s->hnext = st->ctab[b];
	st->ctab[b] = s;
	st->nconns++;
	s->in_conns = true;
	return 0;
}

void
conn_unhash(struct utcp_sock *s)
{
	struct utcp_stack *st = s->st;
	struct utcp_sock **pp;

	if (!s->in_conns)
		return;
	for (pp = &st->ctab[s->hashv & st->ctab_mask]; *pp != s;
	     pp = &(*pp)->hnext)
		;
	*pp = s->hnext;
	s->hnext = NULL;
	s->in_conns = false;
	if (--st->nconns == 0) {
		free(st->ctab);
		st->ctab = NULL;
	} else if (st->ctab_mask + 1 > CTAB_MIN &&
		   st->nconns < (st->ctab_mask + 1) / 8) {
		ctab_resize(st, (st->ctab_mask + 1) / 2);
	}
}

struct utcp_sock *
conn_lookup(struct utcp_stack *st, const struct utcp_tuple *t)
{
	struct utcp_sock *s;
	uint32_t h;

	if (st->ctab == NULL)
		return NULL;
	h = tuple_hash(st, t);
	for (s = st->ctab[h & st->ctab_mask]; s != NULL; s = s->hnext)
		if (s->hashv == h && memcmp(&s->tuple, t, sizeof(*t)) == 0)
			return s;
	return NULL;
}

/* ---- listeners by (family, port), in a small side record ---- */

int
listen_hash(struct utcp_sock *s)
{
	struct utcp_lsn *l;
	int hash_oom = 0;

	struct utcp_lsn *head;

	if (s->lsn != NULL)
		return 0;
	if ((l = calloc(1, sizeof(*l))) == NULL)
		return -ENOMEM;
	l->key.port = s->tuple.lport;
	l->key.family = s->family;
	l->sock = s;
	HASH_FIND(hh, s->st->listeners, &l->key, sizeof(l->key), head);
	if (head != NULL) {
		/* SO_REUSEPORT: one more in the group (bind checked it) */
		if (!s->reuseport || !head->sock->reuseport) {
			free(l);
			return -EADDRINUSE;
		}
		l->rp_next = head->rp_next;
		head->rp_next = l;
		s->lsn = l;
		return 0;
	}
	HASH_ADD(hh, s->st->listeners, key, sizeof(struct utcp_lkey), l);
	if (hash_oom) {
		free(l);
		return -ENOMEM;
	}
	s->lsn = l;
	return 0;
}

void
listen_unhash(struct utcp_sock *s)
{
	struct utcp_lsn *l = s->lsn, *head, **pp;

	if (l == NULL)
		return;
	s->lsn = NULL;
	HASH_FIND(hh, s->st->listeners, &l->key, sizeof(l->key), head);
	if (head == l && l->rp_next != NULL) {
		/* The group's hashed node stays: the next member moves into
		 * it, so nothing is hashed again (no allocation to fail). */
		struct utcp_lsn *next = l->rp_next;

		l->sock = next->sock;
		l->rp_next = next->rp_next;
		l->sock->lsn = l;
		free(next);
		return;
	}
	if (head == l) {
		HASH_DELETE(hh, s->st->listeners, l);
	} else if (head != NULL) {
		for (pp = &head->rp_next; *pp != NULL; pp = &(*pp)->rp_next)
			if (*pp == l) {
				*pp = l->rp_next;
				break;
			}
	}
	free(l);
}

struct utcp_sock *
listen_lookup(struct utcp_stack *st, uint8_t family, uint16_t port)
{
	struct utcp_lkey k = {.port = port, .family = family};
	struct utcp_lsn *l;

	HASH_FIND(hh, st->listeners, &k, sizeof(k), l);
	if (l == NULL && family == AF_INET) {
		/* A dual-stack IPv6 listener takes IPv4 too. */
		k.family = AF_INET6;
		HASH_FIND(hh, st->listeners, &k, sizeof(k), l);
		if (l != NULL && l->sock->v6only)
			l = NULL;
	}
	return l != NULL ? l->sock : NULL;
}

struct utcp_sock *
listen_select(struct utcp_stack *st, const struct utcp_tuple *t)
{
	struct utcp_sock *l = listen_lookup(st, t->family, t->lport);
	const struct utcp_lsn *g;
	uint32_t n = 0, h = 2166136261u, k;

	if (l == NULL || l->lsn == NULL || l->lsn->rp_next == NULL)
		return l;
	/* SO_REUSEPORT: the group shares the connections, each flow always
	 * to the same member (FNV-1a of the peer's address and port) */
	for (g = l->lsn; g != NULL; g = g->rp_next)
		if (g->sock->state == UTCP_LISTEN)
			n++;
	if (n == 0)
		return l;
	for (size_t i = 0; i < sizeof(t->raddr); i++)
		h = (h ^ t->raddr[i]) * 16777619u;
	h = ((h ^ (t->rport & 0xff)) * 16777619u ^ (t->rport >> 8)) * 16777619u;
	k = h % n;
	for (g = l->lsn; g != NULL; g = g->rp_next)
		if (g->sock->state == UTCP_LISTEN && k-- == 0)
			return g->sock;
	return l;
}

/* ---- local ports in use: counts in pages of PORT_PAGE ports, a page
 * allocated while any of its ports is used ---- */

int
port_ref(struct utcp_stack *st, uint16_t port, bool explicit_bind)
{
	struct port_page **pg = &st->ports[port / PORT_PAGE];
	unsigned i = port % PORT_PAGE;

	if (*pg == NULL && (*pg = calloc(1, sizeof(**pg))) == NULL)
		return -ENOMEM;
	if ((*pg)->nref[i]++ == 0)
		(*pg)->used++;
	if (explicit_bind)
		(*pg)->nexplicit[i]++;
	return 0;
}

void
port_unref(struct utcp_stack *st, uint16_t port, bool explicit_bind)
{
	struct port_page *pg = st->ports[port / PORT_PAGE];
	unsigned i = port % PORT_PAGE;

	if (pg == NULL || pg->nref[i] == 0)
		return;
	if (explicit_bind && pg->nexplicit[i] > 0)
		pg->nexplicit[i]--;
	if (--pg->nref[i] == 0) {
		pg->nexplicit[i] = 0;
		pg->nreuseport[i] = 0;
		if (--pg->used == 0) {
			free(pg);
			st->ports[port / PORT_PAGE] = NULL;
		}
	}
}

bool
port_busy(struct utcp_stack *st, uint16_t port, bool explicit_only)
{
	const struct port_page *pg = st->ports[port / PORT_PAGE];
	unsigned i = port % PORT_PAGE;

	if (pg == NULL)
		return false;
	return explicit_only ? pg->nexplicit[i] > 0 : pg->nref[i] > 0;
}

bool
port_reuseport_only(struct utcp_stack *st, uint16_t port)
{
	const struct port_page *pg = st->ports[port / PORT_PAGE];
	unsigned i = port % PORT_PAGE;

	return pg != NULL && pg->nexplicit[i] > 0 &&
	       pg->nreuseport[i] == pg->nexplicit[i];
}

void
port_reuseport(struct utcp_stack *st, uint16_t port, int delta)
{
	struct port_page *pg = st->ports[port / PORT_PAGE];
	unsigned i = port % PORT_PAGE;

	if (pg != NULL && (delta > 0 || pg->nreuseport[i] > 0))
		pg->nreuseport[i] += (uint32_t)delta;
}

/* RFC 1122 3.2.1.3 / RFC 9293 3.9.1: no connection from a broadcast,
 * multicast or unspecified source. */
static bool
bad_source(const struct wire_ip *ip)
{
	static const uint8_t zero[16];

	if (ip->family == AF_INET) {
		return ip->src[0] >= 224 || memcmp(ip->src, zero, 4) == 0;
	}
	return ip->src[0] == 0xff || memcmp(ip->src, zero, 16) == 0;
}

void
utcp_input(struct utcp_stack *st, const uint8_t *pkt, size_t len,
	   utcp_time_t now)
{
	utcp_input_flags(st, pkt, len, 0, now);
}

void
utcp_input_flags(struct utcp_stack *st, const uint8_t *pkt, size_t len,
		 unsigned flags, utcp_time_t now)
{
	const struct utcp_addr *me;
	struct wire_ip ip;
	struct wire_tcp seg;
	int err;

	stack_time(st, now);
	stat_inc(st, UTCP_STAT_ip_in);
	if ((err = wire_ip_parse(pkt, len, &ip)) != 0) {
		drop_pkt(st, NULL, err, now);
		return;
	}
	me = local_addr(st, ip.family);
	if (me == NULL ||
	    memcmp(me->ip, ip.dst, ip.family == AF_INET ? 4 : 16) != 0) {
		drop_pkt(st, NULL, UTCP_STAT_drop_ip_not_ours, now);
		return;
	}
	if (bad_source(&ip)) {
		drop_pkt(st, NULL, UTCP_STAT_drop_ip_bad_src, now);
		return;
	}
	if (ip.proto == (ip.family == AF_INET ? WIRE_IPPROTO_ICMP
					      : WIRE_IPPROTO_ICMPV6)) {
		icmp_input(st, &ip, now);
		stack_reap(st);
		return;
	}
	if (ip.proto != WIRE_IPPROTO_TCP) {
		drop_pkt(st, NULL, UTCP_STAT_drop_ip_proto, now);
		return;
	}
	if ((err = wire_tcp_parse_ex(&ip, &seg, flags)) != 0) {
		drop_pkt(st, NULL, err, now);
		return;
	}
	if (seg.sport == 0 || seg.dport == 0) {
		drop_pkt(st, NULL, UTCP_STAT_drop_tcp_bad_port, now);
		return;
	}
	stat_inc(st, UTCP_STAT_tcp_in);
	tcp_input(st, &ip, &seg, now);
	stack_reap(st);
}
