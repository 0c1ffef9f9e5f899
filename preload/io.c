/*
 * io.c — the data calls. The program's fd is a socketpair end, so the
 * kernel already does the work; we only turn the socketpair's view of a
 * dead connection into TCP's (DESIGN.md, principle 1):
 *
 *   read side   0 (EOF) or ECONNRESET → ask the daemon for SO_ERROR; a
 *               pending ECONNRESET/ETIMEDOUT/EHOSTUNREACH/… is returned
 *               instead, once (the daemon clears it as the kernel does)
 *   write side  EPIPE/ECONNRESET (write…sendmsg, sendfile, splice) →
 *               the same question. Writes on our fds go out with
 *               MSG_NOSIGNAL, and SIGPIPE is raised here only for a final
 *               EPIPE without the caller's MSG_NOSIGNAL: after an RST the
 *               first write says ECONNRESET with no signal, later ones
 *               EPIPE with SIGPIPE, as Linux TCP does
 *   addresses   recvfrom/recvmsg report no source address (TCP's answer),
 *               sendto/sendmsg ignore the destination (TCP ignores it; a
 *               socketpair would fail with EISCONN) and any SCM_* data
 *
 * Cost for fds that are not ours: reads are the libc call and one compare
 * on success; writes one bounds check and one load before the libc call.
 * Data calls never identify unknown fds (fdtab.c does that for socket
 * calls only), so an inherited engine fd read before any socket call gets
 * the socketpair's EOF, not the TCP error.
 */
#include "preload.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int
pending_error(int fd, bool eof)
{
	struct utcp_fdent *e = utcp_fd_slot(fd);
	uint32_t id = e != NULL ? __atomic_load_n(&e->id, __ATOMIC_ACQUIRE) : 0;
	int saved = errno, err = 0;
	struct pollfd p = {.fd = fd, .events = 0};

	if (!utcp_id_ours(id) || utcp_busy)
		return 0;
	/* An EOF on an end that is not hung up is the peer's FIN: the
	 * daemon shuts only its writing side for that, and both sides
	 * (ipc.h) when an error ends the connection. No round trip then. */
	if (eof && poll(&p, 1, 0) == 0) { /* no HUP, ERR or NVAL */
		errno = saved;
		return 0;
	}
	if (!utcp_fd_valid(fd, e)) {
		utcp_fd_clear(fd); /* closed behind our back */
	} else {
		err = utcp_ctl_so_error(id);
		utcp_debug("fd %d: EOF/EPIPE, engine socket %u error: %s", fd,
			   id, err > 0 ? strerrordesc_np(err) : "none");
	}
	errno = saved;
	return err > 0 ? err : 0;
}

int
utcp_pending_error(int fd)
{
	return pending_error(fd, false);
}

/* Under `utcp run --trace`, a data call on an engine socket that ends
 * the stream or fails is reported (EAGAIN and EINTR are not: a poll loop
 * would drown the trace). Successful transfers are not calls we act on. */
static void
trace_data(uint64_t t0, const char *name, int fd, ssize_t r, size_t n)
{
	uint32_t id = utcp_fd_id(fd);
	int e = errno;

	if (!utcp_id_ours(id) || (r < 0 && (e == EAGAIN || e == EINTR)))
		return;
	utcp_trace_call(t0, name, id, fd, r < 0 ? -e : r, "%d, %zu", fd, n);
}

/*
 * UTCP_BUSY_POLL=USEC (utcp run --busy-poll): a blocking call on one of our
 * sockets that would wait polls for up to USEC µs first, yielding the CPU
 * between polls, as Linux's net.core.busy_read does for its sockets. The
 * daemon's answer often comes within tens of µs, and a process still
 * running when it comes is not woken (≈ 25 µs on a VM). A non-blocking fd
 * never waits, so never polls; the call itself runs as before, after.
 */
int
utcp_busy_wait(int fd, short events)
{
	struct pollfd p = {.fd = fd, .events = events};
	struct timespec t0, t;
	long budget = (long)utcp_cfg.busy_poll * 1000; /* ns */
	int saved = errno, fl, r = 0;
	sigset_t all, old, pend;

	if (poll(&p, 1, 0) != 0) /* ready, or failing: the call will say */
		goto out;
	fl = LIBC(fcntl)(fd, F_GETFL);
	if (fl < 0 || (fl & O_NONBLOCK))
		goto out;
	/* A signal would interrupt the call's wait, but not this poll: hold
	 * signals back meanwhile, then see what came. */
	sigfillset(&all);
	if (pthread_sigmask(SIG_BLOCK, &all, &old) != 0)
		goto out;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		sched_yield();
		if (poll(&p, 1, 0) != 0)
			break;
		clock_gettime(CLOCK_MONOTONIC, &t);
	} while ((t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec) <
		 budget);
	if (sigpending(&pend) == 0) {
		for (int sig = 1; sig < NSIG; sig++) {
			struct sigaction sa;

			if (!sigismember(&pend, sig) || sigismember(&old, sig) ||
			    sigaction(sig, NULL, &sa) != 0)
				continue;
			/* as the kernel: a handler without SA_RESTART
			 * interrupts; ignored signals do not */
			if (!(sa.sa_flags & SA_SIGINFO) &&
			    (sa.sa_handler == SIG_IGN || sa.sa_handler == SIG_DFL))
				continue;
			if (!(sa.sa_flags & SA_RESTART))
				r = -EINTR;
		}
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL); /* the handlers run here */
out:
	errno = saved;
	return r;
}

/* Before a receive call on fd that may wait: 0, or -EINTR. */
static inline int
busy_wait_recv(int fd, int flags)
{
	if (unlikely(utcp_cfg.busy_poll != 0) && !(flags & MSG_DONTWAIT) &&
	    utcp_fd_ours(fd))
		return utcp_busy_wait(fd, POLLIN);
	return 0;
}

/* A receive call on fd, made after busy_wait_recv: -1 with EINTR instead
 * when a signal handler interrupted the polling. */
#define RECV_POLLED(fd, flags, call)                                           \
	(busy_wait_recv(fd, flags) < 0 ? (errno = EINTR, (ssize_t)-1) : (call))

/* After a read-side call that did not return data. */
static ssize_t
recv_result(int fd, ssize_t r, size_t want, const char *name, uint64_t t0)
{
	int err;

	if (r == 0 && want == 0)
		return 0;
	if (r < 0 && errno != ECONNRESET)
		goto out;
	if ((err = pending_error(fd, r == 0)) == 0)
		goto out;
	if (err == EPIPE) {
		/* RST in CLOSE-WAIT: the peer's FIN came first, and Linux's
		 * reader sees that EOF; only writes say EPIPE. */
		r = 0;
		goto out;
	}
	errno = err;
	r = -1;
out:
	if (unlikely(t0 != 0))
		trace_data(t0, name, fd, r, want);
	return r;
}

/* After a write-side call on our fd failed. */
static ssize_t
send_failed(int fd, int flags, const char *name, uint64_t t0, size_t n)
{
	int e = errno, err;

	if (e != EPIPE && e != ECONNRESET)
		goto out;
	if ((err = utcp_pending_error(fd)) != 0) {
		errno = err;
		goto out;
	}
	if (e == EPIPE && !(flags & MSG_NOSIGNAL))
		raise(SIGPIPE);
	errno = e;
out:
	if (unlikely(t0 != 0))
		trace_data(t0, name, fd, -1, n);
	return -1;
}

static size_t
iov_total(const struct iovec *iov, size_t n)
{
	size_t t = 0;

	for (size_t i = 0; i < n; i++)
		t += iov[i].iov_len;
	return t;
}

/* Out of line, so that read() of a file stays a table load, a branch
 * and a jump (bench/README.md, "The cost on AF_UNIX and file I/O"). */
static __attribute__((noinline)) ssize_t
read_ours(int fd, void *buf, size_t n)
{
	uint64_t t0 = utcp_trace_start();
	ssize_t r = RECV_POLLED(fd, 0, LIBC(read)(fd, buf, n));

	if (likely(r > 0))
		return r;
	return recv_result(fd, r, n, "read", t0);
}

static inline ssize_t
do_read(int fd, void *buf, size_t n)
{
	if (likely(!utcp_fd_ours(fd)))
		return LIBC(read)(fd, buf, n);
	return read_ours(fd, buf, n);
}

UTCP_EXPORT ssize_t
read(int fd, void *buf, size_t n)
{
	return do_read(fd, buf, n);
}

UTCP_EXPORT ssize_t
__read_chk(int fd, void *buf, size_t n, size_t buflen)
{
	if (n > buflen)
		__chk_fail();
	return do_read(fd, buf, n);
}

UTCP_EXPORT ssize_t
readv(int fd, const struct iovec *iov, int cnt)
{
	uint64_t t0 = utcp_trace_start();
	ssize_t r = RECV_POLLED(fd, 0, LIBC(readv)(fd, iov, cnt));

	if (likely(r > 0))
		return r;
	return recv_result(fd, r, r == 0 && cnt > 0 ? iov_total(iov, cnt) : 1,
			   "readv", t0);
}

static ssize_t
do_recv(int fd, void *buf, size_t n, int flags)
{
	uint64_t t0 = utcp_trace_start();
	ssize_t r = RECV_POLLED(fd, flags, LIBC(recv)(fd, buf, n, flags));

	if (likely(r > 0))
		return r;
	return recv_result(fd, r, n, "recv", t0);
}

UTCP_EXPORT ssize_t
recv(int fd, void *buf, size_t n, int flags)
{
	return do_recv(fd, buf, n, flags);
}

UTCP_EXPORT ssize_t
__recv_chk(int fd, void *buf, size_t n, size_t buflen, int flags)
{
	if (n > buflen)
		__chk_fail();
	return do_recv(fd, buf, n, flags);
}

static ssize_t
do_recvfrom(int fd, void *buf, size_t n, int flags, struct sockaddr *sa,
	    socklen_t *len)
{
	uint64_t t0 = utcp_trace_start();
	/* A socketpair names the daemon's end; TCP names nobody and leaves
	 * the caller's buffer alone. */
	bool ours = sa != NULL && utcp_fd_ours(fd);
	ssize_t r = RECV_POLLED(fd, flags,
				LIBC(recvfrom)(fd, buf, n, flags, ours ? NULL : sa,
					       ours ? NULL : len));

	if (ours && len != NULL && r >= 0)
		*len = 0;
	if (likely(r > 0))
		return r;
	return recv_result(fd, r, n, "recvfrom", t0);
}

UTCP_EXPORT ssize_t
recvfrom(int fd, void *__restrict buf, size_t n, int flags,
	 __SOCKADDR_ARG addr, socklen_t *__restrict len)
{
	return do_recvfrom(fd, buf, n, flags, addr.__sockaddr__, len);
}

UTCP_EXPORT ssize_t
__recvfrom_chk(int fd, void *buf, size_t n, size_t buflen, int flags,
	       struct sockaddr *addr, socklen_t *len)
{
	if (n > buflen)
		__chk_fail();
	return do_recvfrom(fd, buf, n, flags, addr, len);
}

UTCP_EXPORT ssize_t
recvmsg(int fd, struct msghdr *m, int flags)
{
	uint64_t t0 = utcp_trace_start();
	ssize_t r = RECV_POLLED(fd, flags, LIBC(recvmsg)(fd, m, flags));

	if (r < 0 && m == NULL)
		return r;
	if (m->msg_name != NULL && r >= 0 && utcp_fd_ours(fd))
		m->msg_namelen = 0;
	if (likely(r > 0))
		return r;
	return recv_result(fd, r,
			   r == 0 ? iov_total(m->msg_iov, m->msg_iovlen) : 1,
			   "recvmsg", t0);
}

/* --- write side: our fds only past the first branch --- */

static ssize_t
send_ours(int fd, const void *buf, size_t n, int flags, const char *name)
{
	uint64_t t0 = utcp_trace_start();
	ssize_t r = LIBC(send)(fd, buf, n, flags | MSG_NOSIGNAL);

	return r >= 0 ? r : send_failed(fd, flags, name, t0, n);
}

static __attribute__((noinline)) ssize_t
write_ours(int fd, const void *buf, size_t n)
{
	uint64_t t0 = utcp_trace_start();
	ssize_t r = LIBC(send)(fd, buf, n, MSG_NOSIGNAL);

	if (r >= 0)
		return r;
	if (errno == ENOTSOCK) {
		/* a stale entry: the number is a file now */
		utcp_fd_clear(fd);
		return LIBC(write)(fd, buf, n);
	}
	return send_failed(fd, 0, "write", t0, n);
}

UTCP_EXPORT ssize_t
write(int fd, const void *buf, size_t n)
{
	if (likely(!utcp_fd_ours(fd)))
		return LIBC(write)(fd, buf, n);
	return write_ours(fd, buf, n);
}

UTCP_EXPORT ssize_t
writev(int fd, const struct iovec *iov, int cnt)
{
	struct msghdr m = { .msg_iov = (struct iovec *)iov };
	ssize_t r;

	if (likely(!utcp_fd_ours(fd)))
		return LIBC(writev)(fd, iov, cnt);
	if (cnt < 0)
		return utcp_ret(-EINVAL);
	m.msg_iovlen = (size_t)cnt;
	uint64_t t0 = utcp_trace_start();
	r = LIBC(sendmsg)(fd, &m, MSG_NOSIGNAL);
	if (r >= 0)
		return r;
	if (errno == ENOTSOCK) {
		utcp_fd_clear(fd);
		return LIBC(writev)(fd, iov, cnt);
	}
	return send_failed(fd, 0, "writev", t0, iov_total(iov, (size_t)cnt));
}

/* sendfile and splice move data with no help (DESIGN.md, principle 1);
 * only a failure into an engine socket needs the TCP error behind the
 * socketpair's EPIPE. (The socketpair has raised SIGPIPE already: no
 * second one.) */
UTCP_EXPORT ssize_t
sendfile(int out, int in, off_t *off, size_t n)
{
	uint64_t t0 = utcp_trace_start();
	ssize_t r = LIBC(sendfile)(out, in, off, n);

	if (likely(r >= 0) || !utcp_fd_ours(out))
		return r;
	return send_failed(out, MSG_NOSIGNAL, "sendfile", t0, n);
}

UTCP_EXPORT ssize_t
sendfile64(int out, int in, off64_t *off, size_t n)
{
	uint64_t t0 = utcp_trace_start();
	ssize_t r = LIBC(sendfile64)(out, in, off, n);

	if (likely(r >= 0) || !utcp_fd_ours(out))
		return r;
	return send_failed(out, MSG_NOSIGNAL, "sendfile", t0, n);
}

UTCP_EXPORT ssize_t
splice(int in, loff_t *off_in, int out, loff_t *off_out, size_t n,
       unsigned int flags)
{
	uint64_t t0 = utcp_trace_start();
	ssize_t r = LIBC(splice)(in, off_in, out, off_out, n, flags);

	if (likely(r >= 0) || !utcp_fd_ours(out))
		return r;
	return send_failed(out, MSG_NOSIGNAL, "splice", t0, n);
}

UTCP_EXPORT ssize_t
send(int fd, const void *buf, size_t n, int flags)
{
	if (likely(!utcp_fd_ours(fd)))
		return LIBC(send)(fd, buf, n, flags);
	return send_ours(fd, buf, n, flags, "send");
}

/* MSG_FASTOPEN with an address: connect, then send (TFO's data rides on
 * the SYN in the kernel; the engine sends it right after). */
static int
fastopen(int fd, const struct sockaddr *sa, socklen_t len)
{
	if (connect(fd, sa, len) == 0 || errno == EISCONN)
		return 0;
	return -1;
}

UTCP_EXPORT ssize_t
sendto(int fd, const void *buf, size_t n, int flags, __CONST_SOCKADDR_ARG addr,
       socklen_t len)
{
	const struct sockaddr *sa = addr.__sockaddr__;

	if (likely(!utcp_fd_ours(fd)))
		return LIBC(sendto)(fd, buf, n, flags, sa, len);
	if ((flags & MSG_FASTOPEN) && sa != NULL && fastopen(fd, sa, len) < 0)
		return -1;
	if (!utcp_fd_ours(fd)) /* the loopback policy moved it */
		return LIBC(send)(fd, buf, n, flags & ~MSG_FASTOPEN);
	return send_ours(fd, buf, n, flags & ~MSG_FASTOPEN, "sendto");
}

UTCP_EXPORT ssize_t
sendmsg(int fd, const struct msghdr *m, int flags)
{
	struct msghdr mm;
	ssize_t r;

	if (likely(!utcp_fd_ours(fd)) || m == NULL)
		return LIBC(sendmsg)(fd, m, flags);
	if ((flags & MSG_FASTOPEN) && m->msg_name != NULL &&
	    fastopen(fd, m->msg_name, m->msg_namelen) < 0)
		return -1;
	mm = *m;
	mm.msg_name = NULL;
	mm.msg_namelen = 0;
	mm.msg_control = NULL; /* never hand the daemon the program's fds */
	mm.msg_controllen = 0;
	flags &= ~MSG_FASTOPEN;
	if (!utcp_fd_ours(fd))
		return LIBC(sendmsg)(fd, &mm, flags);
	uint64_t t0 = utcp_trace_start();
	r = LIBC(sendmsg)(fd, &mm, flags | MSG_NOSIGNAL);
	return r >= 0 ? r : send_failed(fd, flags, "sendmsg", t0,
					 iov_total(mm.msg_iov, mm.msg_iovlen));
}
