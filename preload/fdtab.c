/*
 * fdtab.c — which fds are engine sockets.
 *
 * The fast path (preload.h, utcp_fd_id) is a bounds check and one load from
 * a static array for fds below UTCP_FDTAB_FAST; no lock, no syscall. Higher
 * fds live in chunks of the same size, mapped on first use and never freed
 * (a server with 100k connections pays for the chunks it touches).
 *
 * Entries are set by socket()/accept() and by the lazy lookup below, copied
 * by dup*, cleared by close*. An entry can go stale when an fd is closed
 * where we cannot see it (glibc's internal close); st_ino tells: the slow
 * paths check it before trusting an entry.
 */
#include "preload.h"

#include <pthread.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <linux/sockios.h>

#define CHUNK_SHIFT 16
#define CHUNK_SIZE (1u << CHUNK_SHIFT)
#define NCHUNKS ((1u << 31) >> CHUNK_SHIFT)

_Static_assert(UTCP_FDTAB_FAST == CHUNK_SIZE, "chunk 0 is the static table");

struct utcp_fdent utcp_fdtab[UTCP_FDTAB_FAST];
static struct utcp_fdent *chunks[NCHUNKS]; /* [0] unused: utcp_fdtab */
static pthread_mutex_t chunk_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned int fd_max; /* highest fd ever entered, bounds close_range */

struct utcp_fdent *
utcp_fd_slow(int fd)
{
	struct utcp_fdent *c;

	if (fd < 0)
		return NULL;
	c = __atomic_load_n(&chunks[(unsigned)fd >> CHUNK_SHIFT],
			    __ATOMIC_ACQUIRE);
	return c != NULL ? &c[fd & (CHUNK_SIZE - 1)] : NULL;
}

/* The slot of fd, mapping its chunk if needed; NULL if fd < 0 or no memory. */
static struct utcp_fdent *
slot_alloc(int fd)
{
	struct utcp_fdent *e = utcp_fd_slot(fd), *c;
	unsigned int i = (unsigned)fd >> CHUNK_SHIFT;

	if (e != NULL || fd < 0)
		return e;
	pthread_mutex_lock(&chunk_lock);
	if (chunks[i] == NULL) {
		c = mmap(NULL, CHUNK_SIZE * sizeof(*c), PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (c != MAP_FAILED)
			__atomic_store_n(&chunks[i], c, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&chunk_lock);
	return utcp_fd_slot(fd);
}

static void
note_max(int fd)
{
	unsigned int m = __atomic_load_n(&fd_max, __ATOMIC_RELAXED);

	while ((unsigned)fd > m &&
	       !__atomic_compare_exchange_n(&fd_max, &m, (unsigned)fd, true,
					    __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
}

static void
publish(struct utcp_fdent *e, int fd, uint32_t id, uint32_t ino, int family,
	int flags)
{
	__atomic_store_n(&e->id, 0, __ATOMIC_RELEASE);
	e->ino = ino;
	e->family = (uint8_t)family;
	__atomic_store_n(&e->flags, (uint8_t)flags, __ATOMIC_RELAXED);
	__atomic_store_n(&e->id, id, __ATOMIC_RELEASE);
	note_max(fd);
}

int
utcp_fd_set(int fd, uint32_t id, int family, int flags)
{
	struct utcp_fdent *e;
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -errno;
	if ((e = slot_alloc(fd)) == NULL)
		return -ENOMEM;
	publish(e, fd, id, (uint32_t)st.st_ino, family, flags);
	return 0;
}

void
utcp_fd_mark_kernel(int fd)
{
	struct utcp_fdent *e = slot_alloc(fd);

	if (e != NULL)
		publish(e, fd, UTCP_ID_KERNEL, 0, 0, 0);
}

void
utcp_fd_mark_ctl(int fd)
{
	struct utcp_fdent *e = slot_alloc(fd);

	if (e != NULL)
		publish(e, fd, UTCP_ID_CTL, 0, 0, 0);
}

void
utcp_fd_clear(int fd)
{
	struct utcp_fdent *e = utcp_fd_slot(fd);
	uint32_t id;

	if (e == NULL)
		return;
	id = __atomic_exchange_n(&e->id, 0, __ATOMIC_ACQ_REL);
	if (utcp_id_ours(id) &&
	    (__atomic_load_n(&e->flags, __ATOMIC_RELAXED) & UTCP_FD_RECORDS))
		utcp_rec_drop(id);
}

void
utcp_fd_copy(int from, int to)
{
	struct utcp_fdent *src = utcp_fd_slot(from), *dst;
	uint32_t id;

	if (from == to)
		return;
	id = src != NULL ? __atomic_load_n(&src->id, __ATOMIC_ACQUIRE) : 0;
	if (id == 0 || id == UTCP_ID_CTL) {
		/* dup2 over one of ours replaced it */
		if (utcp_fd_id(to) != 0)
			utcp_fd_clear(to);
		return;
	}
	if ((dst = slot_alloc(to)) != NULL)
		publish(dst, to, id, src->ino, src->family,
			__atomic_load_n(&src->flags, __ATOMIC_RELAXED));
}

void
utcp_fd_clear_range(unsigned int lo, unsigned int hi)
{
	unsigned int m = __atomic_load_n(&fd_max, __ATOMIC_RELAXED);

	if (hi > m)
		hi = m;
	for (unsigned int fd = lo; fd <= hi && fd <= INT32_MAX; fd++)
		if (utcp_fd_id((int)fd) != 0)
			utcp_fd_clear((int)fd);
}

void
utcp_fd_forget_all(void)
{
	unsigned int m = __atomic_load_n(&fd_max, __ATOMIC_RELAXED);

	for (unsigned int fd = 0; fd <= m && fd <= INT32_MAX; fd++)
		if (utcp_fd_ours((int)fd))
			utcp_fd_clear((int)fd);
}

void
utcp_fd_set_flags(int fd, int set, int clear)
{
	struct utcp_fdent *e = utcp_fd_slot(fd);

	if (e == NULL)
		return;
	if (set)
		__atomic_fetch_or(&e->flags, (uint8_t)set, __ATOMIC_RELAXED);
	if (clear)
		__atomic_fetch_and(&e->flags, (uint8_t)~clear,
				   __ATOMIC_RELAXED);
}

bool
utcp_fd_valid(int fd, const struct utcp_fdent *e)
{
	struct stat st;

	return fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode) &&
	       (uint32_t)st.st_ino == e->ino;
}

/* What the daemon knows of socket id, for an fd met without its history. */
static int
learn(int fd, uint32_t id, int *family, int *flags)
{
	struct utcp_req req;
	struct utcp_rep rep;
	int r, v, outq;

	utcp_req_init(&req, UTCP_OP_GETSOCKNAME, id);
	if ((r = utcp_ctl_call(&req, -1, &rep, NULL, false)) < 0)
		return r;
	*family = rep.addrlen >= sizeof(sa_family_t) ? rep.addr.ss_family : 0;
	if (*family != AF_INET && *family != AF_INET6)
		return -EPROTO;
	*flags = 0;
	utcp_req_init(&req, UTCP_OP_GETPEERNAME, id);
	if (utcp_ctl_call(&req, -1, &rep, NULL, false) == 0)
		*flags |= UTCP_FD_CONNECTED;
	utcp_req_init(&req, UTCP_OP_GETSOCKOPT, id);
	req.arg[0] = SOL_SOCKET;
	req.arg[1] = SO_ACCEPTCONN;
	req.arg[2] = sizeof(int);
	if (utcp_ctl_call(&req, -1, &rep, NULL, false) == 0 &&
	    rep.len >= sizeof(int)) {
		memcpy(&v, rep.data, sizeof(v));
		if (v)
			*flags |= UTCP_FD_LISTENING;
	}
	/* Filler still unread by the daemon: a connect is under way. */
	if (!(*flags & (UTCP_FD_CONNECTED | UTCP_FD_LISTENING)) &&
	    LIBC(ioctl)(fd, SIOCOUTQ, &outq) == 0 && outq > 0)
		*flags |= UTCP_FD_CONNECTING;
	return 0;
}

/* An fd we have no entry for is ours if its peer is named
 * "\0utcp/<our daemon's pid>/<id>" (ipc.h). */
static struct utcp_fdent *
identify(int fd)
{
	struct sockaddr_un sun;
	socklen_t len = sizeof(sun);
	int saved = errno, family, flags;
	struct utcp_fdent *e = NULL;
	uint32_t id;
	pid_t pid;

	if (LIBC(getpeername)(fd, (struct sockaddr *)&sun, &len) < 0 ||
	    utcp_ipc_parse_peer(&sun, len, &pid, &id) < 0)
		goto out;
	utcp_busy++;
	if (pid == utcp_ctl_daemon_pid() && learn(fd, id, &family, &flags) == 0 &&
	    utcp_fd_set(fd, id, family, flags) == 0) {
		e = utcp_fd_slot(fd);
		utcp_busy--;
		utcp_log(UTCP_LOG_INFO, "fd %d is engine socket %u (inherited)",
			 fd, id);
		goto out;
	}
	utcp_busy--;
out:
	errno = saved;
	return e;
}

struct utcp_fdent *
utcp_sock_lookup(int fd)
{
	struct utcp_fdent *e = utcp_fd_slot(fd);
	uint32_t id = e != NULL ? __atomic_load_n(&e->id, __ATOMIC_ACQUIRE) : 0;
	int saved;

	if (id >= UTCP_ID_CTL || utcp_busy)
		return NULL;
	if (id != 0) {
		saved = errno;
		if (utcp_fd_valid(fd, e)) {
			errno = saved;
			return e;
		}
		utcp_fd_clear(fd); /* closed behind our back; look again */
		errno = saved;
	}
	return identify(fd);
}
