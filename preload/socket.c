/*
 * socket.c — creating, naming, listening, accepting, shutting down; and the
 * fd bookkeeping calls (close*, dup*, fcntl) that keep fdtab.c true.
 *
 * If utcpd cannot be reached, socket() for TCP fails with ECONNREFUSED (no
 * daemon socket, or nobody listening on it) or EACCES (we may not talk to
 * it), and the process prints one line naming the socket path. Only with
 * UTCP_FALLBACK=kernel does it hand the call to the kernel instead (and says
 * so once).
 */
#include "preload.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/un.h>
#include <unistd.h>
#include <linux/sockios.h>

#define SOCK_FLAGS (SOCK_NONBLOCK | SOCK_CLOEXEC)

/* Make O_NONBLOCK of fd's file what the caller asked for; 0 or -errno. */
static int
set_nonblock(int fd, bool on)
{
	int fl = LIBC(fcntl)(fd, F_GETFL);

	if (fl < 0)
		return -errno;
	if (!!(fl & O_NONBLOCK) == on)
		return 0;
	fl = on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK;
	return LIBC(fcntl)(fd, F_SETFL, fl) < 0 ? -errno : 0;
}

/* socket() when utcpd cannot be reached (err): -1/errno, or with
 * UTCP_FALLBACK=kernel the kernel's socket. */
static int
unreachable(int domain, int type, int protocol, int err)
{
	static int said;

	switch (err) {
	case EMFILE:
	case ENFILE:
	case ENOMEM:
	case ENOBUFS:
		/* our own shortage, not the daemon's absence */
		errno = err;
		return -1;
	}
	if (utcp_cfg.fallback_kernel) {
		if (!__atomic_exchange_n(&said, 1, __ATOMIC_RELAXED))
			utcp_log(UTCP_LOG_WARN,
				 "cannot reach utcpd at %s: %s; TCP goes to "
				 "the kernel (UTCP_FALLBACK=kernel)",
				 utcp_socket_path(), strerrordesc_np(err));
		int fd = LIBC(socket)(domain, type, protocol);
		if (fd >= 0)
			utcp_fd_mark_kernel(fd);
		return fd;
	}
	if (!__atomic_exchange_n(&said, 1, __ATOMIC_RELAXED))
		utcp_log(UTCP_LOG_ERROR,
			 "cannot reach utcpd at %s: %s (start utcpd or use "
			 "'utcp sandbox'; UTCP_FALLBACK=kernel uses the "
			 "kernel's TCP)",
			 utcp_socket_path(), strerrordesc_np(err));
	errno = (err == EACCES || err == EPERM) ? EACCES : ECONNREFUSED;
	return -1;
}

/* ipc.h, "Asynchronous operations": the socketpair made here, the
 * daemon's end named and handed over without waiting. The fd, -errno, or
 * -EOPNOTSUPP when the daemon wants the round trip. */
static int
sock_create_async(int domain, int type)
{
	struct sockaddr_un sa;
	struct utcp_req req;
	uint32_t id;
	pid_t dpid;
	int sv[2], r;

	if ((r = utcp_ctl_new_id(&id, &dpid)) < 0)
		return r;
	/* Both ends non-blocking and close-on-exec for now: ours is about
	 * to leave, the program's is set as asked below. */
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	       0, sv) != 0)
		return -errno;
	socklen_t salen = utcp_ipc_make_name(&sa, dpid, id);
	if (LIBC(bind)(sv[1], (struct sockaddr *)&sa, salen) != 0) {
		r = -errno;
		goto fail;
	}
	if (!(type & SOCK_NONBLOCK) && (r = set_nonblock(sv[0], false)) < 0)
		goto fail;
	if (!(type & SOCK_CLOEXEC) && LIBC(fcntl)(sv[0], F_SETFD, 0) != 0) {
		r = -errno;
		goto fail;
	}
	utcp_req_init(&req, UTCP_OP_ADOPT, id);
	req.arg[0] = domain;
	if ((r = utcp_ctl_send(&req, sv[1])) < 0)
		goto fail;
	LIBC(close)(sv[1]);
	if ((r = utcp_fd_set(sv[0], id, domain, 0)) < 0) {
		LIBC(close)(sv[0]); /* the daemon sees HUP and lets it go */
		return r;
	}
	return sv[0];
fail:
	LIBC(close)(sv[0]);
	LIBC(close)(sv[1]);
	return r;
}

/* A TCP socket from the daemon: the fd, or -1/errno. */
static int
sock_create(int domain, int type, int protocol)
{
	struct utcp_req req;
	struct utcp_rep rep;
	int r, fd;

	if ((r = utcp_ctl_get()) < 0)
		return unreachable(domain, type, protocol, -r);
	if ((fd = sock_create_async(domain, type)) >= 0) {
		utcp_debug("socket(%s) = %d: engine socket %u (async)",
			   domain == AF_INET ? "inet" : "inet6", fd,
			   utcp_fd_id(fd));
		return fd;
	}
	if (fd != -EOPNOTSUPP && fd != -EADDRINUSE)
		return utcp_ret(fd); /* else: the round trip below */
	utcp_req_init(&req, UTCP_OP_SOCKET, 0);
	req.arg[0] = domain;
	req.arg[1] = type & SOCK_FLAGS;
	r = utcp_ctl_call(&req, -1, &rep, &fd, type & SOCK_CLOEXEC);
	if (r == 0 && fd < 0)
		r = -EPROTO;
	if (r == 0 && (r = set_nonblock(fd, type & SOCK_NONBLOCK)) == 0 &&
	    (r = utcp_fd_set(fd, rep.sock_id, domain, 0)) == 0) {
		utcp_debug("socket(%s%s%s) = %d: engine socket %u",
			   domain == AF_INET ? "inet" : "inet6",
			   type & SOCK_NONBLOCK ? ", nonblock" : "",
			   type & SOCK_CLOEXEC ? ", cloexec" : "", fd,
			   rep.sock_id);
		return fd;
	}
	if (fd >= 0)
		LIBC(close)(fd);
	utcp_debug("socket(%d) failed: %s", domain, strerrordesc_np(-r));
	return utcp_ret(r);
}

UTCP_EXPORT int
socket(int domain, int type, int protocol)
{
	/* Principle 4: everything but IP is decided by one branch. */
	if (domain != AF_INET && domain != AF_INET6)
		return LIBC(socket)(domain, type, protocol);
	if ((type & ~SOCK_FLAGS) != SOCK_STREAM || utcp_busy)
		return LIBC(socket)(domain, type, protocol);
	if (protocol != 0 && protocol != IPPROTO_TCP) {
		/* IPPROTO_MPTCP and the like: not ours, but say so */
		utcp_log(UTCP_LOG_INFO,
			 "socket(SOCK_STREAM, protocol %d): not TCP, left to "
			 "the kernel", protocol);
		return LIBC(socket)(domain, type, protocol);
	}
	uint64_t t0 = utcp_trace_start();
	int fd = sock_create(domain, type, protocol);
	if (unlikely(t0 != 0)) {
		char fl[40];
		utcp_trace_call(t0, "socket", fd >= 0 ? utcp_fd_id(fd) : 0, fd,
				fd >= 0 ? fd : -errno, "%s, SOCK_STREAM%s, %s",
				utcp_trace_family(domain),
				utcp_trace_sockflags(type, fl, sizeof(fl)),
				protocol == 0 ? "0" : "IPPROTO_TCP");
	}
	return fd;
}

/* EFAULT/EINVAL as the kernel checks an address argument. */
static int
check_addr(const struct sockaddr *sa, socklen_t len)
{
	if (sa == NULL)
		return -EFAULT;
	if (len < sizeof(sa_family_t) || len > sizeof(struct sockaddr_storage))
		return -EINVAL;
	return 0;
}

static int
sock_bind(int fd, struct utcp_fdent *e, const struct sockaddr *sa,
	  socklen_t len)
{
	struct utcp_req req;
	struct utcp_rep rep;
	char a[64];
	int r;

	if ((r = check_addr(sa, len)) < 0)
		return r;
	if (utcp_cfg.loopback_kernel && utcp_is_loopback(sa, len, false)) {
		/* only a fresh socket moves; bound twice is EINVAL anyway */
		if (e->flags & (UTCP_FD_CONNECTING | UTCP_FD_CONNECTED |
				UTCP_FD_LISTENING))
			return -EINVAL;
		if ((r = utcp_to_kernel(fd, e, false)) < 0)
			return r;
		return LIBC(bind)(fd, sa, len) < 0 ? -errno : 0;
	}
	utcp_req_init(&req, UTCP_OP_BIND, e->id);
	memcpy(&req.addr, sa, len);
	req.addrlen = len;
	r = utcp_ctl_call(&req, -1, &rep, NULL, false);
	utcp_debug("bind(%d, %s) = %s", fd,
		   utcp_fmt_addr(sa, len, a, sizeof(a)),
		   r < 0 ? strerrordesc_np(-r) : "0");
	if (r == 0)
		utcp_rec_add(fd, e, UTCP_REC_BIND, 0, sa, len);
	return r;
}

UTCP_EXPORT int
bind(int fd, __CONST_SOCKADDR_ARG addr, socklen_t len)
{
	struct utcp_fdent *e = utcp_sock_lookup(fd);

	if (e == NULL)
		return LIBC(bind)(fd, addr.__sockaddr__, len);
	uint64_t t0 = utcp_trace_start();
	uint32_t id = e->id;
	int r = sock_bind(fd, e, addr.__sockaddr__, len);
	if (unlikely(t0 != 0)) {
		char a[64];
		utcp_trace_call(t0, "bind", id, fd, r, "%d, %s", fd,
				utcp_fmt_addr(addr.__sockaddr__, len, a,
					      sizeof(a)));
	}
	return utcp_ret(r);
}

UTCP_EXPORT int
listen(int fd, int backlog)
{
	struct utcp_fdent *e = utcp_sock_lookup(fd);
	struct utcp_req req;
	struct utcp_rep rep;
	int r;

	if (e == NULL)
		return LIBC(listen)(fd, backlog);
	utcp_req_init(&req, UTCP_OP_LISTEN, e->id);
	req.arg[0] = backlog;
	if (utcp_ctl_async())
		req.arg[1] = UTCP_LISTEN_PUSH; /* accept() sees push_accept */
	uint64_t t0 = utcp_trace_start();
	r = utcp_ctl_call(&req, -1, &rep, NULL, false);
	utcp_debug("listen(%d, %d) = %s", fd, backlog,
		   r < 0 ? strerrordesc_np(-r) : "0");
	if (unlikely(t0 != 0))
		utcp_trace_call(t0, "listen", e->id, fd, r, "%d, %d", fd,
				backlog);
	if (r == 0) {
		utcp_fd_set_flags(fd, UTCP_FD_LISTENING, 0);
		utcp_rec_drop(e->id);
	}
	return utcp_ret(r);
}

/* Copy an address out as the kernel does: truncate to the caller's
 * buffer, report the full length. */
static void
put_addr(struct sockaddr *sa, socklen_t *len, const struct utcp_rep *rep)
{
	socklen_t n = rep->addrlen;

	if (n > sizeof(rep->addr))
		n = sizeof(rep->addr);
	if (sa != NULL && len != NULL) {
		memcpy(sa, &rep->addr, n < *len ? n : *len);
		*len = n;
	}
}

/* ipc.h, "Asynchronous operations": one message per connection on the
 * listener, the new socket's end attached. Blocks or not as the listener
 * is; SO_RCVTIMEO applies. */
static int
push_accept(int fd, struct utcp_fdent *e, struct sockaddr *sa,
	    socklen_t *len, int flags, char *peer, size_t peer_len)
{
	struct utcp_accept_msg m;
	struct iovec iov = { .iov_base = &m, .iov_len = sizeof(m) };
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = u.buf,
			     .msg_controllen = sizeof(u.buf) };
	struct utcp_req req;
	int nfd = -1, r, err;
	ssize_t n;

	/* The kernel leaves a connection queued when it has no fd for it
	 * (EMFILE); so must we, before taking one. */
	int probe = LIBC(fcntl)(fd, F_DUPFD_CLOEXEC, 0);
	if (probe < 0)
		return -errno;
	LIBC(close)(probe);
	if ((r = UTCP_BUSY_WAIT(fd, POLLIN)) < 0)
		return r; /* EINTR */
	n = LIBC(recvmsg)(fd, &mh, (flags & SOCK_CLOEXEC) ? MSG_CMSG_CLOEXEC : 0);
	if (n < 0)
		return -errno;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c != NULL;
	     c = CMSG_NXTHDR(&mh, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
		    c->cmsg_len >= CMSG_LEN(sizeof(int)))
			memcpy(&nfd, CMSG_DATA(c), sizeof(int));
	if (n == 0) {
		/* the daemon shut the listener down */
		err = utcp_ctl_so_error(e->id);
		return err > 0 ? -err : -EINVAL;
	}
	if ((size_t)n != sizeof(m) || m.magic != UTCP_ACCEPT_MAGIC || nfd < 0 ||
	    (mh.msg_flags & MSG_CTRUNC)) {
		r = (mh.msg_flags & MSG_CTRUNC) ? -EMFILE : -EPROTO;
		goto fail;
	}
	if ((flags & SOCK_NONBLOCK) && (r = set_nonblock(nfd, true)) < 0)
		goto fail;
	if ((r = utcp_fd_set(nfd, m.sock_id, e->family, UTCP_FD_CONNECTED)) < 0)
		goto fail;
	utcp_req_init(&req, UTCP_OP_ACCEPTED, m.sock_id);
	(void)utcp_ctl_send(&req, -1); /* if it is lost, so is the daemon */
	if (m.addrlen > sizeof(m.addr))
		m.addrlen = sizeof(m.addr);
	if (sa != NULL && len != NULL) {
		memcpy(sa, &m.addr, m.addrlen < *len ? m.addrlen : *len);
		*len = m.addrlen;
	}
	if (peer != NULL)
		utcp_fmt_addr((struct sockaddr *)&m.addr, m.addrlen, peer,
			      peer_len);
	utcp_debug("accept(%d) = %d: engine socket %u (pushed)", fd, nfd,
		   m.sock_id);
	return nfd;
fail:
	if (nfd >= 0)
		LIBC(close)(nfd);
	return r;
}

/* ipc.h: one token byte per queued connection, then UTCP_OP_ACCEPT. */
static int
sock_accept(int fd, struct utcp_fdent *e, struct sockaddr *sa,
	    socklen_t *len, int flags, char *peer, size_t peer_len)
{
	struct utcp_req req;
	struct utcp_rep rep;
	int r, nfd, err;
	char tok, a[64];
	ssize_t n;

	if (flags & ~SOCK_FLAGS)
		return -EINVAL;
	if (sa != NULL && len == NULL)
		return -EFAULT;
	if (sa != NULL && (int)*len < 0)
		return -EINVAL;
	if (!(e->flags & UTCP_FD_LISTENING))
		return -EINVAL;
	if (utcp_ctl_async())
		return push_accept(fd, e, sa, len, flags, peer, peer_len);
	for (;;) {
		/* The kernel leaves a connection queued when it has no fd
		 * for it (EMFILE); so must we, before taking a token. */
		int probe = LIBC(fcntl)(fd, F_DUPFD_CLOEXEC, 0);
		if (probe < 0)
			return -errno;
		LIBC(close)(probe);
		/* Blocks or not as the listener is; SO_RCVTIMEO applies. */
		n = LIBC(recv)(fd, &tok, 1, 0);
		if (n < 0)
			return -errno;
		if (n == 0) {
			/* the daemon shut the listener down */
			err = utcp_ctl_so_error(e->id);
			return err > 0 ? -err : -EINVAL;
		}
		utcp_req_init(&req, UTCP_OP_ACCEPT, e->id);
		req.arg[0] = flags;
		r = utcp_ctl_call(&req, -1, &rep, &nfd, flags & SOCK_CLOEXEC);
		if (r != -EAGAIN)
			break;
		/* The connection behind that token died before we came;
		 * a blocking accept waits for the next one. */
		int fl = LIBC(fcntl)(fd, F_GETFL);
		if (fl < 0 || (fl & O_NONBLOCK))
			return -EAGAIN;
	}
	if (r == 0 && nfd < 0)
		r = -EPROTO;
	if (r == 0 && (r = set_nonblock(nfd, flags & SOCK_NONBLOCK)) == 0 &&
	    (r = utcp_fd_set(nfd, rep.sock_id, e->family,
			     UTCP_FD_CONNECTED)) == 0) {
		put_addr(sa, len, &rep);
		if (peer != NULL)
			utcp_fmt_addr((struct sockaddr *)&rep.addr,
				      rep.addrlen, peer, peer_len);
		utcp_debug("accept(%d) = %d: engine socket %u from %s", fd,
			   nfd, rep.sock_id,
			   utcp_fmt_addr((struct sockaddr *)&rep.addr,
					 rep.addrlen, a, sizeof(a)));
		return nfd;
	}
	if (nfd >= 0)
		LIBC(close)(nfd);
	return r;
}

/* accept and accept4 on an engine listener, traced: the report names
 * the new socket, whose timeline starts here. */
static int
traced_accept(const char *name, int fd, struct utcp_fdent *e,
	      struct sockaddr *sa, socklen_t *len, int flags)
{
	uint64_t t0 = utcp_trace_start();
	char a[64] = "NULL", fl[40];
	int r = sock_accept(fd, e, sa, len, flags, t0 != 0 ? a : NULL,
			    sizeof(a));

	if (unlikely(t0 != 0))
		utcp_trace_call(t0, name, r >= 0 ? utcp_fd_id(r) : e->id, fd,
				r, "%d, %s, %s", fd, a,
				utcp_trace_sockflags(flags, fl, sizeof(fl))[0]
					? fl + 1
					: "0");
	return r;
}

UTCP_EXPORT int
accept(int fd, __SOCKADDR_ARG addr, socklen_t *__restrict len)
{
	struct utcp_fdent *e = utcp_sock_lookup(fd);

	if (e == NULL)
		return LIBC(accept)(fd, addr.__sockaddr__, len);
	return utcp_ret(
		traced_accept("accept", fd, e, addr.__sockaddr__, len, 0));
}

UTCP_EXPORT int
accept4(int fd, __SOCKADDR_ARG addr, socklen_t *__restrict len, int flags)
{
	struct utcp_fdent *e = utcp_sock_lookup(fd);

	if (e == NULL)
		return LIBC(accept4)(fd, addr.__sockaddr__, len, flags);
	return utcp_ret(traced_accept("accept4", fd, e, addr.__sockaddr__,
				      len, flags));
}

static int
sock_name(struct utcp_fdent *e, int op, struct sockaddr *sa, socklen_t *len)
{
	struct utcp_req req;
	struct utcp_rep rep;
	int r;

	if (sa == NULL || len == NULL)
		return -EFAULT;
	if ((int)*len < 0)
		return -EINVAL;
	utcp_req_init(&req, op, e->id);
	if ((r = utcp_ctl_call(&req, -1, &rep, NULL, false)) < 0)
		return r;
	put_addr(sa, len, &rep);
	return 0;
}

static int
traced_name(const char *name, int fd, struct utcp_fdent *e, int op,
	    struct sockaddr *sa, socklen_t *len)
{
	uint64_t t0 = utcp_trace_start();
	int r = sock_name(e, op, sa, len);

	if (unlikely(t0 != 0)) {
		char a[64];
		utcp_trace_call(t0, name, e->id, fd, r, "%d, %s", fd,
				r == 0 ? utcp_fmt_addr(sa, *len, a, sizeof(a))
				       : "?");
	}
	return r;
}

UTCP_EXPORT int
getsockname(int fd, __SOCKADDR_ARG addr, socklen_t *__restrict len)
{
	struct utcp_fdent *e = utcp_sock_lookup(fd);

	if (e == NULL)
		return LIBC(getsockname)(fd, addr.__sockaddr__, len);
	return utcp_ret(traced_name("getsockname", fd, e, UTCP_OP_GETSOCKNAME,
				    addr.__sockaddr__, len));
}

UTCP_EXPORT int
getpeername(int fd, __SOCKADDR_ARG addr, socklen_t *__restrict len)
{
	struct utcp_fdent *e = utcp_sock_lookup(fd);

	if (e == NULL)
		return LIBC(getpeername)(fd, addr.__sockaddr__, len);
	return utcp_ret(traced_name("getpeername", fd, e, UTCP_OP_GETPEERNAME,
				    addr.__sockaddr__, len));
}

UTCP_EXPORT int
shutdown(int fd, int how)
{
	struct utcp_fdent *e = utcp_sock_lookup(fd);
	struct utcp_req req;
	struct utcp_rep rep;
	int r;

	if (e == NULL)
		return LIBC(shutdown)(fd, how);
	if (how != SHUT_RD && how != SHUT_WR && how != SHUT_RDWR)
		return utcp_ret(-EINVAL);
	uint64_t t0 = utcp_trace_start();
	utcp_req_init(&req, UTCP_OP_SHUTDOWN, e->id);
	req.arg[0] = how;
	r = utcp_ctl_call(&req, -1, &rep, NULL, false);
	utcp_debug("shutdown(%d, %d) = %s", fd, how,
		   r < 0 ? strerrordesc_np(-r) : "0");
	/* Our end too: reads then see EOF (SHUT_RD), writes EPIPE (SHUT_WR),
	 * and the daemon reads EOF after the last byte we wrote. */
	if (r == 0 && LIBC(shutdown)(fd, how) < 0)
		r = -errno;
	if (unlikely(t0 != 0))
		utcp_trace_call(t0, "shutdown", e->id, fd, r, "%d, %s", fd,
				utcp_trace_how(how));
	return utcp_ret(r);
}

UTCP_EXPORT int
ioctl(int fd, unsigned long request, ...)
{
	struct utcp_fdent *e;
	struct utcp_req req;
	struct utcp_rep rep;
	va_list ap;
	void *arg;
	int r;

	va_start(ap, request);
	arg = va_arg(ap, void *);
	va_end(ap);
	/* The send queue and the urgent mark are the engine's; FIONREAD
	 * and FIONBIO are answered by our end as they are. */
	if (likely(request != SIOCOUTQ && request != SIOCOUTQNSD &&
		   request != SIOCATMARK))
		return LIBC(ioctl)(fd, request, arg);
	if ((e = utcp_sock_lookup(fd)) == NULL)
		return LIBC(ioctl)(fd, request, arg);
	if (arg == NULL)
		return utcp_ret(-EFAULT);
	uint64_t t0 = utcp_trace_start();
	utcp_req_init(&req, UTCP_OP_IOCTL, e->id);
	req.arg[0] = (int32_t)request;
	if ((r = utcp_ctl_call(&req, -1, &rep, NULL, false)) == 0)
		*(int *)arg = (int)rep.val;
	if (unlikely(t0 != 0))
		utcp_trace_call(t0, "ioctl", e->id, fd, r, "%d, %s, [%d]", fd,
				request == SIOCOUTQ	 ? "SIOCOUTQ"
				: request == SIOCOUTQNSD ? "SIOCOUTQNSD"
							 : "SIOCATMARK",
				r == 0 ? *(int *)arg : 0);
	return utcp_ret(r);
}

/* --- fd bookkeeping: a load and a branch for fds that are not ours --- */

UTCP_EXPORT int
close(int fd)
{
	uint32_t id = utcp_fd_id(fd);

	/* Forget first: a socket() racing in another thread may get this
	 * number as soon as libc has closed it. */
	if (likely(id == 0))
		return LIBC(close)(fd);
	utcp_fd_clear(fd);
	if (likely(!utcp_id_ours(id) || utcp_trace_tag == 0))
		return LIBC(close)(fd);
	uint64_t t0 = utcp_trace_now();
	int r = LIBC(close)(fd);
	utcp_trace_call(t0, "close", id, fd, r < 0 ? -errno : 0, "%d", fd);
	return r;
}

UTCP_EXPORT int
fclose(FILE *fp)
{
	int saved = errno, fd = fp != NULL ? fileno(fp) : -1;

	errno = saved; /* fileno of a cookie stream sets EBADF */
	if (unlikely(fd >= 0 && utcp_fd_id(fd) != 0))
		utcp_fd_clear(fd);
	return LIBC(fclose)(fp);
}

UTCP_EXPORT int
close_range(unsigned int lo, unsigned int hi, int flags)
{
	if (!(flags & CLOSE_RANGE_CLOEXEC))
		utcp_fd_clear_range(lo, hi);
	return LIBC(close_range)(lo, hi, flags);
}

UTCP_EXPORT void
closefrom(int lo)
{
	if (lo >= 0)
		utcp_fd_clear_range((unsigned)lo, ~0u);
	LIBC(closefrom)(lo);
}

UTCP_EXPORT int
dup(int fd)
{
	int r = LIBC(dup)(fd);

	if (r >= 0)
		utcp_fd_copy(fd, r);
	return r;
}

UTCP_EXPORT int
dup2(int fd, int fd2)
{
	int r = LIBC(dup2)(fd, fd2);

	if (r >= 0)
		utcp_fd_copy(fd, r);
	return r;
}

UTCP_EXPORT int
dup3(int fd, int fd2, int flags)
{
	int r = LIBC(dup3)(fd, fd2, flags);

	if (r >= 0)
		utcp_fd_copy(fd, r);
	return r;
}

/* F_DUPFD and F_DUPFD_CLOEXEC make a copy, as dup() does. */
static int
fcntl_done(int fd, int cmd, int r)
{
	if ((cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC) && r >= 0)
		utcp_fd_copy(fd, r);
	return r;
}

UTCP_EXPORT int
fcntl(int fd, int cmd, ...)
{
	va_list ap;
	void *arg;

	va_start(ap, cmd);
	arg = va_arg(ap, void *);
	va_end(ap);
	return fcntl_done(fd, cmd, LIBC(fcntl)(fd, cmd, arg));
}

UTCP_EXPORT int
fcntl64(int fd, int cmd, ...)
{
	va_list ap;
	void *arg;

	va_start(ap, cmd);
	arg = va_arg(ap, void *);
	va_end(ap);
	return fcntl_done(fd, cmd, LIBC(fcntl64)(fd, cmd, arg));
}
