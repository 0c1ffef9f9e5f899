/*
 * preload.h — internals of libutcp.so shared by its files.
 *
 * init.c    libc bindings (the list below), configuration, logging, guard
 * fdtab.c   which fds are engine sockets (the fast path)
 * ctl.c     the per-thread control connection to utcpd
 * socket.c  socket, bind, listen, accept, names, shutdown, ioctl, close, dup*
 * connect.c connect and the loopback policy (the kernel switch)
 * sockopt.c setsockopt/getsockopt and the option record for that switch
 * io.c      read/write family: EOF/EPIPE → the TCP error the engine saw
 * trace.c   reporting calls to the daemon under `utcp run --trace`
 *
 * Inside: functions return 0 (or a count/fd) or a negative errno. Only the
 * exported wrappers speak libc's -1/errno.
 */
#ifndef UTCP_PRELOAD_H
#define UTCP_PRELOAD_H

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "ipc.h"

#define UTCP_EXPORT __attribute__((visibility("default")))
#define UTCP_TLS __thread __attribute__((tls_model("initial-exec")))
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

/*
 * Every libc function we interpose or call past ourselves, declared once:
 * X(return type, name, parameter types). This yields utcp_libc_<name>, the
 * next definition (dlsym(RTLD_NEXT)), resolved by the constructor or on
 * first use. Adding a call: one entry here, then its wrapper (whose
 * prototype comes from the system header, so the compiler checks it).
 */
#define UTCP_LIBC_CALLS(X)                                                     \
	X(int, socket, (int, int, int))                                        \
	X(int, connect, (int, const struct sockaddr *, socklen_t))             \
	X(int, bind, (int, const struct sockaddr *, socklen_t))                \
	X(int, listen, (int, int))                                             \
	X(int, accept, (int, struct sockaddr *, socklen_t *))                  \
	X(int, accept4, (int, struct sockaddr *, socklen_t *, int))            \
	X(int, getsockname, (int, struct sockaddr *, socklen_t *))             \
	X(int, getpeername, (int, struct sockaddr *, socklen_t *))             \
	X(int, shutdown, (int, int))                                           \
	X(int, setsockopt, (int, int, int, const void *, socklen_t))           \
	X(int, getsockopt, (int, int, int, void *, socklen_t *))               \
	X(int, ioctl, (int, unsigned long, ...))                               \
	X(int, fcntl, (int, int, ...))                                         \
	X(int, fcntl64, (int, int, ...))                                       \
	X(int, close, (int))                                                   \
	X(int, close_range, (unsigned int, unsigned int, int))                 \
	X(void, closefrom, (int))                                              \
	X(int, fclose, (FILE *))                                               \
	X(int, dup, (int))                                                     \
	X(int, dup2, (int, int))                                               \
	X(int, dup3, (int, int, int))                                          \
	X(ssize_t, read, (int, void *, size_t))                                \
	X(ssize_t, readv, (int, const struct iovec *, int))                    \
	X(ssize_t, recv, (int, void *, size_t, int))                           \
	X(ssize_t, recvfrom,                                                   \
	  (int, void *, size_t, int, struct sockaddr *, socklen_t *))          \
	X(ssize_t, recvmsg, (int, struct msghdr *, int))                       \
	X(ssize_t, write, (int, const void *, size_t))                         \
	X(ssize_t, writev, (int, const struct iovec *, int))                   \
	X(ssize_t, send, (int, const void *, size_t, int))                     \
	X(ssize_t, sendto,                                                     \
	  (int, const void *, size_t, int, const struct sockaddr *, socklen_t)) \
	X(ssize_t, sendmsg, (int, const struct msghdr *, int))                 \
	X(ssize_t, sendfile, (int, int, off_t *, size_t))                      \
	X(ssize_t, sendfile64, (int, int, off64_t *, size_t))                  \
	X(ssize_t, splice, (int, loff_t *, int, loff_t *, size_t, unsigned int))

#define UTCP_X_DECL(ret, name, params)                                         \
	typedef ret(*utcp_fn_##name) params;                                   \
	extern utcp_fn_##name utcp_libc_##name;                                \
	utcp_fn_##name utcp_resolve_##name(void);
UTCP_LIBC_CALLS(UTCP_X_DECL)
#undef UTCP_X_DECL

/* The next definition of a libc call: one load and a predicted branch once
 * the constructor has run. */
#define LIBC(name)                                                             \
	(likely(utcp_libc_##name != NULL) ? utcp_libc_##name                   \
					  : utcp_resolve_##name())

/* The _FORTIFY_SOURCE entry points (headers declare them only when
 * fortifying); glibc's own go straight to its internal read/recv. */
ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen);
ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen, int flags);
ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t buflen, int flags,
		       struct sockaddr *addr, socklen_t *addrlen);
void __chk_fail(void) __attribute__((noreturn));

/* --- init.c --- */

enum utcp_loglevel { UTCP_LOG_ERROR, UTCP_LOG_WARN, UTCP_LOG_INFO, UTCP_LOG_DEBUG };

struct utcp_config {
	int loglevel;
	bool fallback_kernel;  /* UTCP_FALLBACK=kernel */
	bool loopback_kernel;  /* UTCP_POLICY loopback=kernel (default) */
	unsigned busy_poll;    /* UTCP_BUSY_POLL: µs to poll before a wait */
	char log_file[256];    /* UTCP_LOG_FILE, "" for stderr */
	char socket_path[256]; /* UTCP_SOCKET as it was at load time */
};
extern struct utcp_config utcp_cfg;

/* --- io.c --- */
/* UTCP_BUSY_POLL: before a blocking call on our socket fd waits for
 * `events`, poll for up to utcp_cfg.busy_poll µs (only when it is set).
 * 0, or -EINTR: a signal handler ran meanwhile that would have
 * interrupted the call (no SA_RESTART), so the call must not wait. */
int utcp_busy_wait(int fd, short events);
#define UTCP_BUSY_WAIT(fd, events)                                             \
	(unlikely(utcp_cfg.busy_poll != 0) ? utcp_busy_wait(fd, events) : 0)

/* Non-zero while this thread runs our own slow-path code: any call it makes
 * into an interposed function (ipc.c's sendmsg, stdio, malloc inside dlsym,
 * a signal handler) goes straight to libc. */
extern UTCP_TLS int utcp_busy;

void utcp_init(void);
/* The daemon's control socket, read from the environment once at load:
 * programs that clear their environment before forking workers (nginx
 * keeps only TZ) must still reach the daemon their master used. */
const char *utcp_socket_path(void);
void utcp_log(int level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
#define utcp_debug(...)                                                        \
	do {                                                                   \
		if (unlikely(utcp_cfg.loglevel >= UTCP_LOG_DEBUG))             \
			utcp_log(UTCP_LOG_DEBUG, __VA_ARGS__);                 \
	} while (0)
/* "198.18.0.1:80", "[fd75::1]:80" into buf. */
const char *utcp_fmt_addr(const struct sockaddr *sa, socklen_t len, char *buf,
			  size_t size);

/* libc's contract from an internal result: r >= 0 as is, else -1/errno. */
static inline int
utcp_ret(int r)
{
	if (r >= 0)
		return r;
	errno = -r;
	return -1;
}

/* --- fdtab.c --- */

/*
 * One entry per fd. id is the daemon's socket id (0: not an engine socket,
 * or unknown). UTCP_ID_KERNEL marks a TCP socket that we moved to the
 * kernel (loopback policy), so socket calls skip the lazy lookup;
 * UTCP_ID_CTL one of our control connections, so that a program closing
 * every fd it does not know (close, closefrom, dup2 over it) is noticed
 * and we never write to, or close, whatever reuses the number.
 * Flags are per fd (dup copies them), set by the calls that learn them.
 */
#define UTCP_ID_KERNEL UINT32_MAX
#define UTCP_ID_CTL (UINT32_MAX - 1)
enum {
	UTCP_FD_LISTENING = 1 << 0,  /* listen() succeeded */
	UTCP_FD_CONNECTING = 1 << 1, /* connect() said EINPROGRESS */
	UTCP_FD_CONNECTED = 1 << 2,  /* connected (accepted, or told so) */
	UTCP_FD_RECORDS = 1 << 3,    /* options recorded (sockopt.c) */
};

struct utcp_fdent {
	uint32_t id;     /* atomic: written last on set, first on clear */
	uint32_t ino;    /* st_ino of our end: tells a stale entry apart */
	uint8_t family;  /* AF_INET or AF_INET6 */
	uint8_t flags;
};

#define UTCP_FDTAB_FAST 65536
extern struct utcp_fdent utcp_fdtab[UTCP_FDTAB_FAST];
struct utcp_fdent *utcp_fd_slow(int fd);

/* The entry of fd, or NULL when fd is beyond every table. */
static inline struct utcp_fdent *
utcp_fd_slot(int fd)
{
	if (likely((unsigned)fd < UTCP_FDTAB_FAST))
		return &utcp_fdtab[fd];
	return utcp_fd_slow(fd);
}

static inline bool
utcp_id_ours(uint32_t id)
{
	return id != 0 && id < UTCP_ID_CTL;
}

/* The fast path: one bounds check and one load. */
static inline uint32_t
utcp_fd_id(int fd)
{
	if (likely((unsigned)fd < UTCP_FDTAB_FAST))
		return __atomic_load_n(&utcp_fdtab[fd].id, __ATOMIC_ACQUIRE);
	struct utcp_fdent *e = utcp_fd_slow(fd);
	return e != NULL ? __atomic_load_n(&e->id, __ATOMIC_ACQUIRE) : 0;
}

static inline bool
utcp_fd_ours(int fd)
{
	return utcp_id_ours(utcp_fd_id(fd));
}

/* Record fd as engine socket id (st_ino read here); 0 or -errno. */
int utcp_fd_set(int fd, uint32_t id, int family, int flags);
void utcp_fd_mark_kernel(int fd);
void utcp_fd_mark_ctl(int fd);
void utcp_fd_clear(int fd);
void utcp_fd_copy(int from, int to);
void utcp_fd_clear_range(unsigned int lo, unsigned int hi);
/* Forget every engine socket (the daemon that made them is gone). */
void utcp_fd_forget_all(void);
void utcp_fd_set_flags(int fd, int set, int clear);
/* Does fd still hold the socket its entry was made for? */
bool utcp_fd_valid(int fd, const struct utcp_fdent *e);

/* For a socket call (not a data call): the entry of an engine socket,
 * identifying an fd we have not seen (inherited across exec, received by
 * SCM_RIGHTS) by its peer's abstract name; NULL for everything else.
 * Keeps errno. */
struct utcp_fdent *utcp_sock_lookup(int fd);

/* --- ctl.c --- */

void utcp_req_init(struct utcp_req *req, int op, uint32_t sock_id);
/* This thread's control connection, connected and greeted on first use:
 * the fd, or -errno (ENOENT, ECONNREFUSED, EACCES … as connect() said, or
 * the daemon's refusal of HELLO). */
int utcp_ctl_get(void);
/* One request and its reply. send_fd (-1: none) travels with the request;
 * *recv_fd (may be NULL) receives the reply's fd, close-on-exec if asked.
 * Returns 0, -(the daemon's errno), or -ENETDOWN when the daemon cannot be
 * reached or the connection broke. */
int utcp_ctl_call(struct utcp_req *req, int send_fd, struct utcp_rep *rep,
		  int *recv_fd, bool cloexec);
/* One request nobody answers (ipc.h: ADOPT, CONNECT NOREPLY): 0, or
 * -ENETDOWN when the connection broke. */
int utcp_ctl_send(struct utcp_req *req, int send_fd);
/* An id for a socket this process makes itself, from this thread's lease,
 * and the daemon pid to name it with; -EOPNOTSUPP from an older daemon. */
int utcp_ctl_new_id(uint32_t *id, pid_t *dpid);
/* Does the daemon take asynchronous operations (UTCP_CAP_ASYNC)? */
bool utcp_ctl_async(void);
/* The daemon's pid as it names its sockets (HELLO), 0 if unknown. */
pid_t utcp_ctl_daemon_pid(void);
/* Helpers on top: SO_ERROR of a socket (>= 0 errno value or -errno). */
int utcp_ctl_so_error(uint32_t id);
void utcp_ctl_atfork_prepare(void);
void utcp_ctl_atfork_parent(void);
void utcp_ctl_atfork_child(void);

/* --- connect.c --- */

bool utcp_is_loopback(const struct sockaddr *sa, socklen_t len, bool any);
/* Put a kernel TCP socket behind fd (same number, flags and options). */
int utcp_to_kernel(int fd, struct utcp_fdent *e, bool replay_bind);

/* --- sockopt.c --- */

void utcp_rec_add(int fd, struct utcp_fdent *e, int level, int name,
		  const void *val, socklen_t len);
int utcp_rec_replay(uint32_t id, int kfd, bool replay_bind);
void utcp_rec_drop(uint32_t id);
void utcp_rec_atfork_prepare(void);
void utcp_rec_atfork_parent(void);
void utcp_rec_atfork_child(void);
#define UTCP_REC_BIND (-1) /* level of the bind() record */

/* --- trace.c --- */

/* UTCP_TRACE_TAG (ipc.h, "Tracing"); 0: not traced. */
extern uint32_t utcp_trace_tag;
void utcp_trace_init(void);
void utcp_trace_daemon_caps(uint32_t caps);
uint64_t utcp_trace_now(void);
/* 0 when untraced (one predicted branch), else the call's start. */
static inline uint64_t
utcp_trace_start(void)
{
	return unlikely(utcp_trace_tag != 0) ? utcp_trace_now() : 0;
}
/* Report a finished call on engine socket id: ret is the result (>= 0) or
 * -errno; the arguments as strace would show them. Never blocks, keeps
 * errno. */
void utcp_trace_call(uint64_t t0, const char *name, uint32_t id, int fd,
		     long long ret, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));
const char *utcp_trace_family(int domain);
const char *utcp_trace_sockflags(int flags, char *buf, size_t len);
const char *utcp_trace_how(int how);
const char *utcp_trace_opt(int level, int name, char *buf, size_t len);
const char *utcp_trace_optval(const void *val, socklen_t len, char *buf,
			      size_t blen);

/* --- io.c --- */

/* The TCP error to report instead of EOF/EPIPE/ECONNRESET on engine socket
 * fd: a positive errno, or 0 to keep the original result. Keeps errno. */
int utcp_pending_error(int fd);

#endif
