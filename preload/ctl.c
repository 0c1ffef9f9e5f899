/*
 * ctl.c — the control connection to utcpd.
 *
 * One SOCK_SEQPACKET connection per thread (ipc.h: a thread blocked on the
 * daemon never holds up another), opened on first use and greeted with
 * HELLO. It closes at thread exit (a pthread key destructor) and in a fork
 * child (every inherited one: the child must not share its parent's
 * request/reply stream, and the daemon learns a new pid by SO_PEERCRED).
 *
 * Its fd is marked in the fd table (UTCP_ID_CTL). A program may close it
 * (closefrom(3) before exec, a daemon closing everything): the mark is then
 * gone, and we forget the number instead of using or closing it.
 */
#include "preload.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

static UTCP_TLS int ctl_fd = -1;
static pid_t daemon_pid;
static uint32_t daemon_caps; /* UTCP_CAP_*, from HELLO */
/* Ids this thread's connection may give its sockets (UTCP_OP_LEASE). */
static UTCP_TLS uint32_t lease_next, lease_end;

static pthread_once_t key_once = PTHREAD_ONCE_INIT;
static pthread_key_t key;

/* Is fd still the control connection we opened? */
static bool
still_ours(int fd)
{
	return utcp_fd_id(fd) == UTCP_ID_CTL;
}

/* Every open control fd of the process, so a fork child closes them all. */
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static int *reg;
static size_t reg_n, reg_cap;

static void
reg_add(int fd)
{
	pthread_mutex_lock(&reg_lock);
	if (reg_n == reg_cap) {
		size_t cap = reg_cap ? reg_cap * 2 : 16;
		int *p = realloc(reg, cap * sizeof(*p));
		if (p != NULL) {
			reg = p;
			reg_cap = cap;
		}
	}
	if (reg_n < reg_cap) /* else only the fork child would leak it */
		reg[reg_n++] = fd;
	pthread_mutex_unlock(&reg_lock);
}

static void
reg_del(int fd)
{
	pthread_mutex_lock(&reg_lock);
	for (size_t i = 0; i < reg_n; i++)
		if (reg[i] == fd) {
			reg[i] = reg[--reg_n];
			break;
		}
	pthread_mutex_unlock(&reg_lock);
}

static void
drop(void)
{
	int fd = ctl_fd;

	if (fd < 0)
		return;
	ctl_fd = -1;
	lease_next = lease_end = 0;
	pthread_setspecific(key, NULL);
	reg_del(fd);
	if (still_ours(fd)) {
		utcp_fd_clear(fd);
		LIBC(close)(fd);
	}
}

/* Thread exit: TLS is still there when key destructors run. */
static void
thread_exit(void *p)
{
	(void)p;
	drop();
}

static void
make_key(void)
{
	pthread_key_create(&key, thread_exit);
}

void
utcp_req_init(struct utcp_req *req, int op, uint32_t sock_id)
{
	memset(req, 0, sizeof(*req));
	req->version = UTCP_IPC_VERSION;
	req->op = (uint16_t)op;
	req->sock_id = sock_id;
}

static int
hello(int fd)
{
	struct utcp_req req;
	struct utcp_rep rep;
	pid_t old;
	int r;

	utcp_req_init(&req, UTCP_OP_HELLO, 0);
	req.arg[0] = UTCP_IPC_VERSION;
	req.arg[1] = (int32_t)getpid();
	req.arg[2] = (int32_t)utcp_trace_tag; /* ipc.h, "Tracing" */
	if ((r = utcp_ipc_send(fd, &req, sizeof(req), -1)) < 0 ||
	    (r = utcp_ipc_recv(fd, &rep, sizeof(rep), NULL, 0)) < 0) {
		/* The daemon hangs up at once on a peer whose uid it does
		 * not serve (SO_PEERCRED): say what that means. */
		return (r == -ECONNRESET || r == -EPIPE) ? -EACCES : r;
	}
	if (rep.err != 0)
		return -rep.err;
	if (rep.sock_id != 0 && rep.sock_id != UTCP_IPC_VERSION)
		return -EPROTONOSUPPORT;
	if (rep.val <= 0)
		return -EPROTO;
	{
		uint32_t caps = 0;
		if (rep.len >= sizeof(caps))
			memcpy(&caps, rep.data, sizeof(caps));
		__atomic_store_n(&daemon_caps, caps, __ATOMIC_RELAXED);
		if (utcp_trace_tag != 0)
			utcp_trace_daemon_caps(caps);
	}
	old = __atomic_exchange_n(&daemon_pid, (pid_t)rep.val, __ATOMIC_RELAXED);
	if (old != 0 && old != (pid_t)rep.val) {
		/* A new daemon numbers its sockets afresh: an old entry's id
		 * could name someone else's socket now. The old ones are
		 * dead; forget them (their peers' names tell the old pid). */
		utcp_log(UTCP_LOG_WARN,
			 "utcpd restarted (pid %ld, was %ld): sockets of the "
			 "old one are dead",
			 (long)rep.val, (long)old);
		utcp_fd_forget_all();
	}
	return 0;
}

int
utcp_ctl_get(void)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	const char *path;
	int fd, r;

	if (likely(ctl_fd >= 0)) {
		if (likely(still_ours(ctl_fd)))
			return ctl_fd;
		drop(); /* the program closed it: the number is not ours */
	}
	utcp_init();
	pthread_once(&key_once, make_key);
	path = utcp_socket_path();
	if (strlen(path) >= sizeof(sun.sun_path))
		return -ENAMETOOLONG;
	memcpy(sun.sun_path, path, strlen(path));
	utcp_busy++;
	fd = LIBC(socket)(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		r = -errno;
		goto out;
	}
	if (LIBC(connect)(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		r = -errno;
		LIBC(close)(fd);
		goto out;
	}
	if ((r = hello(fd)) < 0) {
		LIBC(close)(fd);
		goto out;
	}
	lease_next = lease_end = 0; /* a lease belongs to one connection */
	utcp_fd_mark_ctl(fd);
	reg_add(fd);
	ctl_fd = fd;
	pthread_setspecific(key, (void *)1);
	r = fd;
out:
	utcp_busy--;
	return r;
}

int
utcp_ctl_call(struct utcp_req *req, int send_fd, struct utcp_rep *rep,
	      int *recv_fd, bool cloexec)
{
	int fd, r, got = -1, saved = errno;
	pid_t before;

	if (recv_fd != NULL)
		*recv_fd = -1;
	for (int attempt = 0;; attempt++) {
		before = __atomic_load_n(&daemon_pid, __ATOMIC_RELAXED);
		if ((fd = utcp_ctl_get()) < 0) {
			utcp_debug("cannot reach utcpd at %s: %s",
				   utcp_socket_path(), strerrordesc_np(-fd));
			errno = saved;
			return -ENETDOWN;
		}
		/* a socket of a daemon that has since been replaced */
		if (req->sock_id != 0 && before != 0 &&
		    before != __atomic_load_n(&daemon_pid, __ATOMIC_RELAXED)) {
			errno = saved;
			return -ENETDOWN;
		}
		utcp_busy++;
		r = utcp_ipc_send(fd, req, sizeof(*req), send_fd);
		utcp_busy--;
		/* The daemon went away before it saw the request (restarted,
		 * or this connection was stale): once more, afresh. */
		if (r < 0 && attempt == 0 &&
		    (r == -EPIPE || r == -ECONNRESET || r == -ENOTCONN)) {
			drop();
			continue;
		}
		break;
	}
	if (r == 0) {
		utcp_busy++;
		r = utcp_ipc_recv(fd, rep, sizeof(*rep),
				  recv_fd != NULL ? &got : NULL, cloexec);
		utcp_busy--;
	}
	errno = saved;
	if (r == -EMFILE) {
		/* A whole message but no room for its fd (MSG_CTRUNC):
		 * our fd table is full. SEQPACKET keeps us in step. */
		return -EMFILE;
	}
	if (r < 0) {
		utcp_log(UTCP_LOG_ERROR, "lost utcpd at %s: %s",
			 utcp_socket_path(), strerrordesc_np(-r));
		drop();
		return -ENETDOWN;
	}
	if (rep->err != 0) {
		if (got >= 0)
			LIBC(close)(got);
		return -rep->err;
	}
	if (recv_fd != NULL)
		*recv_fd = got;
	return 0;
}

int
utcp_ctl_send(struct utcp_req *req, int send_fd)
{
	int fd, r, saved = errno;

	if ((fd = utcp_ctl_get()) < 0)
		return -ENETDOWN;
	utcp_busy++;
	r = utcp_ipc_send(fd, req, sizeof(*req), send_fd);
	utcp_busy--;
	errno = saved;
	if (r < 0) {
		utcp_log(UTCP_LOG_ERROR, "lost utcpd at %s: %s",
			 utcp_socket_path(), strerrordesc_np(-r));
		drop();
		return -ENETDOWN;
	}
	return 0;
}

bool
utcp_ctl_async(void)
{
	return utcp_ctl_get() >= 0 &&
	       (__atomic_load_n(&daemon_caps, __ATOMIC_RELAXED) & UTCP_CAP_ASYNC);
}

int
utcp_ctl_new_id(uint32_t *id, pid_t *dpid)
{
	struct utcp_req req;
	struct utcp_rep rep;
	int r;

	if ((r = utcp_ctl_get()) < 0)
		return r;
	if (!(__atomic_load_n(&daemon_caps, __ATOMIC_RELAXED) & UTCP_CAP_ASYNC))
		return -EOPNOTSUPP;
	if (lease_next == lease_end) {
		utcp_req_init(&req, UTCP_OP_LEASE, 0);
		if ((r = utcp_ctl_call(&req, -1, &rep, NULL, false)) < 0)
			return r;
		if (rep.sock_id == 0 || rep.val <= 0 || rep.val > UTCP_LEASE_IDS ||
		    rep.sock_id > UINT32_MAX - (uint32_t)rep.val)
			return -EPROTO;
		/* (the call may have reconnected: the lease is this one's) */
		lease_next = rep.sock_id;
		lease_end = rep.sock_id + (uint32_t)rep.val;
	}
	*id = lease_next++;
	*dpid = __atomic_load_n(&daemon_pid, __ATOMIC_RELAXED);
	return 0;
}

pid_t
utcp_ctl_daemon_pid(void)
{
	if (utcp_ctl_get() < 0)
		return 0;
	return __atomic_load_n(&daemon_pid, __ATOMIC_RELAXED);
}

int
utcp_ctl_so_error(uint32_t id)
{
	struct utcp_req req;
	struct utcp_rep rep;
	int r, v;

	utcp_req_init(&req, UTCP_OP_GETSOCKOPT, id);
	req.arg[0] = SOL_SOCKET;
	req.arg[1] = SO_ERROR;
	req.arg[2] = sizeof(int);
	if ((r = utcp_ctl_call(&req, -1, &rep, NULL, false)) < 0)
		return r;
	if (rep.len < sizeof(int))
		return -EPROTO;
	memcpy(&v, rep.data, sizeof(v));
	return v;
}

void
utcp_ctl_atfork_prepare(void)
{
	pthread_mutex_lock(&reg_lock);
}

void
utcp_ctl_atfork_parent(void)
{
	pthread_mutex_unlock(&reg_lock);
}

void
utcp_ctl_atfork_child(void)
{
	bool had = reg_n > 0;
	int saved = errno;

	for (size_t i = 0; i < reg_n; i++)
		if (still_ours(reg[i])) {
			utcp_fd_clear(reg[i]);
			LIBC(close)(reg[i]);
		}
	reg_n = 0;
	if (ctl_fd >= 0) {
		ctl_fd = -1;
		pthread_setspecific(key, NULL);
	}
	lease_next = lease_end = 0; /* the parent's ids stay the parent's */
	pthread_mutex_unlock(&reg_lock);
	/* A child of a process that talks to the daemon gets its own
	 * connection now, with the credentials it was born with: servers
	 * that fork workers and then drop privileges (nginx's `user
	 * nobody`) keep reaching a daemon that serves only root and its own
	 * uid, as they keep every other fd opened before setuid. */
	if (had)
		(void)utcp_ctl_get();
	errno = saved;
}
