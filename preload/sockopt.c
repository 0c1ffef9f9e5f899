/*
 * sockopt.c — setsockopt/getsockopt, and the record of what a socket was
 * told before it connected (replayed if the loopback policy moves it to
 * the kernel, connect.c).
 *
 * Where an option goes:
 *   our end (libc)  SO_RCVTIMEO, SO_SNDTIMEO, SO_RCVLOWAT: they govern the
 *                   program's blocking reads and writes, which are ours
 *   answered here   SO_TYPE, SO_DOMAIN, SO_PROTOCOL
 *   the daemon      everything else: SO_ERROR, SO_KEEPALIVE, SO_LINGER,
 *                   SO_REUSEADDR/PORT, SO_RCVBUF/SNDBUF, SO_ACCEPTCONN …
 *                   and every IPPROTO_TCP, IPPROTO_IP, IPPROTO_IPV6 option
 */
#include "preload.h"

#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

enum route { TO_END, LOCAL, TO_DAEMON };

static enum route
route(int level, int name)
{
	if (level != SOL_SOCKET)
		return TO_DAEMON;
	switch (name) {
	case SO_RCVTIMEO:
	case SO_SNDTIMEO:
#if defined(SO_RCVTIMEO_NEW) && SO_RCVTIMEO_NEW != SO_RCVTIMEO
	case SO_RCVTIMEO_NEW:
#endif
#if defined(SO_SNDTIMEO_NEW) && SO_SNDTIMEO_NEW != SO_SNDTIMEO
	case SO_SNDTIMEO_NEW:
#endif
	case SO_RCVLOWAT:
		return TO_END;
	case SO_TYPE:
	case SO_DOMAIN:
	case SO_PROTOCOL:
		return LOCAL;
	default:
		return TO_DAEMON;
	}
}

/* --- the record: per socket id, in call order; a mutex, slow path only --- */

struct rec {
	struct rec *next;
	uint32_t id;
	int level, name;
	socklen_t len;
	unsigned char val[];
};

static pthread_mutex_t rec_lock = PTHREAD_MUTEX_INITIALIZER;
static struct rec *recs;

void
utcp_rec_add(int fd, struct utcp_fdent *e, int level, int name,
	     const void *val, socklen_t len)
{
	struct rec *r, **pp;

	/* Only the loopback policy needs it, and only before connecting. */
	if (!utcp_cfg.loopback_kernel ||
	    (e->flags & (UTCP_FD_CONNECTING | UTCP_FD_CONNECTED |
			 UTCP_FD_LISTENING)))
		return;
	if ((r = malloc(sizeof(*r) + len)) == NULL)
		return;
	r->next = NULL;
	r->id = e->id;
	r->level = level;
	r->name = name;
	r->len = len;
	if (len > 0)
		memcpy(r->val, val, len);
	pthread_mutex_lock(&rec_lock);
	/* the latest value of an option wins, at its latest place */
	for (pp = &recs; *pp != NULL;) {
		struct rec *o = *pp;
		if (o->id == r->id && o->level == level && o->name == name) {
			*pp = o->next;
			free(o);
		} else {
			pp = &o->next;
		}
	}
	*pp = r;
	pthread_mutex_unlock(&rec_lock);
	utcp_fd_set_flags(fd, UTCP_FD_RECORDS, 0);
}

int
utcp_rec_replay(uint32_t id, int kfd, bool replay_bind)
{
	int r = 0;

	pthread_mutex_lock(&rec_lock);
	for (struct rec *o = recs; o != NULL && r == 0; o = o->next) {
		if (o->id != id)
			continue;
		if (o->level == UTCP_REC_BIND) {
			/* bound in the engine, now bound again on loopback */
			if (!replay_bind)
				r = -EINVAL;
			else if (LIBC(bind)(kfd, (const void *)o->val, o->len) < 0)
				r = -errno;
		} else if (LIBC(setsockopt)(kfd, o->level, o->name, o->val,
					    o->len) < 0) {
			/* an engine-only option: the kernel may not know it */
			utcp_debug("replay of option %d/%d on the kernel "
				   "socket: %s",
				   o->level, o->name, strerrordesc_np(errno));
		}
	}
	pthread_mutex_unlock(&rec_lock);
	return r;
}

void
utcp_rec_drop(uint32_t id)
{
	if (__atomic_load_n(&recs, __ATOMIC_RELAXED) == NULL)
		return;
	pthread_mutex_lock(&rec_lock);
	for (struct rec **pp = &recs; *pp != NULL;) {
		struct rec *o = *pp;
		if (o->id == id) {
			*pp = o->next;
			free(o);
		} else {
			pp = &o->next;
		}
	}
	pthread_mutex_unlock(&rec_lock);
}

void
utcp_rec_atfork_prepare(void)
{
	pthread_mutex_lock(&rec_lock);
}

void
utcp_rec_atfork_parent(void)
{
	pthread_mutex_unlock(&rec_lock);
}

void
utcp_rec_atfork_child(void)
{
	pthread_mutex_unlock(&rec_lock);
}

/* --- the calls --- */

static int
sock_setopt(int fd, struct utcp_fdent *e, int level, int name,
	    const void *val, socklen_t len)
{
	struct utcp_req req;
	struct utcp_rep rep;
	int r;

	switch (route(level, name)) {
	case TO_END:
		if (LIBC(setsockopt)(fd, level, name, val, len) < 0)
			return -errno;
		utcp_rec_add(fd, e, level, name, val, len);
		return 0;
	case LOCAL:
		return -ENOPROTOOPT; /* read-only, as in the kernel */
	case TO_DAEMON:
		break;
	}
	if ((int)len < 0 || len > UTCP_OPT_MAX)
		return -EINVAL;
	if (val == NULL && len > 0)
		return -EFAULT;
	utcp_req_init(&req, UTCP_OP_SETSOCKOPT, e->id);
	req.arg[0] = level;
	req.arg[1] = name;
	req.len = len;
	if (len > 0)
		memcpy(req.data, val, len);
	r = utcp_ctl_call(&req, -1, &rep, NULL, false);
	utcp_debug("setsockopt(%d, %d, %d) = %s", fd, level, name,
		   r < 0 ? strerrordesc_np(-r) : "0");
	if (r == 0)
		utcp_rec_add(fd, e, level, name, val, len);
	return r;
}

static int
sock_getopt(int fd, struct utcp_fdent *e, int level, int name, void *val,
	    socklen_t *len)
{
	struct utcp_req req;
	struct utcp_rep rep;
	socklen_t want, n;
	int r, v;

	if (len == NULL)
		return -EFAULT;
	if ((int)(want = *len) < 0)
		return -EINVAL;
	switch (route(level, name)) {
	case TO_END:
		return LIBC(getsockopt)(fd, level, name, val, len) < 0 ? -errno
									: 0;
	case LOCAL:
		v = name == SO_TYPE ? SOCK_STREAM
		    : name == SO_DOMAIN ? e->family
					: IPPROTO_TCP;
		n = want < sizeof(v) ? want : sizeof(v);
		if (n > 0 && val == NULL)
			return -EFAULT;
		if (n > 0)
			memcpy(val, &v, n);
		*len = n;
		return 0;
	case TO_DAEMON:
		break;
	}
	utcp_req_init(&req, UTCP_OP_GETSOCKOPT, e->id);
	req.arg[0] = level;
	req.arg[1] = name;
	req.arg[2] = (int32_t)(want < UTCP_OPT_MAX ? want : UTCP_OPT_MAX);
	if ((r = utcp_ctl_call(&req, -1, &rep, NULL, false)) < 0)
		return r;
	n = rep.len < UTCP_OPT_MAX ? rep.len : UTCP_OPT_MAX;
	if (n > want)
		n = want;
	if (n > 0 && val == NULL)
		return -EFAULT;
	if (n > 0)
		memcpy(val, rep.data, n);
	*len = n;
	return 0;
}

UTCP_EXPORT int
setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
	struct utcp_fdent *e = utcp_sock_lookup(fd);

	if (e == NULL)
		return LIBC(setsockopt)(fd, level, name, val, len);
	uint64_t t0 = utcp_trace_start();
	uint32_t id = e->id;
	int r = sock_setopt(fd, e, level, name, val, len);
	if (unlikely(t0 != 0)) {
		char o[32], v[32];
		utcp_trace_call(t0, "setsockopt", id, fd, r, "%d, %s, %s", fd,
				utcp_trace_opt(level, name, o, sizeof(o)),
				utcp_trace_optval(val, len, v, sizeof(v)));
	}
	return utcp_ret(r);
}

UTCP_EXPORT int
getsockopt(int fd, int level, int name, void *__restrict val,
	   socklen_t *__restrict len)
{
	struct utcp_fdent *e = utcp_sock_lookup(fd);

	if (e == NULL)
		return LIBC(getsockopt)(fd, level, name, val, len);
	uint64_t t0 = utcp_trace_start();
	int r = sock_getopt(fd, e, level, name, val, len);
	if (unlikely(t0 != 0)) {
		char o[32], v[32];
		utcp_trace_call(t0, "getsockopt", e->id, fd, r, "%d, %s, %s",
				fd, utcp_trace_opt(level, name, o, sizeof(o)),
				r == 0 ? utcp_trace_optval(val, *len, v,
							   sizeof(v))
				       : "?");
	}
	return utcp_ret(r);
}
