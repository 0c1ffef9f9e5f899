/*
 * connect.c — connect() over the filler protocol (ipc.h), and the loopback
 * policy.
 *
 * UTCP_POLICY (comma-separated):
 *   loopback=kernel  (default) a TCP socket that connects to, or binds to,
 *                    a loopback address (127.0.0.0/8, ::1, and for connect
 *                    also 0.0.0.0/:: which Linux treats as local) becomes a
 *                    kernel socket: same fd number, FD_CLOEXEC, O_NONBLOCK,
 *                    and the options and bind recorded so far are replayed.
 *                    So a program under the preload still reaches services
 *                    on its own host. Its engine socket is released.
 *   loopback=engine  such sockets stay in the engine like any other.
 *
 * What the preload relies on from the daemon: EINPROGRESS means the daemon
 * keeps the attached fd and will drain the filler and restore SO_SNDBUF
 * (ipc.h step 3); any other reply means it has already discarded the filler
 * (we restore SO_SNDBUF ourselves anyway, which is harmless). arg[1] is the
 * value to hand to setsockopt(SO_SNDBUF) — half what getsockopt reported,
 * as the kernel doubles it. The daemon sees one CONNECT per socket: a
 * repeated connect() is answered here (EALREADY, EISCONN, or the outcome,
 * as Linux does), never with more filler.
 */
#include "preload.h"

#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/ioctl.h>
#include <linux/sockios.h>

bool
utcp_is_loopback(const struct sockaddr *sa, socklen_t len, bool any)
{
	if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
		uint32_t a = ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr);
		return (a >> 24) == 127 || (any && a == INADDR_ANY);
	}
	if (sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
		uint32_t v4;
		if (IN6_IS_ADDR_LOOPBACK(a) || (any && IN6_IS_ADDR_UNSPECIFIED(a)))
			return true;
		if (!IN6_IS_ADDR_V4MAPPED(a))
			return false;
		memcpy(&v4, &a->s6_addr[12], 4);
		v4 = ntohl(v4);
		return (v4 >> 24) == 127 || (any && v4 == INADDR_ANY);
	}
	return false;
}

int
utcp_to_kernel(int fd, struct utcp_fdent *e, bool replay_bind)
{
	int fl, fdfl, k, r;
	uint32_t id = e->id;

	if ((fl = LIBC(fcntl)(fd, F_GETFL)) < 0 ||
	    (fdfl = LIBC(fcntl)(fd, F_GETFD)) < 0)
		return -errno;
	k = LIBC(socket)(e->family,
			 SOCK_STREAM | SOCK_CLOEXEC |
				 ((fl & O_NONBLOCK) ? SOCK_NONBLOCK : 0),
			 IPPROTO_TCP);
	if (k < 0)
		return -errno;
	if ((r = utcp_rec_replay(id, k, replay_bind)) < 0)
		goto fail;
	/* Same number, same close-on-exec; the old end closes with it and
	 * the daemon sees HUP and frees the engine socket. */
	utcp_fd_mark_kernel(fd);
	if (LIBC(dup3)(k, fd, (fdfl & FD_CLOEXEC) ? O_CLOEXEC : 0) < 0) {
		r = -errno;
		utcp_fd_set(fd, id, e->family, e->flags); /* (ino unchanged) */
		goto fail;
	}
	LIBC(close)(k);
	utcp_rec_drop(id);
	utcp_log(UTCP_LOG_INFO,
		 "fd %d: loopback, moved from engine socket %u to the "
		 "kernel's TCP (UTCP_POLICY=loopback=kernel)",
		 fd, id);
	return 0;
fail:
	LIBC(close)(k);
	return r;
}

static bool
nonblocking(int fd)
{
	int fl = LIBC(fcntl)(fd, F_GETFL);

	return fl >= 0 && (fl & O_NONBLOCK);
}

/* The outcome once our end is writable (or hung up): 0 or -errno. */
static int
connect_result(int fd, struct utcp_fdent *e, short revents)
{
	int err;

	/* Writable and not hung up: the daemon let POLLOUT through because
	 * the handshake completed (a failure hangs up first): connected,
	 * without a round trip to the daemon. */
	if ((revents & POLLOUT) && !(revents & (POLLHUP | POLLERR))) {
		utcp_fd_set_flags(fd, UTCP_FD_CONNECTED, UTCP_FD_CONNECTING);
		return 0;
	}
	err = utcp_ctl_so_error(e->id);

	if (err < 0)
		return err;
	utcp_fd_set_flags(fd, 0, UTCP_FD_CONNECTING);
	if (err > 0)
		return -err;
	/* failed, and the program already collected SO_ERROR */
	if (revents & (POLLHUP | POLLERR))
		return -ECONNABORTED;
	utcp_fd_set_flags(fd, UTCP_FD_CONNECTED, 0);
	return 0;
}

/* A blocking connect waits for POLLOUT (ipc.h step 4), as long as
 * SO_SNDTIMEO allows; 0 or -errno. */
static int
connect_wait(int fd, struct utcp_fdent *e)
{
	struct pollfd p = { .fd = fd, .events = POLLOUT };
	struct timeval tv = { 0, 0 };
	socklen_t tl = sizeof(tv);
	long long ms = -1;
	int n;

	if (LIBC(getsockopt)(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, &tl) == 0 &&
	    (tv.tv_sec != 0 || tv.tv_usec != 0)) {
		ms = (long long)tv.tv_sec * 1000 + (tv.tv_usec + 999) / 1000;
		if (ms > INT_MAX)
			ms = INT_MAX;
	}
	if ((n = UTCP_BUSY_WAIT(fd, POLLOUT)) < 0)
		return n; /* EINTR, as below */
	n = poll(&p, 1, (int)ms);
	if (n < 0)
		return -errno; /* EINTR: a later connect() picks it up */
	if (n == 0)
		return -EINPROGRESS; /* SO_SNDTIMEO ran out: Linux says so */
	return connect_result(fd, e, p.revents);
}

/* connect() on a socket whose connect is already under way. */
static int
connect_again(int fd, struct utcp_fdent *e)
{
	struct pollfd p = { .fd = fd, .events = POLLOUT };

	if (poll(&p, 1, 0) > 0)
		return connect_result(fd, e, p.revents);
	/* Linux: EALREADY if non-blocking, else wait again, and EALREADY
	 * (not EINPROGRESS) when SO_SNDTIMEO runs out this time */
	if (nonblocking(fd))
		return -EALREADY;
	int r = connect_wait(fd, e);
	return r == -EINPROGRESS ? -EALREADY : r;
}

/* AF_UNSPEC dissolves the association (Linux: tcp_disconnect). */
static int
disconnect(int fd, struct utcp_fdent *e, const struct sockaddr *sa,
	   socklen_t len)
{
	struct utcp_req req;
	struct utcp_rep rep;
	int r;

	utcp_req_init(&req, UTCP_OP_CONNECT, e->id);
	memcpy(&req.addr, sa, len);
	req.addrlen = len;
	r = utcp_ctl_call(&req, -1, &rep, NULL, false);
	if (r == 0)
		utcp_fd_set_flags(fd, 0, UTCP_FD_CONNECTING | UTCP_FD_CONNECTED);
	return r;
}

/* What Linux refuses before any packet, so that an asynchronous CONNECT
 * (whose failures arrive as SO_ERROR) still fails those at once. */
static int
connect_check_addr(const struct utcp_fdent *e, const struct sockaddr *sa,
		   socklen_t len)
{
	/* tcp_v4_connect / tcp_v6_connect: the length, then the family
	 * (24: RFC 2133's sockaddr_in6, without a scope id) */
	if (len < (e->family == AF_INET6 ? 24 : sizeof(struct sockaddr_in)))
		return -EINVAL;
	if (sa->sa_family != e->family)
		return -EAFNOSUPPORT;
	return 0;
}

static int
sock_connect(int fd, struct utcp_fdent *e, const struct sockaddr *sa,
	     socklen_t len)
{
	static const char filler[UTCP_FILLER_LEN];
	struct utcp_req req;
	struct utcp_rep rep;
	int sndbuf, small = UTCP_CONNECT_SNDBUF, outq, r;
	socklen_t sl = sizeof(sndbuf);
	ssize_t n;

	if (sa == NULL)
		return -EFAULT;
	if (len < sizeof(sa_family_t) || len > sizeof(struct sockaddr_storage))
		return -EINVAL;
	if (sa->sa_family == AF_UNSPEC)
		return disconnect(fd, e, sa, len);
	if ((r = connect_check_addr(e, sa, len)) < 0)
		return r;
	if (e->flags & (UTCP_FD_CONNECTED | UTCP_FD_LISTENING))
		return -EISCONN;
	if (e->flags & UTCP_FD_CONNECTING)
		return connect_again(fd, e);
	if (utcp_cfg.loopback_kernel && utcp_is_loopback(sa, len, true)) {
		if ((r = utcp_to_kernel(fd, e, true)) < 0)
			return r;
		return LIBC(connect)(fd, sa, len) < 0 ? -errno : 0;
	}
	/* Unread bytes in our end: a connect through another fd of this
	 * socket (a dup, a parent) is under way. Never add filler. */
	if (LIBC(ioctl)(fd, SIOCOUTQ, &outq) == 0 && outq > 0) {
		utcp_fd_set_flags(fd, UTCP_FD_CONNECTING, 0);
		return connect_again(fd, e);
	}

	/* ipc.h step 1: no POLLOUT until the daemon drains the filler */
	if (LIBC(getsockopt)(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, &sl) < 0 ||
	    LIBC(setsockopt)(fd, SOL_SOCKET, SO_SNDBUF, &small,
			     sizeof(small)) < 0)
		return -errno;
	n = LIBC(send)(fd, filler, sizeof(filler), MSG_DONTWAIT | MSG_NOSIGNAL);
	if (n <= 0) {
		r = n < 0 ? -errno : -EIO;
		goto restore;
	}
	utcp_req_init(&req, UTCP_OP_CONNECT, e->id);
	memcpy(&req.addr, sa, len);
	req.addrlen = len;
	req.arg[0] = (int32_t)n;
	req.arg[1] = sndbuf / 2;
	if (utcp_ctl_async()) {
		/* ipc.h, "Asynchronous operations": the outcome, even an
		 * immediate failure, comes as POLLOUT or POLLHUP. */
		req.arg[2] = UTCP_CONNECT_NOREPLY;
		r = utcp_ctl_send(&req, fd);
		if (r == 0)
			r = -EINPROGRESS;
	} else {
		r = utcp_ctl_call(&req, fd, &rep, NULL, false);
	}
	if (r == 0 || r == -EINPROGRESS) {
		utcp_rec_drop(e->id);
		if (r == 0) {
			utcp_fd_set_flags(fd, UTCP_FD_CONNECTED, 0);
			return 0;
		}
		utcp_fd_set_flags(fd, UTCP_FD_CONNECTING, 0);
		return nonblocking(fd) ? -EINPROGRESS : connect_wait(fd, e);
	}
restore:
	sndbuf /= 2;
	LIBC(setsockopt)(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	return r;
}

UTCP_EXPORT int
connect(int fd, __CONST_SOCKADDR_ARG addr, socklen_t len)
{
	struct utcp_fdent *e = utcp_sock_lookup(fd);
	const struct sockaddr *sa = addr.__sockaddr__;
	char a[64];
	int r;

	if (e == NULL)
		return LIBC(connect)(fd, sa, len);
	uint64_t t0 = utcp_trace_start();
	uint32_t id = e->id;
	r = sock_connect(fd, e, sa, len);
	utcp_debug("connect(%d, %s) = %s", fd,
		   sa != NULL ? utcp_fmt_addr(sa, len, a, sizeof(a)) : "NULL",
		   r < 0 ? strerrordesc_np(-r) : "0");
	if (unlikely(t0 != 0))
		utcp_trace_call(t0, "connect", id, fd, r, "%d, %s", fd,
				sa != NULL ? utcp_fmt_addr(sa, len, a, sizeof(a))
					   : "NULL");
	return utcp_ret(r);
}
