/*
 * shim.c — build/libutcp_packetdrill.so: packetdrill's shared-object
 * interface (packetdrill.h) over the utcp engine, so packetdrill's corpus
 * can run against utcp:
 *
 *   packetdrill --so_filename=build/libutcp_packetdrill.so \
 *               --so_flags=local=192.168.0.1 script.pkt
 *
 * The engine is pure; this shim is not part of it: it owns a real clock
 * (CLOCK_MONOTONIC), a timer thread that calls utcp_poll() at each engine
 * deadline, and one eventfd per engine socket, because packetdrill closes
 * every fd it was given with libc close(). One mutex guards the engine; one
 * condition variable wakes every waiter (blocking calls on packetdrill's
 * syscall thread, netdev_receive, the timer thread) after any engine call.
 *
 * Flags (--so_flags, separated by spaces or commas):
 *   local=A.B.C.D   the engine's IPv4 address (default 192.168.0.1)
 *   mtu=N           link MTU (default 1500, so MSS 1460)
 *   rx_timeout=MS   how long one netdev_receive() call waits (default 1000)
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "packetdrill.h"
#include "utcp.h"

#define EXPORT __attribute__((visibility("default")))

struct opkt {
	struct opkt *next;
	long long t;
	size_t len;
	uint8_t data[];
};

struct sfd {
	int fd; /* the eventfd packetdrill holds; -1 = free slot */
	struct utcp_sock *s;
	bool nonblock;
	unsigned acceptable;
};

struct shim {
	pthread_mutex_t mu;
	pthread_cond_t cv; /* anything changed */
	struct utcp_stack *st;
	struct utcp_config cfg;
	pthread_t timer;
	bool stop;
	struct opkt *qhead, **qtail;
	/* Fixed: a blocked call keeps a pointer into it across waits. */
	struct sfd fds[1024];
	size_t nfds;
	long long rx_timeout_us;
};

/* ---- clock ---- */

static long long mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void abs_deadline(struct timespec *ts, long long at_us)
{
	ts->tv_sec = at_us / 1000000;
	ts->tv_nsec = (at_us % 1000000) * 1000;
}

/* Wait on the condition until something changes or at_us passes (<0:
 * forever). Called with the mutex held. */
static void wait_until(struct shim *sh, long long at_us)
{
	struct timespec ts;

	if (at_us < 0) {
		pthread_cond_wait(&sh->cv, &sh->mu);
		return;
	}
	abs_deadline(&ts, at_us);
	pthread_cond_timedwait(&sh->cv, &sh->mu, &ts);
}

/* After any engine call: wake the waiters (and the timer thread, whose
 * deadline may have moved). */
static void kick(struct shim *sh)
{
	pthread_cond_broadcast(&sh->cv);
}

static utcp_time_t enow(void)
{
	return (utcp_time_t)mono_us();
}

/* ---- engine callbacks (mutex held) ---- */

static struct sfd *sfd_of_sock(struct shim *sh, const struct utcp_sock *s)
{
	for (size_t i = 0; i < sh->nfds; i++)
		if (sh->fds[i].fd >= 0 && sh->fds[i].s == s)
			return &sh->fds[i];
	return NULL;
}

static void on_output(void *ctx, const uint8_t *pkt, size_t len)
{
	struct shim *sh = ctx;
	struct opkt *p = malloc(sizeof(*p) + len);

	if (!p)
		return; /* packetdrill will report the missing packet */
	p->next = NULL;
	p->t = mono_us();
	p->len = len;
	memcpy(p->data, pkt, len);
	*sh->qtail = p;
	sh->qtail = &p->next;
}

static void on_event(void *ctx, const struct utcp_event *ev)
{
	struct shim *sh = ctx;
	struct sfd *f = ev->sock ? sfd_of_sock(sh, ev->sock) : NULL;

	if (!f)
		return;
	if (ev->type == UTCP_EV_ACCEPTABLE)
		f->acceptable++;
	if (ev->type == UTCP_EV_FREED)
		f->s = NULL;
}

/* ---- the timer thread ---- */

static void *timer_main(void *arg)
{
	struct shim *sh = arg;

	pthread_mutex_lock(&sh->mu);
	while (!sh->stop) {
		utcp_time_t d = utcp_next_deadline(sh->st);
		long long now = mono_us();

		if (d != UTCP_TIME_NEVER && (long long)d <= now) {
			utcp_poll(sh->st, (utcp_time_t)now);
			kick(sh);
			continue;
		}
		wait_until(sh, d == UTCP_TIME_NEVER ? now + 1000000 : (long long)d);
	}
	pthread_mutex_unlock(&sh->mu);
	return NULL;
}

/* ---- fds ---- */

static struct sfd *sfd_get(struct shim *sh, int fd)
{
	for (size_t i = 0; i < sh->nfds; i++)
		if (sh->fds[i].fd == fd && fd >= 0)
			return &sh->fds[i];
	return NULL;
}

static struct sfd *sfd_new(struct shim *sh, struct utcp_sock *s)
{
	int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	struct sfd *f = NULL;

	if (fd < 0)
		return NULL;
	for (size_t i = 0; i < sh->nfds; i++)
		if (sh->fds[i].fd < 0) {
			f = &sh->fds[i];
			break;
		}
	if (!f && sh->nfds < sizeof(sh->fds) / sizeof(sh->fds[0]))
		f = &sh->fds[sh->nfds++];
	if (!f) {
		close(fd);
		return NULL;
	}
	memset(f, 0, sizeof(*f));
	f->fd = fd;
	f->s = s;
	return f;
}

/* The engine's negative errno to libc's -1/errno. */
static long ret_errno(long v)
{
	if (v < 0) {
		errno = (int)-v;
		return -1;
	}
	return v;
}

#define LOCKED_FD(sh, fd, f)                                                 \
	struct shim *sh = ud;                                                \
	struct sfd *f;                                                       \
	pthread_mutex_lock(&sh->mu);                                         \
	f = sfd_get(sh, fd);                                                 \
	if (!f || !f->s) {                                                   \
		pthread_mutex_unlock(&sh->mu);                               \
		errno = EBADF;                                               \
		return -1;                                                   \
	}

static int to_addr(const struct sockaddr *sa, socklen_t len,
		   struct utcp_addr *a)
{
	const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;

	memset(a, 0, sizeof(*a));
	if (!sa || len < sizeof(*sin) || sin->sin_family != AF_INET)
		return -EAFNOSUPPORT;
	a->family = AF_INET;
	memcpy(a->ip, &sin->sin_addr, 4);
	a->port = ntohs(sin->sin_port);
	return 0;
}

static void from_addr(const struct utcp_addr *a, struct sockaddr *sa,
		      socklen_t *len)
{
	struct sockaddr_in sin;

	if (!sa || !len)
		return;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(a->port);
	memcpy(&sin.sin_addr, a->ip, 4);
	memcpy(sa, &sin, *len < sizeof(sin) ? *len : sizeof(sin));
	*len = sizeof(sin);
}

/* ---- socket calls ---- */

static int sh_socket(void *ud, int domain, int type, int protocol)
{
	struct shim *sh = ud;
	struct utcp_sock *s;
	struct sfd *f;

	if (domain != AF_INET) {
		errno = EAFNOSUPPORT;
		return -1;
	}
	if ((type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC)) != SOCK_STREAM ||
	    (protocol != 0 && protocol != IPPROTO_TCP)) {
		errno = EPROTONOSUPPORT;
		return -1;
	}
	pthread_mutex_lock(&sh->mu);
	s = utcp_socket(sh->st, AF_INET);
	f = s ? sfd_new(sh, s) : NULL;
	if (!f) {
		if (s)
			utcp_close(s, enow());
		pthread_mutex_unlock(&sh->mu);
		errno = ENOMEM;
		return -1;
	}
	f->nonblock = (type & SOCK_NONBLOCK) != 0;
	pthread_mutex_unlock(&sh->mu);
	return f->fd;
}

static int sh_bind(void *ud, int fd, const struct sockaddr *sa, socklen_t len)
{
	struct utcp_addr a;
	int r;
	LOCKED_FD(sh, fd, f);

	r = to_addr(sa, len, &a);
	if (r == 0)
		r = utcp_bind(f->s, &a);
	pthread_mutex_unlock(&sh->mu);
	return (int)ret_errno(r);
}

static int sh_listen(void *ud, int fd, int backlog)
{
	int r;
	LOCKED_FD(sh, fd, f);

	r = utcp_listen(f->s, backlog);
	kick(sh);
	pthread_mutex_unlock(&sh->mu);
	return (int)ret_errno(r);
}

static int sh_accept(void *ud, int fd, struct sockaddr *sa, socklen_t *len)
{
	struct utcp_sock *c;
	struct sfd *nf;
	int err = 0;
	LOCKED_FD(sh, fd, f);

	for (;;) {
		c = utcp_accept(f->s, &err);
		if (c || err != -EAGAIN || f->nonblock)
			break;
		wait_until(sh, -1);
		if (!f->s) {
			err = -EBADF;
			break;
		}
	}
	if (!c) {
		pthread_mutex_unlock(&sh->mu);
		return (int)ret_errno(err ? err : -EAGAIN);
	}
	if (f->acceptable)
		f->acceptable--;
	nf = sfd_new(sh, c);
	if (!nf) {
		utcp_close(c, enow());
		kick(sh);
		pthread_mutex_unlock(&sh->mu);
		errno = EMFILE;
		return -1;
	}
	if (sa && len) {
		struct utcp_addr l, r;

		utcp_sock_names(c, &l, &r);
		from_addr(&r, sa, len);
	}
	pthread_mutex_unlock(&sh->mu);
	return nf->fd;
}

static int sh_connect(void *ud, int fd, const struct sockaddr *sa,
		      socklen_t len)
{
	struct utcp_addr a;
	int r;
	LOCKED_FD(sh, fd, f);

	r = to_addr(sa, len, &a);
	if (r == 0)
		r = utcp_connect(f->s, &a, enow());
	kick(sh);
	if (r == 0 && f->nonblock)
		r = -EINPROGRESS;
	while (r == 0) {
		int st = utcp_sock_state(f->s);
		int e;

		if (UTCP_HAVEESTABLISHED(st))
			break;
		e = utcp_sock_error(f->s, true);
		if (e) {
			r = -e;
			break;
		}
		if (st == UTCP_CLOSED) {
			r = -ECONNABORTED;
			break;
		}
		wait_until(sh, -1);
		if (!f->s)
			r = -EBADF;
	}
	pthread_mutex_unlock(&sh->mu);
	return (int)ret_errno(r);
}

/* Receive into an iovec; blocking unless nonblocking or MSG_DONTWAIT. */
static ssize_t do_recv(void *ud, int fd, const struct iovec *iov, int iovcnt,
		       int flags)
{
	ssize_t total = 0, r = 0;
	int uflags = (flags & MSG_PEEK) ? UTCP_MSG_PEEK : 0;
	LOCKED_FD(sh, fd, f);

	for (;;) {
		total = 0;
		for (int i = 0; i < iovcnt; i++) {
			if (!iov[i].iov_len)
				continue;
			r = utcp_recv(f->s, iov[i].iov_base, iov[i].iov_len, uflags,
				      enow());
			if (r < 0)
				break;
			total += r;
			if ((size_t)r < iov[i].iov_len || r == 0)
				break;
		}
		if (total > 0 || r != -EAGAIN || f->nonblock ||
		    (flags & MSG_DONTWAIT))
			break;
		wait_until(sh, -1);
		if (!f->s) {
			r = -EBADF;
			break;
		}
	}
	kick(sh); /* reading may open the window */
	pthread_mutex_unlock(&sh->mu);
	return total > 0 ? total : ret_errno(r);
}

/* Send an iovec; a blocking socket waits until every byte is queued. */
static ssize_t do_send(void *ud, int fd, const struct iovec *iov, int iovcnt,
		       int flags)
{
	ssize_t total = 0, r = 0;
	int uflags = (flags & MSG_MORE) ? UTCP_MSG_MORE : 0;
	LOCKED_FD(sh, fd, f);

	for (int i = 0; i < iovcnt; i++) {
		size_t done = 0;

		while (done < iov[i].iov_len) {
			r = utcp_send(f->s, (const char *)iov[i].iov_base + done,
				      iov[i].iov_len - done, uflags, enow());
			kick(sh);
			if (r > 0) {
				done += (size_t)r;
				total += r;
				continue;
			}
			if (r == -EAGAIN && !f->nonblock &&
			    !(flags & MSG_DONTWAIT)) {
				wait_until(sh, -1);
				if (!f->s) {
					r = -EBADF;
					goto out;
				}
				continue;
			}
			goto out;
		}
	}
	r = 0;
out:
	pthread_mutex_unlock(&sh->mu);
	return total > 0 ? total : ret_errno(r);
}

static ssize_t sh_read(void *ud, int fd, void *buf, size_t n)
{
	struct iovec v = {buf, n};

	return do_recv(ud, fd, &v, 1, 0);
}

static ssize_t sh_readv(void *ud, int fd, const struct iovec *iov, int cnt)
{
	return do_recv(ud, fd, iov, cnt, 0);
}

static ssize_t sh_recv(void *ud, int fd, void *buf, size_t n, int flags)
{
	struct iovec v = {buf, n};

	return do_recv(ud, fd, &v, 1, flags);
}

static ssize_t sh_recvfrom(void *ud, int fd, void *buf, size_t n, int flags,
			   struct sockaddr *sa, socklen_t *len)
{
	struct iovec v = {buf, n};

	if (len)
		*len = 0; /* connected stream: no address, as Linux */
	(void)sa;
	return do_recv(ud, fd, &v, 1, flags);
}

static ssize_t sh_recvmsg(void *ud, int fd, struct msghdr *msg, int flags)
{
	msg->msg_namelen = 0;
	msg->msg_controllen = 0;
	msg->msg_flags = 0;
	return do_recv(ud, fd, msg->msg_iov, (int)msg->msg_iovlen, flags);
}

static ssize_t sh_write(void *ud, int fd, const void *buf, size_t n)
{
	struct iovec v = {(void *)buf, n};

	return do_send(ud, fd, &v, 1, 0);
}

static ssize_t sh_writev(void *ud, int fd, const struct iovec *iov, int cnt)
{
	return do_send(ud, fd, iov, cnt, 0);
}

static ssize_t sh_send(void *ud, int fd, const void *buf, size_t n, int flags)
{
	struct iovec v = {(void *)buf, n};

	return do_send(ud, fd, &v, 1, flags);
}

static ssize_t sh_sendto(void *ud, int fd, const void *buf, size_t n,
			 int flags, const struct sockaddr *sa, socklen_t len)
{
	struct iovec v = {(void *)buf, n};

	(void)sa;
	(void)len;
	return do_send(ud, fd, &v, 1, flags);
}

static ssize_t sh_sendmsg(void *ud, int fd, const struct msghdr *msg,
			  int flags)
{
	return do_send(ud, fd, msg->msg_iov, (int)msg->msg_iovlen, flags);
}

static int sh_fcntl(void *ud, int fd, int cmd, ...)
{
	va_list ap;
	long arg;
	int r = 0;
	LOCKED_FD(sh, fd, f);

	va_start(ap, cmd);
	arg = va_arg(ap, long);
	va_end(ap);
	if (cmd == F_GETFL)
		r = O_RDWR | (f->nonblock ? O_NONBLOCK : 0);
	else if (cmd == F_SETFL)
		f->nonblock = (arg & O_NONBLOCK) != 0;
	else
		r = fcntl(fd, cmd, arg); /* F_GETFD & co: the real fd */
	pthread_mutex_unlock(&sh->mu);
	return r;
}

static int sh_ioctl(void *ud, int fd, unsigned long req, ...)
{
	va_list ap;
	int *out;
	int r = 0;
	LOCKED_FD(sh, fd, f);

	va_start(ap, req);
	out = va_arg(ap, int *);
	va_end(ap);
	if (req == FIONREAD) {
		*out = (int)utcp_recv_avail(f->s);
	} else if (req == SIOCOUTQ) {
		struct utcp_info in;

		utcp_sock_info(f->s, &in, enow());
		*out = (int)in.send_q;
	} else {
		errno = EINVAL;
		r = -1;
	}
	pthread_mutex_unlock(&sh->mu);
	return r;
}

static int sh_close(void *ud, int fd)
{
	LOCKED_FD(sh, fd, f);

	utcp_close(f->s, enow());
	kick(sh);
	f->s = NULL;
	f->fd = -1;
	close(fd);
	pthread_mutex_unlock(&sh->mu);
	return 0;
}

static int sh_shutdown(void *ud, int fd, int how)
{
	int r;
	LOCKED_FD(sh, fd, f);

	r = utcp_shutdown(f->s, how, enow());
	kick(sh);
	pthread_mutex_unlock(&sh->mu);
	return (int)ret_errno(r);
}

static int sh_getsockopt(void *ud, int fd, int level, int name, void *val,
			 socklen_t *len)
{
	int r;
	size_t l = len ? *len : 0;
	LOCKED_FD(sh, fd, f);

	if (level == SOL_SOCKET && name == SO_ERROR) {
		int e = utcp_sock_error(f->s, true);

		if (l < sizeof(int)) {
			r = -EINVAL;
		} else {
			memcpy(val, &e, sizeof(e));
			l = sizeof(e);
			r = 0;
		}
	} else {
		r = utcp_getsockopt(f->s, level, name, val, &l);
	}
	if (r == 0 && len)
		*len = (socklen_t)l;
	pthread_mutex_unlock(&sh->mu);
	return (int)ret_errno(r);
}

static int sh_setsockopt(void *ud, int fd, int level, int name,
			 const void *val, socklen_t len)
{
	int r;
	LOCKED_FD(sh, fd, f);

	r = utcp_setsockopt(f->s, level, name, val, len, enow());
	kick(sh);
	pthread_mutex_unlock(&sh->mu);
	return (int)ret_errno(r);
}

/* revents as Linux's tcp_poll() would report them. Mutex held. */
static short revents_of(struct sfd *f)
{
	int st;
	short rev = 0;

	if (!f || !f->s)
		return POLLNVAL;
	st = utcp_sock_state(f->s);
	if (st == UTCP_LISTEN)
		return f->acceptable ? POLLIN | POLLRDNORM : 0;
	if (utcp_recv_avail(f->s) || utcp_sock_eof(f->s))
		rev |= POLLIN | POLLRDNORM;
	if (utcp_sock_eof(f->s))
		rev |= POLLRDHUP;
	if ((st == UTCP_ESTABLISHED || st == UTCP_CLOSE_WAIT) &&
	    utcp_send_space(f->s))
		rev |= POLLOUT | POLLWRNORM;
	if (utcp_sock_error(f->s, false))
		rev |= POLLERR;
	if (st == UTCP_CLOSED)
		rev |= POLLIN | POLLRDNORM | POLLRDHUP | POLLOUT | POLLWRNORM |
		       POLLHUP;
	return rev;
}

static int sh_poll(void *ud, struct pollfd *fds, nfds_t n, int timeout)
{
	struct shim *sh = ud;
	long long until = timeout < 0 ? -1 : mono_us() + (long long)timeout * 1000;
	int ready;

	pthread_mutex_lock(&sh->mu);
	for (;;) {
		ready = 0;
		for (nfds_t i = 0; i < n; i++) {
			short rev = revents_of(sfd_get(sh, fds[i].fd));

			fds[i].revents =
				rev & (fds[i].events | POLLERR | POLLHUP | POLLNVAL);
			if (fds[i].revents)
				ready++;
		}
		if (ready || (until >= 0 && mono_us() >= until))
			break;
		wait_until(sh, until);
	}
	pthread_mutex_unlock(&sh->mu);
	return ready;
}

/* ---- the link ---- */

static int sh_netdev_send(void *ud, const void *buf, size_t n)
{
	struct shim *sh = ud;

	pthread_mutex_lock(&sh->mu);
	utcp_input(sh->st, buf, n, enow());
	kick(sh);
	pthread_mutex_unlock(&sh->mu);
	return 0;
}

static int sh_netdev_receive(void *ud, void *buf, size_t *count,
			     long long *time_usecs)
{
	struct shim *sh = ud;
	long long until = mono_us() + sh->rx_timeout_us;
	struct opkt *p;

	pthread_mutex_lock(&sh->mu);
	while (!sh->qhead && mono_us() < until)
		wait_until(sh, until);
	p = sh->qhead;
	if (!p) {
		pthread_mutex_unlock(&sh->mu);
		*count = 0;
		return -1; /* packetdrill asks again */
	}
	sh->qhead = p->next;
	if (!sh->qhead)
		sh->qtail = &sh->qhead;
	pthread_mutex_unlock(&sh->mu);
	if (p->len < *count)
		*count = p->len;
	memcpy(buf, p->data, *count);
	*time_usecs = p->t;
	free(p);
	return 0;
}

static int sh_usleep(void *ud, useconds_t us)
{
	struct timespec ts = {us / 1000000, (long)(us % 1000000) * 1000};

	(void)ud;
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
	return 0;
}

static int sh_gettimeofday(void *ud, struct timeval *tv, struct timezone *tz)
{
	long long t = mono_us();

	(void)ud;
	(void)tz;
	tv->tv_sec = t / 1000000;
	tv->tv_usec = t % 1000000;
	return 0;
}

/* Not served by the engine: refused cleanly rather than crashing. */
static int sh_epoll_create(void *ud, int size)
{
	(void)ud;
	(void)size;
	errno = ENOSYS;
	return -1;
}

static int sh_epoll_ctl(void *ud, int epfd, int op, int fd,
			struct epoll_event *ev)
{
	(void)ud;
	(void)epfd;
	(void)op;
	(void)fd;
	(void)ev;
	errno = ENOSYS;
	return -1;
}

static int sh_epoll_wait(void *ud, int epfd, struct epoll_event *evs, int max,
			 int timeout)
{
	(void)ud;
	(void)epfd;
	(void)evs;
	(void)max;
	(void)timeout;
	errno = ENOSYS;
	return -1;
}

static int sh_pipe(void *ud, int p[2])
{
	(void)ud;
	return pipe(p);
}

static int sh_splice(void *ud, int in, loff_t *oin, int out, loff_t *oout,
		     size_t len, unsigned int flags)
{
	(void)ud;
	(void)in;
	(void)oin;
	(void)out;
	(void)oout;
	(void)len;
	(void)flags;
	errno = ENOSYS;
	return -1;
}

static void sh_free(void *ud)
{
	struct shim *sh = ud;

	pthread_mutex_lock(&sh->mu);
	sh->stop = true;
	kick(sh);
	pthread_mutex_unlock(&sh->mu);
	pthread_join(sh->timer, NULL);
	/* packetdrill has already closed the eventfds itself. */
	utcp_stack_free(sh->st);
	while (sh->qhead) {
		struct opkt *p = sh->qhead;

		sh->qhead = p->next;
		free(p);
	}
	pthread_cond_destroy(&sh->cv);
	pthread_mutex_destroy(&sh->mu);
	free(sh);
}

/* ---- set-up ---- */

static void parse_flags(struct shim *sh, const char *flags)
{
	char buf[256], *save = NULL, *tok;

	if (!flags)
		return;
	snprintf(buf, sizeof(buf), "%s", flags);
	for (tok = strtok_r(buf, " ,;", &save); tok;
	     tok = strtok_r(NULL, " ,;", &save)) {
		unsigned a, b, c, d;

		if (sscanf(tok, "local=%u.%u.%u.%u", &a, &b, &c, &d) == 4 &&
		    a < 256 && b < 256 && c < 256 && d < 256) {
			sh->cfg.local4.ip[0] = (uint8_t)a;
			sh->cfg.local4.ip[1] = (uint8_t)b;
			sh->cfg.local4.ip[2] = (uint8_t)c;
			sh->cfg.local4.ip[3] = (uint8_t)d;
		} else if (strncmp(tok, "mtu=", 4) == 0) {
			sh->cfg.mtu = (uint32_t)atoi(tok + 4);
		} else if (strncmp(tok, "rx_timeout=", 11) == 0) {
			sh->rx_timeout_us = atoll(tok + 11) * 1000;
		} else {
			fprintf(stderr, "libutcp_packetdrill: unknown flag '%s'\n",
				tok);
		}
	}
}

EXPORT void packetdrill_interface_init(const char *flags,
				       struct packetdrill_interface *ifc)
{
	struct shim *sh = calloc(1, sizeof(*sh));
	pthread_condattr_t ca;
	FILE *ur;

	if (!sh) {
		fprintf(stderr, "libutcp_packetdrill: out of memory\n");
		abort();
	}
	utcp_config_defaults(&sh->cfg);
	sh->cfg.local4.family = AF_INET;
	sh->cfg.local4.ip[0] = 192;
	sh->cfg.local4.ip[1] = 168;
	sh->cfg.local4.ip[2] = 0;
	sh->cfg.local4.ip[3] = 1;
	sh->cfg.mtu = 1500;
	sh->rx_timeout_us = 1000000;
	parse_flags(sh, flags);
	/* A real key and seed: this is a live stack, not a replay. */
	ur = fopen("/dev/urandom", "rb");
	if (!ur || fread(sh->cfg.isn_key, 1, sizeof(sh->cfg.isn_key), ur) !=
			   sizeof(sh->cfg.isn_key) ||
	    fread(&sh->cfg.seed, 1, sizeof(sh->cfg.seed), ur) !=
		    sizeof(sh->cfg.seed))
		sh->cfg.seed = (uint64_t)mono_us();
	if (ur)
		fclose(ur);
	sh->cfg.ctx = sh;
	sh->cfg.output = on_output;
	sh->cfg.event = on_event;
	sh->qtail = &sh->qhead;
	pthread_mutex_init(&sh->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&sh->cv, &ca);
	pthread_condattr_destroy(&ca);
	sh->st = utcp_stack_new(&sh->cfg);
	if (!sh->st || pthread_create(&sh->timer, NULL, timer_main, sh) != 0) {
		fprintf(stderr, "libutcp_packetdrill: cannot start the engine\n");
		abort();
	}

	memset(ifc, 0, sizeof(*ifc));
	ifc->userdata = sh;
	ifc->free = sh_free;
	ifc->socket = sh_socket;
	ifc->bind = sh_bind;
	ifc->listen = sh_listen;
	ifc->accept = sh_accept;
	ifc->connect = sh_connect;
	ifc->read = sh_read;
	ifc->readv = sh_readv;
	ifc->recv = sh_recv;
	ifc->recvfrom = sh_recvfrom;
	ifc->recvmsg = sh_recvmsg;
	ifc->write = sh_write;
	ifc->writev = sh_writev;
	ifc->send = sh_send;
	ifc->sendto = sh_sendto;
	ifc->sendmsg = sh_sendmsg;
	ifc->fcntl = sh_fcntl;
	ifc->ioctl = sh_ioctl;
	ifc->close = sh_close;
	ifc->shutdown = sh_shutdown;
	ifc->getsockopt = sh_getsockopt;
	ifc->setsockopt = sh_setsockopt;
	ifc->poll = sh_poll;
	ifc->netdev_send = sh_netdev_send;
	ifc->netdev_receive = sh_netdev_receive;
	ifc->usleep = sh_usleep;
	ifc->gettimeofday = sh_gettimeofday;
	ifc->epoll_create = sh_epoll_create;
	ifc->epoll_ctl = sh_epoll_ctl;
	ifc->epoll_wait = sh_epoll_wait;
	ifc->pipe = sh_pipe;
	ifc->splice = sh_splice;
}
