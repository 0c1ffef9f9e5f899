/*
 * bridge.c — one record per engine socket, and the data path between the
 * engine and the daemon's end of the socket's socketpair.
 *
 * Back-pressure both ways, nothing buffered beyond one chunk:
 *   program → engine: read the daemon's end only up to utcp_send_space();
 *     when the engine's send buffer is full we stop reading, the socketpair
 *     fills, and the program's writes block (or give EAGAIN).
 *   engine → program: utcp_recv() and write until the socketpair is full;
 *     then wait for EPOLLOUT. The data left stays in the engine, whose
 *     receive window closes: a program that stops reading closes the TCP
 *     window. A short write leaves at most one chunk (UTCPD_IOBUF) in
 *     rx_pend, written before anything else.
 *
 * Ends of the stream, as the daemon's end sees them:
 *   read() == 0 without HUP   the program shut down writing → after every
 *                             byte before it went to the engine,
 *                             utcp_shutdown(SHUT_WR).
 *   HUP (we had not shut)     the program closed its last reference →
 *                             utcp_close() (the engine sends RST itself if
 *                             unread data remains), close our end.
 *   read() == ECONNRESET      it closed with data of ours unread →
 *                             utcp_abort(): RST, as the kernel does.
 *   utcp_recv() == 0          FIN, all data written → shutdown(SHUT_WR).
 *   utcp_recv() < 0 / ERROR   RST, timeout … once the data before it is
 *                             written: record SO_ERROR, shut our end down
 *                             both ways and close it.
 *
 * Lingering records: when we close our end while the program may still
 * hold its end (after an error, or after both directions were shut down
 * without a close we could see), the record stays until the engine frees
 * the socket and at least UTCPD_GRACE after, so SO_ERROR, getsockname()
 * and getpeername() still answer; then it is freed. A record whose program
 * is known to be gone is freed as soon as the engine frees the socket.
 *
 * Known limit: while a connect is in progress the daemon holds a dup of the
 * program's end (ipc.h, step 2), so a close() by the program during the
 * handshake is seen only at the handshake's outcome.
 */
#include "utcpd.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#define TOKEN_BYTE 'a'

static void rec_work(struct daemon *d, struct rec *r);
static void rec_update_ep(struct daemon *d, struct rec *r);
static void unhold(struct daemon *d, struct rec *r);
static void program_gone(struct daemon *d, struct rec *r, bool abort);

struct rec *
rec_find(struct daemon *d, uint32_t id)
{
	struct rec *r = NULL;

	HASH_FIND(hh, d->recs, &id, sizeof(id), r);
	return r;
}

static void
tuple_del(struct daemon *d, struct rec *r)
{
	if (!r->tkeyed)
		return;
	HASH_DELETE(th, d->by_tuple, r);
	r->tkeyed = false;
}

struct rec *
rec_by_tuple(struct daemon *d, const struct tuple_key *k)
{
	struct rec *r = NULL;

	HASH_FIND(th, d->by_tuple, k, sizeof(*k), r);
	return r;
}

/* Index the record by its connection (or, for a listener, its port) so
 * packets and not-yet-accepted connections find their owner. */
void
rec_set_tuple(struct daemon *d, struct rec *r)
{
	struct utcp_addr l, rm;
	struct tuple_key k;
	struct rec *old;

	if (r->sk == NULL)
		return;
	utcp_sock_names(r->sk, &l, &rm);
	memset(&k, 0, sizeof(k));
	k.family = (uint8_t)(l.family != 0 ? l.family : r->family);
	k.lport = l.port;
	if (r->kind != REC_LISTENER) {
		if (rm.port == 0)
			return;
		k.rport = rm.port;
		memcpy(k.raddr, rm.ip, rm.family == AF_INET6 ? 16 : 4);
	}
	if (k.lport == 0)
		return;
	tuple_del(d, r);
	if ((old = rec_by_tuple(d, &k)) != NULL)
		tuple_del(d, old);
	r->tkey = k;
	HASH_ADD(th, d->by_tuple, tkey, sizeof(r->tkey), r);
	r->tkeyed = true;
}

void
rec_dirty(struct daemon *d, struct rec *r)
{
	if (r->on_dirty || r->dead || d->tearing_down)
		return;
	r->on_dirty = true;
	TAILQ_INSERT_TAIL(&d->dirty, r, dirty_link);
}

static uint32_t
new_id(struct daemon *d)
{
	for (;;) {
		uint32_t id = ++d->next_id;
		if (id != 0 && rec_find(d, id) == NULL)
			return id;
	}
}

/* Unlink a record; the loop frees it after the current batch. */
static void
rec_kill(struct daemon *d, struct rec *r)
{
	if (r->dead)
		return;
	log_debug("sock %u: record freed", r->id);
	unhold(d, r);
	r->dead = true;
	HASH_DEL(d->recs, r);
	tuple_del(d, r);
	if (r->on_dirty) {
		TAILQ_REMOVE(&d->dirty, r, dirty_link);
		r->on_dirty = false;
	}
	if (r->lingering) {
		TAILQ_REMOVE(&d->linger, r, linger_link);
		r->lingering = false;
	}
	if (r->sk != NULL)
		utcp_sock_set_user(r->sk, NULL);
	TAILQ_INSERT_TAIL(&d->reap, r, reap_link);
	d->stats[DST_sockets_open]--;
}

static void
rec_free(struct rec *r)
{
	if (r->fd >= 0)
		close(r->fd);
	if (r->connfd >= 0)
		close(r->connfd);
	free(r->rx_pend);
	free(r->tx_pend);
	free(r);
}

void
rec_reap(struct daemon *d)
{
	struct rec *r;

	while ((r = TAILQ_FIRST(&d->reap)) != NULL) {
		TAILQ_REMOVE(&d->reap, r, reap_link);
		rec_free(r);
	}
}

/* The common part of a new record around the daemon's end fd. */
static struct rec *
rec_init(struct daemon *d, struct rec *r, struct utcp_sock *sk, int family,
	 const struct client *owner, int fd)
{
	r->ep.kind = EP_REC;
	r->sk = sk;
	r->family = family;
	r->kind = REC_NEW;
	r->fd = fd;
	r->connfd = -1;
	if (owner != NULL) {
		r->pid = owner->pid;
		memcpy(r->comm, owner->comm, sizeof(r->comm));
		r->tag = owner->tag;
	}
	utcp_sock_set_user(sk, r);
	HASH_ADD(hh, d->recs, id, sizeof(r->id), r);
	rec_update_ep(d, r);
	d->stats[DST_sockets_created]++;
	d->stats[DST_sockets_open]++;
	return r;
}

struct rec *
rec_new(struct daemon *d, struct utcp_sock *sk, int family,
	const struct client *owner, int *prog_fd, int flags)
{
	struct sockaddr_un sa;
	socklen_t salen;
	struct rec *r;
	int sv[2], e;

	r = calloc(1, sizeof(*r));
	if (r == NULL)
		return NULL;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0,
		       sv) != 0) {
		e = errno;
		free(r);
		errno = e;
		return NULL;
	}
	r->id = new_id(d);
	/* The name lets any process image map its fd back to this record
	 * (ipc.h: utcp_ipc_parse_peer). */
	salen = utcp_ipc_make_name(&sa, d->pid, r->id);
	if (bind(sv[0], (struct sockaddr *)&sa, salen) != 0 ||
	    ((flags & SOCK_NONBLOCK) == 0 &&
	     fcntl(sv[1], F_SETFL, fcntl(sv[1], F_GETFL) & ~O_NONBLOCK) != 0)) {
		e = errno;
		log_warn("sock %u: cannot name its socketpair: %s", r->id,
			 strerror(e));
		close(sv[0]);
		close(sv[1]);
		free(r);
		errno = e;
		return NULL;
	}
	*prog_fd = sv[1];
	return rec_init(d, r, sk, family, owner, sv[0]);
}

uint32_t
rec_lease(struct daemon *d, uint32_t n)
{
	/* Ids are never 0; a lease never wraps past it. */
	if (d->next_id > UINT32_MAX - n - 1)
		d->next_id = 0;
	uint32_t first = d->next_id + 1;
	d->next_id += n;
	return first;
}

/* Is fd a stream socketpair end bound to our name for id? */
static int
adopt_check(int fd, pid_t pid, uint32_t id)
{
	struct sockaddr_un want, got;
	socklen_t wl, gl = sizeof(got);
	int type = 0;
	socklen_t tl = sizeof(type);

	wl = utcp_ipc_make_name(&want, pid, id);
	if (getsockname(fd, (struct sockaddr *)&got, &gl) != 0)
		return -errno;
	if (gl != wl || memcmp(&got, &want, wl) != 0)
		return -EINVAL;
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) != 0)
		return -errno;
	if (type != SOCK_STREAM)
		return -EINVAL;
	/* Ours must never block, whatever the program's end is. */
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || (!(fl & O_NONBLOCK) &&
		       fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0))
		return -errno;
	return 0;
}

struct rec *
rec_adopt(struct daemon *d, struct utcp_sock *sk, int family,
	  const struct client *owner, int fd, uint32_t id)
{
	struct rec *r;
	int e;

	if (id == 0 || rec_find(d, id) != NULL)
		e = -EEXIST;
	else
		e = adopt_check(fd, d->pid, id);
	if (e == 0 && (r = calloc(1, sizeof(*r))) != NULL) {
		r->id = id;
		return rec_init(d, r, sk, family, owner, fd);
	}
	if (e == 0)
		e = -ENOMEM;
	close(fd);
	errno = -e;
	return NULL;
}

/* ---- epoll interest ---- */

static void
rec_update_ep(struct daemon *d, struct rec *r)
{
	uint32_t ev = 0;
	bool reg = true;

	if (r->fd < 0 || r->dead)
		return;
	switch (r->kind) {
	case REC_NEW:
		break; /* HUP/ERR only: the program closed it */
	case REC_CONNECTING:
		/* Our end holds the filler; the program's end is kept open
		 * by our dup, so nothing but a HUP (when there is no dup)
		 * can happen until the outcome. Staying registered saves a
		 * DEL now and an ADD then. */
		break;
	case REC_LISTENER:
		ev = EPOLLIN | (r->push ? (r->out_blocked ? EPOLLOUT : 0)
				   : (r->tokens > 0 ? EPOLLOUT : 0));
		break;
	case REC_STREAM:
		if (!r->rd_eof && !r->paused)
			ev |= EPOLLIN | EPOLLRDHUP;
		if (r->out_blocked)
			ev |= EPOLLOUT;
		/* HUP is always reported: while we cannot read, a closed
		 * program would wake us for nothing, so unless we wait for
		 * exactly that (EOF handled, waiting for the close) leave
		 * epoll. Space coming back re-registers (rec_work). */
		if (ev == 0 && !(r->rd_eof && r->eof_done))
			reg = false;
		break;
	}
	if (!reg) {
		if (r->ep_registered)
			epoll_ctl(d->ep, EPOLL_CTL_DEL, r->fd, NULL);
		r->ep_registered = false;
		return;
	}
	int e = ep_set(d, r->fd, &r->ep, ev, &r->ep_events, &r->ep_registered);
	if (e < 0)
		log_error("sock %u: epoll_ctl: %s", r->id, strerror(-e));
}

/* ---- closing ---- */

static void
close_daemon_end(struct daemon *d, struct rec *r)
{
	if (r->stalled != NULL) {
		/* never handed over: reset, as for an unaccepted one */
		struct rec *c = r->stalled;
		r->stalled = NULL;
		program_gone(d, c, true);
	}
	if (r->fd >= 0) {
		if (r->ep_registered)
			epoll_ctl(d->ep, EPOLL_CTL_DEL, r->fd, NULL);
		close(r->fd);
	}
	r->fd = -1;
	r->ep_registered = false;
	if (r->connfd >= 0)
		close(r->connfd);
	r->connfd = -1;
	free(r->rx_pend);
	free(r->tx_pend);
	r->rx_pend = r->tx_pend = NULL;
	r->rx_len = r->rx_off = r->tx_len = r->tx_off = 0;
	r->out_blocked = false;
}

static void
start_linger(struct daemon *d, struct rec *r)
{
	if (r->lingering || r->dead)
		return;
	r->expires = d->now + UTCPD_GRACE;
	r->lingering = true;
	TAILQ_INSERT_TAIL(&d->linger, r, linger_link);
}

/* Hand the engine socket back: graceful close or abort (RST). */
static void
engine_close(struct daemon *d, struct rec *r, bool abort)
{
	if (r->sk == NULL || r->engine_closed)
		return;
	r->engine_closed = true;
	if (abort) {
		utcp_abort(r->sk, d->now);
		/* An aborted socket is CLOSED; closing it frees it. */
		if (r->sk != NULL)
			utcp_close(r->sk, d->now);
	} else {
		utcp_close(r->sk, d->now);
	}
	rec_dirty(d, r);
}

/* The program closed its last reference. */
static void
program_gone(struct daemon *d, struct rec *r, bool abort)
{
	events_call(d, r, "close()%s", abort ? " with unread data: abort" : "");
	close_daemon_end(d, r);
	engine_close(d, r, abort);
	rec_dirty(d, r);
}

/* Both directions are finished but the program may still hold its end. */
static void
close_and_linger(struct daemon *d, struct rec *r)
{
	log_debug("sock %u: both directions shut down; closing our end",
		  r->id);
	close_daemon_end(d, r);
	engine_close(d, r, false);
	start_linger(d, r);
	rec_dirty(d, r);
}

/* Read and throw away whatever the program wrote to us. */
static void
drain_discard(struct daemon *d, int fd)
{
	for (int i = 0; i < 64; i++) {
		ssize_t n = read(fd, d->iobuf, UTCPD_IOBUF);
		if (n <= 0 && !(n < 0 && errno == EINTR))
			return;
	}
}

static void connect_finish(struct daemon *d, struct rec *r, bool ok);

/* RST, timeout …: the program reads EOF/EPIPE and the preload asks for
 * SO_ERROR. */
static void
error_shutdown(struct daemon *d, struct rec *r, int err)
{
	if (err < 0)
		err = -err;
	if (err == 0)
		err = ECONNRESET;
	if (r->err == 0 && !r->err_reported)
		r->err = err;
	r->failed = true;
	if (r->kind == REC_CONNECTING) {
		connect_finish(d, r, false);
		return; /* it comes back here as a stream */
	}
	log_info("sock %u: %s; shutting the program's socket down", r->id,
		 strerror(err));
	if (r->fd >= 0) {
		shutdown(r->fd, SHUT_RDWR);
		/* Unread bytes at close would turn the program's EOF into
		 * ECONNRESET; the preload maps EOF to SO_ERROR instead. */
		drain_discard(d, r->fd);
	}
	close_daemon_end(d, r);
	engine_close(d, r, false);
	start_linger(d, r);
	rec_dirty(d, r);
}

/* Is the program's end closed (HUP on ours), right now? */
static bool
peer_hup(int fd)
{
	struct pollfd p = { .fd = fd, .events = 0 };

	return poll(&p, 1, 0) == 1 && (p.revents & POLLHUP) != 0;
}

/* A write to our end failed with EPIPE/ECONNRESET. */
static void
write_failed(struct daemon *d, struct rec *r)
{
	if (r->prog_shut_rd || (!r->wr_shut && !peer_hup(r->fd))) {
		/* The program shut down reading (and maybe writing) but may
		 * still hold its end: discard what arrives, as the kernel
		 * would; its EOF or close decides the rest. */
		r->prog_shut_rd = true;
		free(r->rx_pend);
		r->rx_pend = NULL;
		r->rx_len = r->rx_off = 0;
		r->out_blocked = false;
		return;
	}
	/* Data arriving for a closed socket: RST, as the kernel does. */
	program_gone(d, r, true);
}

/* ---- engine → program ---- */

static bool
stash(uint8_t **buf, size_t *len, size_t *off, const uint8_t *src, size_t n)
{
	*buf = malloc(n);
	if (*buf == NULL)
		return false;
	memcpy(*buf, src, n);
	*len = n;
	*off = 0;
	return true;
}

/* The engine's cfg.deliver: in-order data for a socket with nothing
 * unread, written from the arriving packet (no copy into the engine's
 * buffer). Whatever the socketpair does not take now, or any trouble,
 * leaves the bytes to the engine and flush_to_program. */
size_t
rec_deliver(void *ctx, struct utcp_sock *sk, const uint8_t *data, size_t len)
{
	struct daemon *d = ctx;
	struct rec *r = utcp_sock_user(sk);
	ssize_t n;

	if (r == NULL || r->dead || d->tearing_down || r->kind != REC_STREAM ||
	    r->fd < 0 || r->rx_len > 0 || r->out_blocked || r->prog_shut_rd ||
	    r->wr_shut)
		return 0;
	n = write(r->fd, data, len);
	if (n <= 0)
		return 0;
	d->stats[DST_to_program_bytes] += (uint64_t)n;
	return (size_t)n;
}

/* Write what the engine has for the program until the socketpair is full.
 * Returns false when the record changed course (closed, failed). */
static bool
flush_to_program(struct daemon *d, struct rec *r)
{
	struct utcp_iov piece[2];
	ssize_t n, got;
	size_t avail;

	while (r->fd >= 0) {
		if (r->rx_len > 0) {
			n = write(r->fd, r->rx_pend + r->rx_off, r->rx_len);
			if (n < 0) {
				if (errno == EINTR)
					continue;
				if (errno == EAGAIN) {
					r->out_blocked = true;
					return true;
				}
				write_failed(d, r);
				return r->fd >= 0;
			}
			d->stats[DST_to_program_bytes] += (uint64_t)n;
			r->rx_off += (size_t)n;
			r->rx_len -= (size_t)n;
			if (r->rx_len > 0) {
				r->out_blocked = true;
				return true;
			}
			free(r->rx_pend);
			r->rx_pend = NULL;
			r->rx_off = 0;
			continue;
		}
		if (r->sk == NULL || r->wr_shut)
			break;
		/* Straight from the engine's receive buffer: what the
		 * socketpair does not take stays there, and the window
		 * closes by itself. */
		avail = utcp_recv_peek(r->sk, piece);
		if (avail > 0) {
			struct iovec v[2] = {
				{ (void *)piece[0].base, piece[0].len },
				{ (void *)piece[1].base, piece[1].len },
			};

			if (r->prog_shut_rd) {
				/* SHUT_RD: read and forget */
				utcp_recv_consume(r->sk, avail, d->now);
				continue;
			}
			n = writev(r->fd, v, piece[1].len > 0 ? 2 : 1);
			if (n < 0 && errno != EAGAIN && errno != EINTR) {
				write_failed(d, r);
				if (r->fd < 0)
					return false;
				continue;
			}
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				n = 0;
			d->stats[DST_to_program_bytes] += (uint64_t)n;
			utcp_recv_consume(r->sk, (size_t)n, d->now);
			if ((size_t)n < avail) {
				r->out_blocked = true;
				return true;
			}
			continue;
		}
		/* Nothing unread: EOF, the error, or -EAGAIN. */
		got = utcp_recv(r->sk, d->iobuf, UTCPD_IOBUF, 0, d->now);
		if (got > 0) {
			/* Cannot happen (nothing was unread); never lose
			 * it: the top of the loop writes rx_pend. */
			if (!stash(&r->rx_pend, &r->rx_len, &r->rx_off,
				   d->iobuf, (size_t)got)) {
				program_gone(d, r, true);
				return false;
			}
			continue;
		}
		if (got == 0) {
			/* FIN: every byte before it is written. */
			log_debug("sock %u: FIN from peer, EOF to program",
				  r->id);
			shutdown(r->fd, SHUT_WR);
			r->wr_shut = true;
			if (r->rd_eof && r->eof_done) {
				close_and_linger(d, r);
				return false;
			}
			break;
		}
		if (got == -EAGAIN)
			break;
		error_shutdown(d, r, r->err != 0 ? r->err : (int)-got);
		return false;
	}
	r->out_blocked = false;
	/* An error the engine announced but utcp_recv did not return: it
	 * takes effect once the data before it is out. */
	if (r->failed && r->fd >= 0 && r->rx_len == 0) {
		error_shutdown(d, r, r->err);
		return false;
	}
	return r->fd >= 0;
}

/* ---- program → engine ---- */

/* Give the engine the bytes it did not take last time. False: still some
 * left (no space). */
static bool
flush_tx_pend(struct daemon *d, struct rec *r)
{
	while (r->tx_len > 0 && r->sk != NULL) {
		ssize_t m = utcp_send(r->sk, r->tx_pend + r->tx_off, r->tx_len,
				      0, d->now);
		if (m == -EAGAIN || m == 0)
			return false;
		if (m < 0) {
			/* The engine will never take them (EPIPE, or an
			 * error flush_to_program reports). */
			r->tx_len = 0;
			break;
		}
		d->stats[DST_to_engine_bytes] += (uint64_t)m;
		r->tx_off += (size_t)m;
		r->tx_len -= (size_t)m;
	}
	free(r->tx_pend);
	r->tx_pend = NULL;
	r->tx_len = r->tx_off = 0;
	return true;
}

/* The program will write no more: act on it once its bytes are in. */
static void
program_eof(struct daemon *d, struct rec *r, bool hup)
{
	if (r->eof_done || r->tx_len > 0)
		return;
	r->eof_done = true;
	hup = hup || peer_hup(r->fd);
	if (hup && !r->wr_shut && !r->prog_shut_rd) {
		program_gone(d, r, false);
		return;
	}
	if (r->wr_shut || hup) {
		close_and_linger(d, r);
		return;
	}
	log_debug("sock %u: program shut down writing", r->id);
	events_call(d, r, "shutdown(SHUT_WR)");
	if (r->sk != NULL) {
		int e = utcp_shutdown(r->sk, SHUT_WR, d->now);
		if (e < 0 && e != -ENOTCONN)
			log_debug("sock %u: utcp_shutdown: %s", r->id,
				  strerror(-e));
	}
}

static void
pump_from_program(struct daemon *d, struct rec *r, uint32_t revents)
{
	for (int i = 0; i < UTCPD_READS_PER_WAKEUP && r->fd >= 0; i++) {
		struct utcp_iov piece[2];
		size_t want, space, room;
		ssize_t n, m;

		if (r->sk == NULL)
			return; /* rec_work closes our end */
		if (!flush_tx_pend(d, r)) {
			r->paused = true;
			return;
		}
		/* One byte more than the engine can take: it signals
		 * UTCP_EV_WRITABLE only to a writer it turned away, so the
		 * short send below is what wakes us when space returns. */
		space = utcp_send_space(r->sk);
		if (r->filler > 0)
			want = r->filler < UTCPD_IOBUF ? r->filler : UTCPD_IOBUF;
		else
			want = space < UTCPD_IOBUF ? space + 1 : UTCPD_IOBUF;
		/* A bulk writer (its last read filled a chunk) is read
		 * straight into the engine's send buffer: one copy fewer.
		 * Small writes go through iobuf, so that a request does not
		 * make its socket's buffer a chunk big. */
		room = 0;
		if (r->filler == 0 && r->tx_bulk)
			room = utcp_send_reserve(r->sk, UTCPD_IOBUF, piece);
		if (room > 0) {
			struct iovec v[2] = {
				{ (void *)piece[0].base, piece[0].len },
				{ (void *)piece[1].base, piece[1].len },
			};

			n = readv(r->fd, v, piece[1].len > 0 ? 2 : 1);
			utcp_send_commit(r->sk, n > 0 ? (size_t)n : 0, 0,
					 d->now);
			if (n > 0) {
				d->stats[DST_to_engine_bytes] += (uint64_t)n;
				r->tx_bulk = (size_t)n == room;
				if (!r->tx_bulk)
					return; /* drained (see below) */
				continue;
			}
		} else {
			n = read(r->fd, d->iobuf, want);
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return;
			/* ECONNRESET: it closed with bytes of ours unread. */
			if (errno != ECONNRESET)
				log_warn("sock %u: read: %s", r->id,
					 strerror(errno));
			program_gone(d, r, true);
			return;
		}
		if (n == 0) {
			r->rd_eof = true;
			program_eof(d, r, (revents & EPOLLHUP) != 0);
			return;
		}
		if (r->filler > 0) {
			r->filler -= (size_t)n;
			continue;
		}
		r->tx_bulk = (size_t)n == UTCPD_IOBUF;
		m = utcp_send(r->sk, d->iobuf, (size_t)n, 0, d->now);
		if (m == -EAGAIN)
			m = 0;
		if (m < 0) {
			/* EPIPE after our shutdown, or the connection's
			 * error: the bytes have nowhere to go. */
			log_debug("sock %u: %zd bytes dropped: %s", r->id, n,
				  strerror((int)-m));
			continue;
		}
		d->stats[DST_to_engine_bytes] += (uint64_t)m;
		if (m < n) {
			if (!stash(&r->tx_pend, &r->tx_len, &r->tx_off,
				   d->iobuf + m, (size_t)(n - m))) {
				log_error("sock %u: out of memory; aborting",
					  r->id);
				program_gone(d, r, true);
				return;
			}
			r->paused = true;
			return;
		}
		/* A short read drained the socketpair: another read would
		 * only say EAGAIN. Level-triggered EPOLLIN calls again when
		 * more (or EOF) comes, one syscall fewer per request. */
		if ((size_t)n < want)
			return;
	}
}

/* ---- listener tokens ---- */

static void
tokens_flush(struct daemon *d, struct rec *r)
{
	uint8_t t[64];

	memset(t, TOKEN_BYTE, sizeof(t));
	r->out_blocked = false;
	while (r->tokens > 0 && r->fd >= 0) {
		size_t k = r->tokens < sizeof(t) ? r->tokens : sizeof(t);
		ssize_t n = write(r->fd, t, k);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				r->out_blocked = true;
				return;
			}
			program_gone(d, r, false);
			return;
		}
		r->tokens -= (uint32_t)n;
	}
}

/* ---- pushing listeners (ipc.h, "Asynchronous operations") ---- */

/* r no longer waits for the program to accept it. */
static void
unhold(struct daemon *d, struct rec *r)
{
	struct rec *l;

	if (!r->unacked)
		return;
	r->unacked = false;
	if ((l = rec_find(d, r->lsn_id)) == NULL)
		return;
	if (l->stalled == r)
		l->stalled = NULL;
	if (l->sk != NULL)
		utcp_listen_hold(l->sk, -1);
	rec_dirty(d, l);
}

void
rec_accepted(struct daemon *d, struct rec *r)
{
	struct rec *l;
	struct utcp_addr lo, rm;
	char a[64];

	unhold(d, r);
	if (!events_calls_on())
		return;
	l = rec_find(d, r->lsn_id);
	if (r->sk != NULL) {
		utcp_sock_names(r->sk, &lo, &rm);
		events_fmt_addr(&rm, a, sizeof(a));
	} else {
		events_fmt_addr(&r->remote, a, sizeof(a));
	}
	events_call(d, r, "accept() from %s on sock %u", a,
		    l != NULL ? l->id : r->lsn_id);
}

/* Take the next established connection off the engine's queue: a record
 * whose program end waits in connfd to be sent. */
static struct rec *
push_take(struct daemon *d, struct rec *l)
{
	struct utcp_sock *child;
	struct rec *c;
	int err = 0, pfd = -1;

	child = utcp_accept(l->sk, &err);
	if (child == NULL)
		return NULL;
	c = rec_new(d, child, l->family, NULL, &pfd, 0);
	if (c == NULL) {
		/* No fd or memory: the peer is reset rather than left
		 * waiting for a socket nobody can hand over. */
		log_warn("sock %u: cannot take a connection: %s", l->id,
			 strerror(errno));
		utcp_abort(child, d->now);
		utcp_close(child, d->now);
		return NULL;
	}
	c->kind = REC_STREAM;
	c->pid = l->pid;
	memcpy(c->comm, l->comm, sizeof(c->comm));
	c->tag = l->tag;
	c->connfd = pfd;
	c->unacked = true;
	c->lsn_id = l->id;
	utcp_listen_hold(l->sk, 1);
	rec_set_tuple(d, c);
	rec_dirty(d, c); /* data or FIN may already be queued */
	return c;
}

static void
accept_push(struct daemon *d, struct rec *l)
{
	l->out_blocked = false;
	l->tokens = 0;
	while (l->fd >= 0 && l->sk != NULL) {
		struct rec *c = l->stalled;
		struct utcp_accept_msg m;
		struct utcp_addr lo, rm;
		int e;

		if (c == NULL && (c = push_take(d, l)) == NULL)
			return;
		l->stalled = c;
		if (c->dead || c->connfd < 0) {
			unhold(d, c); /* it failed before it could go */
			continue;
		}
		memset(&m, 0, sizeof(m));
		m.magic = UTCP_ACCEPT_MAGIC;
		m.sock_id = c->id;
		if (c->sk != NULL)
			utcp_sock_names(c->sk, &lo, &rm);
		else
			rm = c->remote;
		m.addrlen = addr_to_sockaddr(&rm, l->family, &m.addr);
		e = utcp_ipc_send(l->fd, &m, sizeof(m), c->connfd);
		if (e == -EAGAIN) {
			l->out_blocked = true;
			return;
		}
		if (e == -ETOOMANYREFS) {
			/* Our fds in flight are at RLIMIT_NOFILE: the next
			 * UTCP_OP_ACCEPTED (unhold) brings us back. */
			return;
		}
		if (e < 0) {
			program_gone(d, l, false); /* the program's end is gone */
			return;
		}
		close(c->connfd); /* in flight now; the program has it */
		c->connfd = -1;
		l->stalled = NULL;
	}
}

/* ---- connect ---- */

/* Throw away up to r->filler bytes now; the rest (if the preload's bytes
 * are somehow not all there yet) goes in pump_from_program. */
static void
discard_filler(struct daemon *d, struct rec *r)
{
	while (r->filler > 0 && r->fd >= 0) {
		size_t want = r->filler < UTCPD_IOBUF ? r->filler : UTCPD_IOBUF;
		ssize_t n = read(r->fd, d->iobuf, want);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		r->filler -= (size_t)n;
	}
}

static void
restore_sndbuf(int fd, int sndbuf)
{
	/* arg[1] is the value for setsockopt (the preload halved what
	 * getsockopt said, as the kernel doubles it). */
	int v = sndbuf;

	if (sndbuf > 0 &&
	    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof(v)) != 0)
		log_debug("cannot restore SO_SNDBUF %d: %s", sndbuf,
			  strerror(errno));
}

/* ipc.h step 3: the handshake is over; let POLLOUT through. */
static void
connect_finish(struct daemon *d, struct rec *r, bool ok)
{
	/* A failure hangs the program's end up before the filler goes, so
	 * POLLOUT without POLLHUP always means connected: the preload
	 * trusts that and asks for no SO_ERROR then (ipc.h step 4). */
	if (!ok && r->fd >= 0)
		shutdown(r->fd, SHUT_RDWR);
	discard_filler(d, r);
	if (r->connfd >= 0) {
		restore_sndbuf(r->connfd, r->sndbuf_restore);
		close(r->connfd);
		r->connfd = -1;
	}
	r->kind = REC_STREAM;
	if (ok) {
		log_debug("sock %u: connected", r->id);
		rec_dirty(d, r);
		return;
	}
	error_shutdown(d, r, r->err);
}

static void
connect_check(struct daemon *d, struct rec *r)
{
	int state;

	if (r->sk == NULL) {
		connect_finish(d, r, false);
		return;
	}
	state = utcp_sock_state(r->sk);
	if (!r->failed && r->err == 0) {
		int e = utcp_sock_error(r->sk, false);
		if (e != 0) {
			r->err = e;
			r->failed = true;
		}
	}
	if (r->failed || state == UTCP_CLOSED)
		connect_finish(d, r, false);
	else if (r->connected_ev || UTCP_HAVEESTABLISHED(state))
		connect_finish(d, r, true);
}

/* The program's end must be the peer of this record's end. */
static bool
is_our_peer(const struct daemon *d, const struct rec *r, int fd)
{
	struct sockaddr_un sa;
	socklen_t len = sizeof(sa);
	pid_t pid;
	uint32_t id;

	if (getpeername(fd, (struct sockaddr *)&sa, &len) != 0)
		return false;
	return utcp_ipc_parse_peer(&sa, len, &pid, &id) == 0 &&
	       pid == d->pid && id == r->id;
}

/* The handshake is under way: the record holds the program's end and
 * the filler until the outcome (ipc.h step 2). */
static void
connect_started(struct daemon *d, struct rec *r, const struct utcp_addr *to,
		int kept_fd, size_t filler, int sndbuf)
{
	char a[64];

	if (events_calls_on()) {
		events_fmt_addr(to, a, sizeof(a));
		events_call(d, r, "connect(%s)", a);
	}
	r->kind = REC_CONNECTING;
	rec_set_tuple(d, r);
	r->connfd = kept_fd;
	r->filler += filler;
	r->sndbuf_restore = sndbuf;
	rec_update_ep(d, r);
	rec_dirty(d, r); /* the outcome may be known already */
}

int
rec_connect(struct daemon *d, struct rec *r, const struct utcp_addr *to,
	    int addr_err, int kept_fd, size_t filler, int sndbuf)
{
	int e;

	if (kept_fd >= 0 && !is_our_peer(d, r, kept_fd)) {
		close(kept_fd);
		return -EBADF;
	}
	if (r->sk == NULL) {
		e = -EBADF;
		goto undo;
	}
	if (to == NULL) {
		e = addr_err;
		goto undo;
	}
	e = utcp_connect(r->sk, to, d->now);
	if ((e == 0 || e == -EINPROGRESS) && r->kind == REC_NEW) {
		connect_started(d, r, to, kept_fd, filler, sndbuf);
		return -EINPROGRESS;
	}
	if (e == 0)
		e = -EISCONN;
undo:
	/* Put the socket back as it was before the attempt. */
	r->filler += filler;
	discard_filler(d, r);
	if (kept_fd >= 0) {
		/* A second connect while the first runs keeps the first
		 * one's small SO_SNDBUF until its outcome. */
		if (r->kind != REC_CONNECTING)
			restore_sndbuf(kept_fd, sndbuf);
		close(kept_fd);
	}
	return e;
}

void
rec_connect_async(struct daemon *d, struct rec *r, const struct utcp_addr *to,
		  int addr_err, int kept_fd, size_t filler, int sndbuf)
{
	int e;

	if (kept_fd >= 0 && !is_our_peer(d, r, kept_fd)) {
		/* not the peer of our end: refused, as rec_connect does */
		close(kept_fd);
		kept_fd = -1;
		to = NULL;
		addr_err = -EBADF;
	}
	switch (r->kind) {
	case REC_CONNECTING:
		/* Another fd of the socket raced the first attempt (the
		 * preload sends one per socket): its filler goes with the
		 * first one's at the outcome. */
		r->filler += filler;
		if (kept_fd >= 0)
			close(kept_fd);
		return;
	case REC_STREAM:
	case REC_LISTENER:
		/* Never sent by a preload that knows the socket's state. */
		log_debug("sock %u: CONNECT on a connected or listening "
			  "socket ignored", r->id);
		if (kept_fd >= 0) {
			restore_sndbuf(kept_fd, sndbuf);
			close(kept_fd);
		}
		return;
	case REC_NEW:
		break;
	}
	e = r->sk == NULL ? -EBADF
	    : to == NULL  ? addr_err
			  : utcp_connect(r->sk, to, d->now);
	if (e == 0 || e == -EINPROGRESS) {
		connect_started(d, r, to, kept_fd, filler, sndbuf);
		return;
	}
	/* Failed at once: the outcome path of a refused handshake, which
	 * hangs the program's end up before its filler goes (step 3). */
	r->kind = REC_CONNECTING;
	r->connfd = kept_fd;
	r->filler += filler;
	r->sndbuf_restore = sndbuf;
	error_shutdown(d, r, e);
}

/* connect(AF_UNSPEC): Linux's tcp_disconnect. The connection is aborted
 * and the socket is unconnected again; the engine socket is replaced by a
 * fresh one behind the same socketpair. */
int
rec_disconnect(struct daemon *d, struct rec *r)
{
	struct utcp_sock *old = r->sk, *sk;

	if (r->kind == REC_NEW)
		return 0;
	if (r->kind == REC_LISTENER || r->fd < 0 || r->wr_shut || r->rd_eof)
		return -EINVAL; /* what remains cannot be reused */
	events_call(d, r, "connect(AF_UNSPEC)");
	if (r->kind == REC_CONNECTING) {
		discard_filler(d, r);
		if (r->connfd >= 0) {
			restore_sndbuf(r->connfd, r->sndbuf_restore);
			close(r->connfd);
			r->connfd = -1;
		}
	}
	sk = utcp_socket(d->st, r->family);
	if (sk == NULL)
		return -ENOMEM;
	tuple_del(d, r);
	if (old != NULL) {
		/* Detached first: its FREED must not touch this record. */
		utcp_sock_set_user(old, NULL);
		utcp_abort(old, d->now);
		utcp_close(old, d->now);
	}
	utcp_sock_set_user(sk, r);
	r->sk = sk;
	r->kind = REC_NEW;
	r->err = 0;
	r->failed = r->connected_ev = r->paused = r->prog_shut_rd = false;
	r->tx_bulk = false;
	r->out_blocked = false;
	free(r->rx_pend);
	free(r->tx_pend);
	r->rx_pend = r->tx_pend = NULL;
	r->rx_len = r->rx_off = r->tx_len = r->tx_off = 0;
	drain_discard(d, r->fd);
	rec_update_ep(d, r);
	return 0;
}

int
rec_listen(struct daemon *d, struct rec *r, int backlog, bool push)
{
	int e;

	if (r->sk == NULL)
		return -EINVAL;
	e = utcp_listen(r->sk, backlog);
	if (e == 0 && r->kind != REC_LISTENER) {
		r->push = push;
		events_call(d, r, "listen(%d)", backlog);
		r->kind = REC_LISTENER;
		rec_set_tuple(d, r);
		rec_update_ep(d, r);
		rec_dirty(d, r);
	}
	return e;
}

int
rec_shutdown(struct daemon *d, struct rec *r, int how)
{
	int state;

	if (how != SHUT_RD && how != SHUT_WR && how != SHUT_RDWR)
		return -EINVAL;
	if (r->sk == NULL)
		return -ENOTCONN;
	state = utcp_sock_state(r->sk);
	if (r->kind == REC_LISTENER) {
		/* SHUT_RD stops a listener, as on Linux, and wakes a
		 * thread blocked in accept(). */
		if (how == SHUT_WR)
			return -ENOTCONN;
		events_call(d, r, "shutdown(listener)");
		if (r->fd >= 0)
			shutdown(r->fd, SHUT_RDWR);
		close_and_linger(d, r);
		return 0;
	}
	/* TIME-WAIT reads as closed, as on Linux (op_getname) */
	if (r->kind == REC_NEW || state == UTCP_CLOSED ||
	    state == UTCP_TIME_WAIT)
		return -ENOTCONN;
	if (how != SHUT_WR) {
		events_call(d, r, "shutdown(SHUT_RD)");
		r->prog_shut_rd = true;
		(void)utcp_shutdown(r->sk, SHUT_RD, d->now);
		rec_dirty(d, r);
	}
	/* SHUT_WR reaches the engine when our end reads EOF, after every
	 * byte the program wrote before it. */
	return 0;
}

/* ---- events from the engine (inside its callback: flags only) ---- */

void
rec_on_event(struct daemon *d, struct rec *r, const struct utcp_event *ev)
{
	switch (ev->type) {
	case UTCP_EV_STATE:
		/* The port is chosen inside utcp_connect(), before the SYN
		 * leaves: index it now so a capture has the SYN. */
		if (!r->tkeyed && r->kind != REC_LISTENER)
			rec_set_tuple(d, r);
		break;
	case UTCP_EV_CONNECTED:
		r->connected_ev = true;
		break;
	case UTCP_EV_ACCEPTABLE:
		r->tokens++;
		break;
	case UTCP_EV_ERROR:
		r->err = ev->err < 0 ? -ev->err : ev->err;
		r->err_reported = false;
		r->failed = true;
		break;
	case UTCP_EV_FREED:
		tuple_del(d, r);
		utcp_sock_names(ev->sock, &r->local, &r->remote);
		utcp_sock_set_user(ev->sock, NULL);
		r->sk = NULL;
		break;
	default:
		break;
	}
	rec_dirty(d, r);
}

/* ---- the work list ---- */

static void
rec_work(struct daemon *d, struct rec *r)
{
	switch (r->kind) {
	case REC_CONNECTING:
		connect_check(d, r);
		break;
	case REC_LISTENER:
		if (r->push)
			accept_push(d, r);
		else
			tokens_flush(d, r);
		break;
	case REC_NEW:
		break;
	case REC_STREAM:
		break;
	}
	if (r->kind == REC_STREAM && r->fd >= 0) {
		if (flush_to_program(d, r) && r->paused && r->sk != NULL &&
		    flush_tx_pend(d, r) && utcp_send_space(r->sk) > 0)
			r->paused = false; /* level-triggered EPOLLIN resumes */
		if (r->fd >= 0 && r->rd_eof && !r->eof_done && r->tx_len == 0)
			program_eof(d, r, false);
	}
	if (r->sk == NULL && !r->dead) {
		if (r->fd >= 0) {
			/* The engine let go while the program holds its
			 * end; anything undelivered is lost with it. */
			error_shutdown(d, r, r->err != 0 ? r->err : ECONNRESET);
		}
		if (r->fd < 0 && !r->lingering)
			rec_kill(d, r);
		return;
	}
	rec_update_ep(d, r);
}

void
rec_process_dirty(struct daemon *d)
{
	struct rec *r;
	unsigned budget = 100000;

	/* Work done here can dirty records again (engine calls emit events);
	 * the budget only guards against a loop that would never settle. */
	while ((r = TAILQ_FIRST(&d->dirty)) != NULL && budget-- > 0) {
		TAILQ_REMOVE(&d->dirty, r, dirty_link);
		r->on_dirty = false;
		if (!r->dead)
			rec_work(d, r);
	}
}

/* ---- epoll ---- */

void
rec_io(struct daemon *d, struct rec *r, uint32_t revents)
{
	bool hup = (revents & (EPOLLHUP | EPOLLERR)) != 0;

	if (hup && r->unacked) {
		/* Released in flight, never accepted (its listener closed):
		 * reset, as Linux resets what its accept queue held. */
		unhold(d, r);
		program_gone(d, r, true);
		rec_dirty(d, r);
		return;
	}
	switch (r->kind) {
	case REC_NEW:
		if (hup)
			program_gone(d, r, false);
		break;
	case REC_CONNECTING:
		if (hup)
			program_gone(d, r, false); /* closed, no dup of ours */
		break;
	case REC_LISTENER:
		if ((revents & EPOLLOUT) && r->push)
			accept_push(d, r);
		else if (revents & EPOLLOUT)
			tokens_flush(d, r);
		if (r->fd >= 0 && (revents & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
			/* The program never writes to a listener; EOF or
			 * an error here means it closed it. */
			ssize_t n = read(r->fd, d->iobuf, UTCPD_IOBUF);
			if (n == 0 || (n < 0 && errno != EAGAIN &&
				       errno != EINTR) || hup)
				program_gone(d, r, false);
		}
		break;
	case REC_STREAM:
		if (r->out_blocked || hup)
			(void)flush_to_program(d, r);
		if (r->fd < 0)
			break;
		if (!r->rd_eof && !r->paused &&
		    (revents & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
			pump_from_program(d, r, revents);
		else if (r->rd_eof && r->eof_done && (revents & EPOLLHUP)) {
			/* Shut down for writing earlier; now closed. */
			if (!r->wr_shut && !r->prog_shut_rd)
				program_gone(d, r, false);
			else
				close_and_linger(d, r);
		}
		break;
	}
	rec_dirty(d, r);
}

/* ---- lingering ---- */

void
rec_expire(struct daemon *d)
{
	struct rec *r;

	while ((r = TAILQ_FIRST(&d->linger)) != NULL && r->expires <= d->now) {
		TAILQ_REMOVE(&d->linger, r, linger_link);
		r->lingering = false;
		if (r->sk == NULL && r->fd < 0)
			rec_kill(d, r);
	}
}

utcp_time_t
rec_next_expiry(const struct daemon *d)
{
	const struct rec *r = TAILQ_FIRST(&d->linger);

	if (!TAILQ_EMPTY(&d->dirty))
		return d->now; /* work left over: do not sleep */
	return r != NULL ? r->expires : UTCP_TIME_NEVER;
}

/* Daemon exit: RST every connection a program still holds, free all. */
void
rec_teardown(struct daemon *d)
{
	struct rec *r, *tmp;

	d->tearing_down = true;
	HASH_ITER(hh, d->recs, r, tmp) {
		if (r->sk != NULL && !r->engine_closed)
			utcp_abort(r->sk, d->now);
		if (r->sk != NULL)
			utcp_sock_set_user(r->sk, NULL);
		r->sk = NULL;
		HASH_DEL(d->recs, r);
		tuple_del(d, r);
		close_daemon_end(d, r);
		rec_free(r);
	}
	rec_reap(d);
}
