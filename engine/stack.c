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
	st->prng = cfg->seed ^ 0x9e3779b97f4a7c15ULL;
	st->pkt_cap = st->cfg.mtu;
	st->pkt = malloc(st->pkt_cap);
	if (st->pkt == NULL) {
		free(st);
		return NULL;
	}
	LIST_INIT(&st->socks);
	LIST_INIT(&st->reaplist);
	return st;
}

static void
sock_destroy(struct utcp_sock *s)
{
	ring_free(&s->snd);
	ring_free(&s->rcv);
	reass_free(&s->ooo);
	reass_free(&s->sacked);
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
	HASH_CLEAR(hh, st->conns);
	HASH_CLEAR(hl, st->listeners);
	{
		struct port_ent *p, *tmp;

		HASH_ITER(hh, st->ports, p, tmp)
		{
			HASH_DEL(st->ports, p);
			free(p);
		}
	}
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
	s->keepidle = c->keepidle ? c->keepidle : 7200;
	s->keepintvl = c->keepintvl ? c->keepintvl : 75;
	s->keepcnt = c->keepcnt ? c->keepcnt : 9;
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
		port_unref(st, s->tuple.lport, s->port_explicit);
		s->bound = false;
	}
	LIST_REMOVE(s, all);
	LIST_INSERT_HEAD(&st->reaplist, s, reap);
}

void
stack_reap(struct utcp_stack *st)
{
	struct utcp_sock *s;

	while ((s = LIST_FIRST(&st->reaplist)) != NULL) {
		struct utcp_event ev = {
		    .type = UTCP_EV_FREED,
		    .sock = s,
		    .old_state = s->state,
		    .new_state = s->state,
		    .cause = "freed",
		};

		LIST_REMOVE(s, reap);
		ev_emit_full(st, &ev);
		sock_destroy(s);
		st->nsocks--;
	}
}

int
conn_hash(struct utcp_sock *s)
{
	int hash_oom = 0;

	if (s->in_conns)
		return 0;
	HASH_ADD(hh, s->st->conns, tuple, sizeof(struct utcp_tuple), s);
	if (hash_oom)
		return -ENOMEM;
	s->in_conns = true;
	return 0;
}

void
conn_unhash(struct utcp_sock *s)
{
	if (!s->in_conns)
		return;
	HASH_DELETE(hh, s->st->conns, s);
	s->in_conns = false;
}

struct utcp_sock *
conn_lookup(struct utcp_stack *st, const struct utcp_tuple *t)
{
	struct utcp_sock *s;

	HASH_FIND(hh, st->conns, t, sizeof(*t), s);
	return s;
}

int
listen_hash(struct utcp_sock *s)
{
	int hash_oom = 0;

	if (s->in_listeners)
		return 0;
	memset(&s->lkey, 0, sizeof(s->lkey));
	s->lkey.port = s->tuple.lport;
	s->lkey.family = s->family;
	HASH_ADD(hl, s->st->listeners, lkey, sizeof(struct utcp_lkey), s);
	if (hash_oom)
		return -ENOMEM;
	s->in_listeners = true;
	return 0;
}

void
listen_unhash(struct utcp_sock *s)
{
	if (!s->in_listeners)
		return;
	HASH_DELETE(hl, s->st->listeners, s);
	s->in_listeners = false;
}

struct utcp_sock *
listen_lookup(struct utcp_stack *st, uint8_t family, uint16_t port)
{
	struct utcp_lkey k = {.port = port, .family = family};
	struct utcp_sock *s;

	HASH_FIND(hl, st->listeners, &k, sizeof(k), s);
	if (s == NULL && family == AF_INET) {
		/* A dual-stack IPv6 listener takes IPv4 too. */
		k.family = AF_INET6;
		HASH_FIND(hl, st->listeners, &k, sizeof(k), s);
		if (s != NULL && s->v6only)
			s = NULL;
	}
	return s;
}

int
port_ref(struct utcp_stack *st, uint16_t port, bool explicit_bind)
{
	struct port_ent *p;
	int hash_oom = 0;

	HASH_FIND(hh, st->ports, &port, sizeof(port), p);
	if (p == NULL) {
		p = calloc(1, sizeof(*p));
		if (p == NULL)
			return -ENOMEM;
		p->port = port;
		HASH_ADD(hh, st->ports, port, sizeof(p->port), p);
		if (hash_oom) {
			free(p);
			return -ENOMEM;
		}
	}
	p->nref++;
	if (explicit_bind)
		p->nexplicit++;
	return 0;
}

void
port_unref(struct utcp_stack *st, uint16_t port, bool explicit_bind)
{
	struct port_ent *p;

	HASH_FIND(hh, st->ports, &port, sizeof(port), p);
	if (p == NULL)
		return;
	if (explicit_bind && p->nexplicit > 0)
		p->nexplicit--;
	if (--p->nref == 0) {
		HASH_DEL(st->ports, p);
		free(p);
	}
}

bool
port_busy(struct utcp_stack *st, uint16_t port, bool explicit_only)
{
	struct port_ent *p;

	HASH_FIND(hh, st->ports, &port, sizeof(port), p);
	if (p == NULL)
		return false;
	return explicit_only ? p->nexplicit > 0 : p->nref > 0;
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
	if (ip.proto != WIRE_IPPROTO_TCP) {
		drop_pkt(st, NULL, UTCP_STAT_drop_ip_proto, now);
		return;
	}
	if (bad_source(&ip)) {
		drop_pkt(st, NULL, UTCP_STAT_drop_ip_bad_src, now);
		return;
	}
	if ((err = wire_tcp_parse(&ip, &seg)) != 0) {
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
