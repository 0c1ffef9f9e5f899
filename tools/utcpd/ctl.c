/*
 * ctl.c — the control socket (ipc.h): SOCK_SEQPACKET, one request and one
 * reply per message, peers checked with SO_PEERCRED. Every op is answered
 * at once; nothing here ever blocks the loop (a client that does not read
 * its replies is dropped, a trace subscriber that does not read loses
 * events).
 */
#include "utcpd.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <linux/sockios.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

_Static_assert(sizeof(struct utcp_info) <= sizeof(((struct utcp_ipc_conn *)0)->info),
	       "struct utcp_info must fit in utcp_ipc_conn.info");

/* ---- addresses ---- */

int
addr_from_sockaddr(const struct sockaddr_storage *ss, uint32_t len,
		   struct utcp_addr *a)
{
	memset(a, 0, sizeof(*a));
	if (len < sizeof(sa_family_t))
		return -EINVAL;
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
		if (len < sizeof(*sin))
			return -EINVAL;
		a->family = AF_INET;
		a->port = ntohs(sin->sin_port);
		memcpy(a->ip, &sin->sin_addr, 4);
		return 0;
	}
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 =
			(const struct sockaddr_in6 *)ss;
		/* RFC 2133's sockaddr_in6 had no scope id: 24 bytes. */
		if (len < 24)
			return -EINVAL;
		a->family = AF_INET6;
		a->port = ntohs(sin6->sin6_port);
		memcpy(a->ip, &sin6->sin6_addr, 16);
		return 0;
	}
	return -EAFNOSUPPORT;
}

socklen_t
addr_to_sockaddr(const struct utcp_addr *a, int family,
		 struct sockaddr_storage *ss)
{
	int fam = a->family != 0 ? a->family : family;

	memset(ss, 0, sizeof(*ss));
	if (fam == AF_INET6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(a->port);
		if (a->family == AF_INET6)
			memcpy(&sin6->sin6_addr, a->ip, 16);
		return sizeof(*sin6);
	}
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	sin->sin_family = AF_INET;
	sin->sin_port = htons(a->port);
	if (a->family == AF_INET)
		memcpy(&sin->sin_addr, a->ip, 4);
	return sizeof(*sin);
}

/* ---- the listening socket ---- */

static int
mkdir_parents(const char *path)
{
	char buf[PATH_MAX];
	char *p;

	if (strlcpy(buf, path, sizeof(buf)) >= sizeof(buf))
		return -ENAMETOOLONG;
	p = strrchr(buf, '/');
	if (p == NULL || p == buf)
		return 0;
	*p = '\0';
	for (p = buf + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) != 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, 0755) != 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/* A socket file already at path: live daemon (-EADDRINUSE), stale (0,
 * removed), or not ours to touch (-errno). */
static int
clear_stale(const char *path, const struct sockaddr_un *sa)
{
	struct stat sb;
	int fd, r;

	if (lstat(path, &sb) != 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(sb.st_mode)) {
		log_error("%s exists and is not a socket; not removing it",
			  path);
		return -EEXIST;
	}
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	r = connect(fd, (const struct sockaddr *)sa, sizeof(*sa));
	close(fd);
	if (r == 0) {
		log_error("another utcpd is already serving %s", path);
		return -EADDRINUSE;
	}
	if (errno != ECONNREFUSED) {
		r = -errno;
		log_error("cannot tell whether %s is in use: %s", path,
			  strerror(-r));
		return r;
	}
	/* Nobody listens: a daemon died without cleaning up. */
	log_info("removing stale socket %s", path);
	if (unlink(path) != 0 && errno != ENOENT)
		return -errno;
	return 0;
}

int
ctl_check(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int r;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		log_error("socket path too long (max %zu): %s",
			  sizeof(sa.sun_path) - 1, path);
		return -ENAMETOOLONG;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if ((r = mkdir_parents(path)) < 0) {
		log_error("cannot create the directory of %s: %s", path,
			  strerror(-r));
		return r;
	}
	return clear_stale(path, &sa);
}

int
ctl_listen(struct daemon *d, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int s, r;

	/* ctl_check ran at start-up; a stale file left since is cleared. */
	if ((r = ctl_check(path)) < 0)
		return r;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -errno;
	if (bind(s, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		r = -errno;
		log_error("cannot bind %s: %s", path, strerror(-r));
		close(s);
		return r;
	}
	strlcpy(d->sock_path, path, sizeof(d->sock_path));
	d->sock_bound = true;
	if (listen(s, 128) != 0) {
		r = -errno;
		log_error("cannot listen on %s: %s", path, strerror(-r));
		close(s);
		return r;
	}
	d->ctl = s;
	d->ep_ctl.kind = EP_CTL;
	uint32_t cur = 0;
	bool reg = false;
	return ep_set(d, s, &d->ep_ctl, EPOLLIN, &cur, &reg);
}

static void
read_comm(pid_t pid, char *out, size_t len)
{
	char path[64];
	ssize_t n;
	int fd;

	out[0] = '\0';
	snprintf(path, sizeof(path), "/proc/%ld/comm", (long)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	n = read(fd, out, len - 1);
	close(fd);
	if (n <= 0) {
		out[0] = '\0';
		return;
	}
	out[n] = '\0';
	out[strcspn(out, "\n")] = '\0';
}

void
ctl_accept(struct daemon *d)
{
	for (;;) {
		struct ucred cr;
		socklen_t crlen = sizeof(cr);
		struct client *c;
		int fd = accept4(d->ctl, NULL, NULL,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if ((errno == EMFILE || errno == ENFILE) &&
			    d->spare_fd >= 0) {
				/* Out of fds, the pending connection would
				 * keep the socket readable forever: take it
				 * with the spare fd and turn it away. */
				log_warn("out of file descriptors: refusing "
					 "a control connection");
				close(d->spare_fd);
				fd = accept4(d->ctl, NULL, NULL, SOCK_CLOEXEC);
				if (fd >= 0)
					close(fd);
				d->spare_fd = open("/dev/null",
						   O_RDONLY | O_CLOEXEC);
				continue;
			}
			if (errno != EAGAIN)
				log_warn("accept on the control socket: %s",
					 strerror(errno));
			return;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &crlen) != 0 ||
		    (cr.uid != geteuid() && cr.uid != 0)) {
			char who[48] = "root";
			if (geteuid() != 0)
				snprintf(who, sizeof(who), "uid %ld or root",
					 (long)geteuid());
			log_warn("refusing control connection from pid %ld "
				 "uid %ld: only %s may use this daemon",
				 (long)cr.pid, (long)cr.uid, who);
			d->stats[DST_ctl_refused]++;
			close(fd);
			continue;
		}
		c = calloc(1, sizeof(*c));
		if (c == NULL) {
			close(fd);
			continue;
		}
		c->ep.kind = EP_CLIENT;
		c->fd = fd;
		c->pid = cr.pid;
		c->uid = cr.uid;
		read_comm(cr.pid, c->comm, sizeof(c->comm));
		uint32_t cur = 0;
		bool reg = false;
		if (ep_set(d, fd, &c->ep, EPOLLIN, &cur, &reg) < 0) {
			close(fd);
			free(c);
			continue;
		}
		TAILQ_INSERT_TAIL(&d->clients, c, link);
		d->stats[DST_ctl_clients]++;
		d->stats[DST_ctl_accepted]++;
		log_debug("control client pid %ld (%s)", (long)c->pid, c->comm);
	}
}

void
ctl_client_kill(struct daemon *d, struct client *c)
{
	if (c->dead)
		return;
	c->dead = true;
	TAILQ_INSERT_TAIL(&d->dead_clients, c, dead_link);
}

void
ctl_client_free(struct daemon *d, struct client *c)
{
	TAILQ_REMOVE(&d->clients, c, link);
	if (c->trace)
		d->ntrace--;
	if (c->trace && (c->trace_flags & UTCP_TRACE_PACKETS))
		d->npkt--;
	close(c->fd);
	free(c->snap);
	d->stats[DST_ctl_clients]--;
	log_debug("control client pid %ld gone", (long)c->pid);
	free(c);
}

void
ctl_close_all(struct daemon *d)
{
	struct client *c;

	while ((c = TAILQ_FIRST(&d->dead_clients)) != NULL)
		TAILQ_REMOVE(&d->dead_clients, c, dead_link);
	while ((c = TAILQ_FIRST(&d->clients)) != NULL)
		ctl_client_free(d, c);
	if (d->ctl >= 0)
		close(d->ctl);
	d->ctl = -1;
}

/* ---- ops ---- */

static const char *
utcpd_desc(int i)
{
	static const char *const desc[] = {
#define UTCPD_STAT_DESC(name, text) text,
		UTCPD_STATS(UTCPD_STAT_DESC)
#undef UTCPD_STAT_DESC
	};
	return desc[i];
}

const char *
utcpd_stat_name(int i)
{
	static const char *const names[] = {
#define UTCPD_STAT_NAME(name, text) "daemon_" #name,
		UTCPD_STATS(UTCPD_STAT_NAME)
#undef UTCPD_STAT_NAME
	};
	if (i < 0 || i >= DST_COUNT)
		return NULL;
	return names[i];
}

static void
op_stats(struct daemon *d, const struct utcp_req *q, struct utcp_rep *p)
{
	int i = q->arg[0];
	const char *name, *desc;

	if (i < 0) {
		p->err = EINVAL;
		return;
	}
	if (i < UTCP_NSTATS) {
		name = utcp_stat_name(i);
		desc = utcp_stat_desc(i);
		p->val = (int64_t)utcp_stats(d->st)[i];
	} else if (i - UTCP_NSTATS < DST_COUNT) {
		name = utcpd_stat_name(i - UTCP_NSTATS);
		desc = utcpd_desc(i - UTCP_NSTATS);
		p->val = (int64_t)d->stats[i - UTCP_NSTATS];
	} else {
		p->err = ENOENT;
		return;
	}
	/* data: the name, NUL, then the description, NUL (the description
	 * is extra: readers that stop at the first NUL see the name). */
	size_t nl = strlen(name), dl = strlen(desc);
	if (nl + 1 + dl + 1 > sizeof(p->data))
		dl = sizeof(p->data) - nl - 2;
	memcpy(p->data, name, nl + 1);
	memcpy(p->data + nl + 1, desc, dl);
	p->data[nl + 1 + dl] = '\0';
	p->len = (uint32_t)(nl + 1 + dl + 1);
}

struct snap_ctx {
	struct daemon *d;
	struct utcp_ipc_conn *rows;
	size_t n, cap;
	bool oom;
};

static void
snap_one(void *arg, struct utcp_sock *s)
{
	struct snap_ctx *x = arg;
	struct utcp_ipc_conn *row;
	struct utcp_info info;
	struct utcp_addr l, r;
	const struct rec *rec = utcp_sock_user(s);

	if (x->n == x->cap) {
		size_t cap = x->cap ? x->cap * 2 : 64;
		void *p = reallocarray(x->rows, cap, sizeof(*x->rows));
		if (p == NULL) {
			x->oom = true;
			return;
		}
		x->rows = p;
		x->cap = cap;
	}
	row = &x->rows[x->n++];
	memset(row, 0, sizeof(*row));
	utcp_sock_names(s, &l, &r);
	utcp_sock_info(s, &info, x->d->now);
	int fam = l.family != 0 ? l.family : (rec != NULL ? rec->family : AF_INET);
	addr_to_sockaddr(&l, fam, &row->local);
	addr_to_sockaddr(&r, fam, &row->remote);
	row->state = (int32_t)info.state;
	row->recv_q = info.recv_q;
	row->send_q = info.send_q;
	memcpy(row->info, &info, sizeof(info));
	if (rec != NULL) {
		row->sock_id = rec->id;
		row->pid = rec->pid;
		memcpy(row->comm, rec->comm, sizeof(row->comm));
		row->recv_q += (uint32_t)rec->rx_len;
		row->send_q += (uint32_t)rec->tx_len;
	}
}

static void
op_list(struct daemon *d, struct client *c, const struct utcp_req *q,
	struct utcp_rep *p, const struct utcp_ipc_conn **extra)
{
	size_t i;

	if (q->arg[0] < 0) {
		p->err = EINVAL;
		return;
	}
	i = (size_t)q->arg[0];
	if (i == 0 || c->snap == NULL) {
		struct snap_ctx x = { .d = d };
		free(c->snap);
		c->snap = NULL;
		c->snap_n = 0;
		utcp_foreach(d->st, snap_one, &x);
		if (x.oom) {
			free(x.rows);
			p->err = ENOMEM;
			return;
		}
		c->snap = x.rows;
		c->snap_n = x.n;
	}
	if (i >= c->snap_n) {
		free(c->snap);
		c->snap = NULL;
		c->snap_n = 0;
		p->err = ENOENT;
		return;
	}
	/* ipc.h: the row rides in data[] when it fits, else as a second
	 * message right after the reply; len says which. */
	p->len = sizeof(struct utcp_ipc_conn);
	if (p->len <= sizeof(p->data))
		memcpy(p->data, &c->snap[i], sizeof(struct utcp_ipc_conn));
	else
		*extra = &c->snap[i];
	p->sock_id = c->snap[i].sock_id;
}

/* Buffers the engine and the records free after a burst (10,000
 * connections answering at once, a bulk transfer) stay in the heap, and
 * in the RSS, unless given back: do it when the daemon is about to sleep
 * for a while (at least a second, or until an fd wakes it), at most once a
 * second. A busy data path has a nearer deadline (delayed ACK,
 * retransmission), so it does not pay for this. */
void
ctl_trim_idle(struct daemon *d, utcp_time_t wait)
{
	static utcp_time_t last;

	if (wait < UTCP_SEC(1) || (last != 0 && d->now - last < UTCP_SEC(1)))
		return;
	last = d->now;
	malloc_trim(0);
}

/* Each engine socket holds one daemon fd: say once, until sockets can be
 * made again, that the fd limit is what stops programs. */
static bool fd_short;

static void
fd_shortage(struct daemon *d, int err)
{
	struct rlimit rl;

	if ((err != -EMFILE && err != -ENFILE) || fd_short)
		return;
	fd_short = true;
	if (err == -ENFILE || getrlimit(RLIMIT_NOFILE, &rl) != 0)
		log_warn("out of file descriptors (system-wide): programs' "
			 "socket() fails with ENFILE");
	else
		log_warn("out of file descriptors at the limit of %llu, with "
			 "%llu engine sockets: programs' socket() fails with "
			 "EMFILE (raise the daemon's hard limit for more)",
			 (unsigned long long)rl.rlim_cur,
			 (unsigned long long)d->stats[DST_sockets_open]);
}

static int
op_socket(struct daemon *d, struct client *c, const struct utcp_req *q,
	  struct utcp_rep *p, int *fd_out)
{
	int family = q->arg[0], flags = q->arg[1];
	struct utcp_sock *sk;
	struct rec *r;

	if (family != AF_INET && family != AF_INET6)
		return -EAFNOSUPPORT;
	sk = utcp_socket(d->st, family);
	if (sk == NULL)
		return -ENOMEM;
	r = rec_new(d, sk, family, c, fd_out, flags);
	if (r == NULL) {
		int e = errno != 0 ? -errno : -ENOMEM;
		utcp_close(sk, d->now);
		fd_shortage(d, e);
		return e;
	}
	fd_short = false;
	p->sock_id = r->id;
	events_call(d, r, "socket(%s)", family == AF_INET6 ? "AF_INET6" : "AF_INET");
	return 0;
}

static int
op_accept(struct daemon *d, struct client *c, struct rec *r,
	  const struct utcp_req *q, struct utcp_rep *p, int *fd_out)
{
	struct utcp_sock *child;
	struct utcp_addr l, rm;
	struct rec *cr;
	int err = 0;
	char a[64];

	if (r->kind != REC_LISTENER || r->sk == NULL)
		return -EINVAL;
	child = utcp_accept(r->sk, &err);
	if (child == NULL)
		return err < 0 ? err : -EAGAIN;
	cr = rec_new(d, child, r->family, c, fd_out, q->arg[0]);
	if (cr == NULL) {
		int e = errno != 0 ? -errno : -ENOMEM;

		fd_shortage(d, e);
		utcp_abort(child, d->now);
		utcp_close(child, d->now);
		return e;
	}
	cr->kind = REC_STREAM;
	/* The run that accepts it traces it, else the listener's. */
	cr->tag = c->tag != 0 ? c->tag : r->tag;
	rec_set_tuple(d, cr);
	rec_dirty(d, cr); /* data or FIN may already be queued */
	utcp_sock_names(child, &l, &rm);
	p->addrlen = addr_to_sockaddr(&rm, r->family, &p->addr);
	p->sock_id = cr->id;
	if (events_calls_on()) {
		events_fmt_addr(&rm, a, sizeof(a));
		events_call(d, cr, "accept() from %s on sock %u", a, r->id);
	}
	return 0;
}

static int
op_getname(struct daemon *d, struct rec *r, bool peer, struct utcp_rep *p)
{
	struct utcp_addr l, rm;

	if (r->sk != NULL) {
		utcp_sock_names(r->sk, &l, &rm);
	} else {
		l = r->local;
		rm = r->remote;
	}
	if (peer) {
		int st = r->sk != NULL ? (int)utcp_sock_state(r->sk) : UTCP_CLOSED;
		/* Linux: no peer name before the handshake or after close;
		 * a socket in TIME-WAIT reads as closed (Linux hands
		 * TIME-WAIT to a separate object and closes the socket). */
		if (st == UTCP_CLOSED || st == UTCP_TIME_WAIT ||
		    st == UTCP_LISTEN ||
		    st == UTCP_SYN_SENT || rm.port == 0)
			return -ENOTCONN;
		p->addrlen = addr_to_sockaddr(&rm, r->family, &p->addr);
	} else {
		p->addrlen = addr_to_sockaddr(&l, r->family, &p->addr);
	}
	(void)d;
	return 0;
}

static int
op_getsockopt(struct daemon *d, struct rec *r, const struct utcp_req *q,
	      struct utcp_rep *p)
{
	int level = q->arg[0], name = q->arg[1];
	size_t len;
	int v = 0, e;

	if (q->arg[2] < 0)
		return -EINVAL;
	len = (size_t)q->arg[2];
	if (len > sizeof(p->data))
		len = sizeof(p->data);
	if (level == SOL_SOCKET) {
		bool mine = true;
		switch (name) {
		case SO_ERROR:
			v = r->err;
			if (v == 0 && r->sk != NULL)
				v = utcp_sock_error(r->sk, true);
			if (v != 0)
				r->err_reported = true;
			r->err = 0;
			break;
		case SO_ACCEPTCONN:
			v = r->kind == REC_LISTENER;
			break;
		case SO_TYPE:
			v = SOCK_STREAM;
			break;
		case SO_PROTOCOL:
			v = IPPROTO_TCP;
			break;
		case SO_DOMAIN:
			v = r->family;
			break;
		default:
			mine = false;
		}
		if (mine) {
			if (len > sizeof(v))
				len = sizeof(v);
			memcpy(p->data, &v, len);
			p->len = (uint32_t)len;
			return 0;
		}
	}
	if (r->sk == NULL) {
		/* The engine is done with it: a closed socket's options
		 * read as zero rather than failing a program's cleanup. */
		memset(p->data, 0, len);
		p->len = (uint32_t)len;
		return 0;
	}
	e = utcp_getsockopt(r->sk, level, name, p->data, &len);
	if (e < 0)
		return e;
	p->len = (uint32_t)len;
	(void)d;
	return 0;
}

static int
op_ioctl(struct daemon *d, struct rec *r, const struct utcp_req *q,
	 struct utcp_rep *p)
{
	struct utcp_info info;
	int inq = 0;

	if (r->sk == NULL) {
		p->val = 0;
		return 0;
	}
	if (r->kind == REC_LISTENER)
		return -EINVAL;
	utcp_sock_info(r->sk, &info, d->now);
	switch ((unsigned long)(unsigned)q->arg[0]) {
	case SIOCINQ:
		/* The engine's unread bytes and our short-write remainder;
		 * the preload adds what sits in the program's own end. */
		p->val = (int64_t)info.recv_q + (int64_t)r->rx_len;
		return 0;
	case SIOCOUTQ:
		/* Unacked + unsent in the engine, plus what the program
		 * wrote that we have not read yet. */
		if (r->fd >= 0 && ioctl(r->fd, SIOCINQ, &inq) != 0)
			inq = 0;
		p->val = (int64_t)info.send_q + (int64_t)r->tx_len + inq;
		return 0;
	case SIOCOUTQNSD:
		if (r->fd >= 0 && ioctl(r->fd, SIOCINQ, &inq) != 0)
			inq = 0;
		p->val = (int64_t)(info.send_q - info.unacked) +
			 (int64_t)r->tx_len + inq;
		return 0;
	case SIOCATMARK:
		p->val = 0; /* no urgent data, ever */
		return 0;
	}
	return -ENOTTY;
}

/* The connection becomes an event stream (ipc.h, "Tracing"). */
static int
op_trace(struct daemon *d, struct client *c, const struct utcp_req *q)
{
	/* Room for bursts (a pcap of a fast transfer): what still does not
	 * fit is dropped and counted, never waited for. */
	int sndbuf = (q->arg[2] & UTCP_TRACE_PACKETS) ? 8 << 20 : 1 << 20;

	if (q->arg[2] & ~UTCP_TRACE_PACKETS)
		return -EINVAL;
	if (setsockopt(c->fd, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf,
		       sizeof(sndbuf)) != 0)
		(void)setsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &sndbuf,
				 sizeof(sndbuf));
	if (!c->trace)
		d->ntrace++;
	if (c->trace && (c->trace_flags & UTCP_TRACE_PACKETS))
		d->npkt--;
	c->trace = true;
	c->trace_pid = q->arg[0];
	c->trace_tag = (uint32_t)q->arg[1];
	c->trace_flags = q->arg[2];
	if (c->trace_flags & UTCP_TRACE_PACKETS)
		d->npkt++;
	log_debug("pid %ld (%s) traces pid %d tag %u%s", (long)c->pid,
		  c->comm, q->arg[0], (uint32_t)q->arg[1],
		  (q->arg[2] & UTCP_TRACE_PACKETS) ? " with packets" : "");
	return 0;
}

/* ipc.h, "Asynchronous operations", Order: an id we do not know may be
 * in an ADOPT another connection has queued (a socket made in one thread,
 * used at once in another). Handle what the others have queued, then look
 * again. Never nested: what those requests miss is simply missing. */
static struct rec *
find_or_drain(struct daemon *d, const struct client *self, uint32_t id)
{
	struct rec *r = rec_find(d, id);
	struct client *c, *next;

	if (r != NULL || d->draining || id == 0)
		return r;
	d->draining = true;
	for (c = TAILQ_FIRST(&d->clients); c != NULL; c = next) {
		next = TAILQ_NEXT(c, link);
		if (c != self && !c->dead && !c->trace)
			ctl_client_io(d, c, 0);
	}
	d->draining = false;
	return rec_find(d, id);
}

static struct rec *
need_rec(struct daemon *d, const struct client *c, const struct utcp_req *q,
	 int *err)
{
	struct rec *r = find_or_drain(d, c, q->sock_id);

	if (r == NULL)
		*err = -EBADF;
	return r;
}

/* UTCP_OP_ADOPT: the preload made the socketpair (ipc.h). No reply: a
 * failure closes the program's peer, which it sees as a hung-up socket. */
static void
op_adopt(struct daemon *d, struct client *c, const struct utcp_req *q,
	 int *fd_in, bool fd_lost)
{
	int family = q->arg[0], fd = *fd_in, e = 0;
	struct utcp_sock *sk;
	struct rec *r;

	*fd_in = -1;
	if (fd < 0) /* lost: it did not fit in our table (MSG_CTRUNC) */
		e = fd_lost ? -EMFILE : -EBADF;
	else if (family != AF_INET && family != AF_INET6)
		e = -EAFNOSUPPORT;
	else if (q->sock_id < c->lease_lo || q->sock_id >= c->lease_hi)
		e = -EPERM;
	else if ((sk = utcp_socket(d->st, family)) == NULL)
		e = -ENOMEM;
	else if ((r = rec_adopt(d, sk, family, c, fd, q->sock_id)) == NULL) {
		e = errno != 0 ? -errno : -ENOMEM;
		fd = -1; /* rec_adopt closed it */
		utcp_close(sk, d->now);
	} else {
		fd_short = false;
		events_call(d, r, "socket(%s)",
			    family == AF_INET6 ? "AF_INET6" : "AF_INET");
		return;
	}
	if (fd >= 0)
		close(fd); /* the program sees its socket hung up */
	d->stats[DST_adopt_failed]++;
	fd_shortage(d, e);
	log_warn("pid %ld: cannot adopt sock %u: %s", (long)c->pid,
		 q->sock_id, strerror(-e));
}

/* The program took a pushed connection: it is its own now. */
static void
op_accepted(struct daemon *d, struct client *c, const struct utcp_req *q)
{
	struct rec *r = find_or_drain(d, c, q->sock_id);

	if (r == NULL || !r->unacked)
		return; /* gone meanwhile, or said twice */
	r->pid = c->pid;
	memcpy(r->comm, c->comm, sizeof(r->comm));
	if (c->tag != 0)
		r->tag = c->tag; /* the run that accepts it traces it */
	rec_accepted(d, r);
}

static int
op_lease(struct daemon *d, struct client *c, struct utcp_rep *p)
{
	uint32_t n = UTCP_LEASE_IDS;

	c->lease_lo = rec_lease(d, n);
	c->lease_hi = c->lease_lo + n;
	p->sock_id = c->lease_lo;
	p->val = n;
	return 0;
}

static int
op_connect(struct daemon *d, const struct client *c, const struct utcp_req *q,
	   int *fd_in, bool fd_lost)
{
	struct utcp_addr a;
	int e = 0, kept = *fd_in;
	bool async = (q->arg[2] & UTCP_CONNECT_NOREPLY) != 0;
	struct rec *r = need_rec(d, c, q, &e);

	*fd_in = -1; /* rec_connect owns it from here */
	if (r == NULL) {
		if (kept >= 0)
			close(kept);
		return e;
	}
	if (!async && q->addrlen >= sizeof(sa_family_t) &&
	    q->addr.ss_family == AF_UNSPEC && kept < 0)
		return rec_disconnect(d, r);
	int ae = addr_from_sockaddr(&q->addr, q->addrlen, &a);
	if (ae == 0 && a.family != r->family)
		ae = -EAFNOSUPPORT;
	if (ae == 0 && fd_lost)
		ae = -EMFILE; /* without its end, SO_SNDBUF stays tiny */
	size_t filler = q->arg[0] > 0 ? (size_t)q->arg[0] : 0;
	if (async) {
		rec_connect_async(d, r, ae == 0 ? &a : NULL, ae, kept, filler,
				  q->arg[1]);
		return 0;
	}
	return rec_connect(d, r, ae == 0 ? &a : NULL, ae, kept, filler,
			   q->arg[1]);
}

/* Serve one request; fills p, maybe *fd_out. Returns the errno (>= 0). */
static int
serve(struct daemon *d, struct client *c, const struct utcp_req *q,
      int *fd_in, struct utcp_rep *p, int *fd_out,
      const struct utcp_ipc_conn **extra)
{
	struct utcp_addr a;
	struct rec *r;
	int e = 0;

	switch (q->op) {
	case UTCP_OP_HELLO:
		/* arg[0] version, arg[1] pid, arg[2] trace tag (ipc.h). */
		c->tag = (uint32_t)q->arg[2];
		p->val = d->pid;
		p->sock_id = UTCP_IPC_VERSION;
		{
			/* we take UTCP_OP_CALL and trace streams */
			uint32_t caps = UTCP_CAP_TRACE |
					(d->opt->no_async ? 0 : UTCP_CAP_ASYNC);
			memcpy(p->data, &caps, sizeof(caps));
			p->len = sizeof(caps);
		}
		return 0;
	case UTCP_OP_SOCKET:
		return -op_socket(d, c, q, p, fd_out);
	case UTCP_OP_CONNECT:
		return -op_connect(d, c, q, fd_in, false);
	case UTCP_OP_LEASE:
		return -op_lease(d, c, p);
	case UTCP_OP_STATS:
		op_stats(d, q, p);
		return p->err;
	case UTCP_OP_LIST:
		op_list(d, c, q, p, extra);
		return p->err;
	case UTCP_OP_TRACE:
		return -op_trace(d, c, q);
	default:
		break;
	}
	if ((r = need_rec(d, c, q, &e)) == NULL)
		return -e;
	p->sock_id = r->id;
	switch (q->op) {
	case UTCP_OP_BIND:
		if ((e = addr_from_sockaddr(&q->addr, q->addrlen, &a)) < 0)
			return -e;
		if (a.family != r->family)
			return EAFNOSUPPORT;
		if (r->sk == NULL)
			return EINVAL;
		return -utcp_bind(r->sk, &a);
	case UTCP_OP_LISTEN:
		return -rec_listen(d, r, q->arg[0],
				   (q->arg[1] & UTCP_LISTEN_PUSH) != 0);
	case UTCP_OP_ACCEPT:
		return -op_accept(d, c, r, q, p, fd_out);
	case UTCP_OP_GETSOCKNAME:
		return -op_getname(d, r, false, p);
	case UTCP_OP_GETPEERNAME:
		return -op_getname(d, r, true, p);
	case UTCP_OP_SETSOCKOPT: {
		size_t len = q->len < sizeof(q->data) ? q->len : sizeof(q->data);
		if (r->sk == NULL)
			return 0; /* options of a finished socket: no effect */
		return -utcp_setsockopt(r->sk, q->arg[0], q->arg[1], q->data,
					len, d->now);
	}
	case UTCP_OP_GETSOCKOPT:
		return -op_getsockopt(d, r, q, p);
	case UTCP_OP_SHUTDOWN:
		return -rec_shutdown(d, r, q->arg[0]);
	case UTCP_OP_IOCTL:
		return -op_ioctl(d, r, q, p);
	default:
		return EOPNOTSUPP;
	}
}

static const char *
op_name(int op)
{
	static const char *const names[] = {
		[UTCP_OP_HELLO] = "HELLO", [UTCP_OP_SOCKET] = "SOCKET",
		[UTCP_OP_BIND] = "BIND", [UTCP_OP_LISTEN] = "LISTEN",
		[UTCP_OP_CONNECT] = "CONNECT", [UTCP_OP_ACCEPT] = "ACCEPT",
		[UTCP_OP_GETSOCKNAME] = "GETSOCKNAME",
		[UTCP_OP_GETPEERNAME] = "GETPEERNAME",
		[UTCP_OP_SETSOCKOPT] = "SETSOCKOPT",
		[UTCP_OP_GETSOCKOPT] = "GETSOCKOPT",
		[UTCP_OP_SHUTDOWN] = "SHUTDOWN", [UTCP_OP_IOCTL] = "IOCTL",
		[UTCP_OP_STATS] = "STATS", [UTCP_OP_LIST] = "LIST",
		[UTCP_OP_TRACE] = "TRACE", [UTCP_OP_CALL] = "CALL",
		[UTCP_OP_TRACE_SYNC] = "TRACE_SYNC",
		[UTCP_OP_LEASE] = "LEASE", [UTCP_OP_ADOPT] = "ADOPT",
		[UTCP_OP_ACCEPTED] = "ACCEPTED",
	};
	if (op < 0 || op >= (int)(sizeof(names) / sizeof(names[0])) ||
	    names[op] == NULL)
		return "?";
	return names[op];
}

/* The ops nobody waits for an answer to (ipc.h). */
static bool
noreply(const struct client *c, const struct utcp_req *q)
{
	switch (q->op) {
	case UTCP_OP_CALL:
	case UTCP_OP_TRACE_SYNC:
		return true;
	case UTCP_OP_ADOPT:
	case UTCP_OP_ACCEPTED:
		return !c->trace;
	case UTCP_OP_CONNECT:
		return !c->trace && (q->arg[2] & UTCP_CONNECT_NOREPLY);
	default:
		return false;
	}
}

static void
serve_noreply(struct daemon *d, struct client *c, const struct utcp_req *q,
	      int *fd_in, bool fd_lost)
{
	d->stats[DST_ctl_requests]++;
	switch (q->op) {
	case UTCP_OP_CALL:
		events_program_call(d, c, q);
		break;
	case UTCP_OP_TRACE_SYNC:
		events_sync(d, c, (uint32_t)q->arg[0]);
		break;
	case UTCP_OP_ADOPT:
		op_adopt(d, c, q, fd_in, fd_lost);
		break;
	case UTCP_OP_ACCEPTED:
		op_accepted(d, c, q);
		break;
	case UTCP_OP_CONNECT:
		(void)op_connect(d, c, q, fd_in, fd_lost);
		break;
	}
	log_debug("pid %ld %s sock %u", (long)c->pid, op_name(q->op),
		  q->sock_id);
}

void
ctl_client_io(struct daemon *d, struct client *c, uint32_t revents)
{
	for (int i = 0; i < UTCPD_REQS_PER_WAKEUP && !c->dead; i++) {
		const struct utcp_ipc_conn *extra = NULL;
		struct utcp_req q;
		struct utcp_rep p;
		int fd_in = -1, fd_out = -1, r;

		r = utcp_ipc_recv(c->fd, &q, sizeof(q), &fd_in, 1);
		if (r == -EAGAIN)
			break;
		memset(&p, 0, sizeof(p));
		if (r == -EMFILE && noreply(c, &q)) {
			/* Whole, but its fd did not fit: the op fails in
			 * its own way (ipc.h), and must not be answered. */
			if (q.version == UTCP_IPC_VERSION)
				serve_noreply(d, c, &q, &fd_in, true);
			else
				d->stats[DST_ctl_bad_requests]++;
			continue;
		}
		if (r == -EMFILE)
			r = -EPROTO;
		if (r == -EPROTO) {
			/* One malformed message; the stream stays in step
			 * (SEQPACKET), so answer it and go on. */
			d->stats[DST_ctl_bad_requests]++;
			p.err = EPROTO;
		} else if (r < 0) {
			ctl_client_kill(d, c); /* EOF or a real error */
			break;
		} else if (noreply(c, &q)) {
			if (q.version != UTCP_IPC_VERSION)
				d->stats[DST_ctl_bad_requests]++;
			else
				serve_noreply(d, c, &q, &fd_in, false);
			if (fd_in >= 0)
				close(fd_in);
			continue;
		} else if (c->trace) {
			/* A trace stream carries nothing else upstream. */
			if (fd_in >= 0)
				close(fd_in);
			continue;
		} else if (q.version != UTCP_IPC_VERSION) {
			d->stats[DST_ctl_bad_requests]++;
			p.err = EPROTONOSUPPORT;
			if (q.op == UTCP_OP_HELLO) {
				p.val = getpid();
				p.sock_id = UTCP_IPC_VERSION;
			}
		} else {
			d->stats[DST_ctl_requests]++;
			p.err = serve(d, c, &q, &fd_in, &p, &fd_out, &extra);
			if (q.op != UTCP_OP_STATS && q.op != UTCP_OP_LIST)
				log_debug("pid %ld %s sock %u: %s",
					  (long)c->pid, op_name(q.op),
					  q.sock_id,
					  p.err ? strerror(p.err) : "ok");
		}
		if (fd_in >= 0)
			close(fd_in);
		r = utcp_ipc_send(c->fd, &p, sizeof(p), p.err == 0 ? fd_out : -1);
		if (fd_out >= 0)
			close(fd_out); /* the program has its own now */
		if (r == 0 && extra != NULL && p.err == 0)
			r = utcp_ipc_send(c->fd, extra, sizeof(*extra), -1);
		if (r < 0) {
			log_warn("pid %ld: cannot reply: %s", (long)c->pid,
				 strerror(-r));
			ctl_client_kill(d, c);
			break;
		}
	}
	if (!c->dead && (revents & (EPOLLHUP | EPOLLERR)) &&
	    !(revents & EPOLLIN))
		ctl_client_kill(d, c);
}
