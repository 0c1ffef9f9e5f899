/*
 * test_preload_fdtab.c — the preload's fd table (preload/fdtab.c) alone:
 * set/copy/clear, chunks above the static table, stale entries, and the
 * lazy identification of an fd by its peer's abstract name, with the
 * control connection stubbed (STYLE.md 7). Needs no engine and no daemon.
 */
#include "../../preload/fdtab.c"
#include "../../tools/ipc.c"

#include <stdlib.h>

static int passed, failed;
#define CHECK(c)                                                               \
	do {                                                                   \
		if (c) {                                                       \
			passed++;                                              \
		} else {                                                       \
			failed++;                                              \
			printf("FAIL %s:%d: %s\n", __func__, __LINE__, #c);    \
		}                                                              \
	} while (0)

/* --- stubs for what fdtab.c reaches outside itself --- */

struct utcp_config utcp_cfg = { .loglevel = UTCP_LOG_ERROR };
UTCP_TLS int utcp_busy;
utcp_fn_getpeername utcp_libc_getpeername = getpeername;
utcp_fn_ioctl utcp_libc_ioctl = ioctl;
utcp_fn_getpeername utcp_resolve_getpeername(void) { return getpeername; }
utcp_fn_ioctl utcp_resolve_ioctl(void) { return ioctl; }

static uint32_t dropped;      /* last utcp_rec_drop() id */
static int calls;             /* control requests seen */
static pid_t fake_daemon = 4242;

void utcp_rec_drop(uint32_t id) { dropped = id; }
pid_t utcp_ctl_daemon_pid(void) { return fake_daemon; }
void utcp_log(int level, const char *fmt, ...) { (void)level, (void)fmt; }

void
utcp_req_init(struct utcp_req *req, int op, uint32_t sock_id)
{
	memset(req, 0, sizeof(*req));
	req->op = (uint16_t)op;
	req->sock_id = sock_id;
}

/* The daemon's answers for an unconnected IPv6 socket. */
int
utcp_ctl_call(struct utcp_req *req, int send_fd, struct utcp_rep *rep,
	      int *recv_fd, bool cloexec)
{
	(void)send_fd, (void)recv_fd, (void)cloexec;
	calls++;
	memset(rep, 0, sizeof(*rep));
	switch (req->op) {
	case UTCP_OP_GETSOCKNAME:
		rep->addr.ss_family = AF_INET6;
		rep->addrlen = sizeof(struct sockaddr_in6);
		return 0;
	case UTCP_OP_GETPEERNAME:
		return -ENOTCONN;
	case UTCP_OP_GETSOCKOPT:
		rep->len = sizeof(int); /* SO_ACCEPTCONN = 0 */
		return 0;
	}
	return -EOPNOTSUPP;
}

/* --- tests --- */

static void
test_set_copy_clear(void)
{
	int sv[2], d;

	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	CHECK(utcp_fd_id(sv[0]) == 0);
	CHECK(utcp_fd_id(-1) == 0 && utcp_fd_slot(-5) == NULL);
	CHECK(utcp_fd_id(1 << 30) == 0); /* beyond every chunk: no entry */
	CHECK(utcp_fd_set(sv[0], 17, AF_INET, UTCP_FD_CONNECTED) == 0);
	CHECK(utcp_fd_id(sv[0]) == 17 && utcp_fd_ours(sv[0]));
	CHECK(utcp_fd_slot(sv[0])->family == AF_INET);

	/* dup copies, dup2 over ours forgets */
	d = dup(sv[0]);
	utcp_fd_copy(sv[0], d);
	CHECK(utcp_fd_id(d) == 17 &&
	      utcp_fd_slot(d)->flags == UTCP_FD_CONNECTED);
	utcp_fd_copy(sv[1], d);
	CHECK(utcp_fd_id(d) == 0);

	/* flags */
	utcp_fd_set_flags(sv[0], UTCP_FD_RECORDS, UTCP_FD_CONNECTED);
	CHECK(utcp_fd_slot(sv[0])->flags == UTCP_FD_RECORDS);

	/* clearing an entry with records drops them */
	dropped = 0;
	utcp_fd_clear(sv[0]);
	CHECK(utcp_fd_id(sv[0]) == 0 && dropped == 17);

	/* kernel mark: not ours, but known */
	utcp_fd_mark_kernel(sv[1]);
	CHECK(utcp_fd_id(sv[1]) == UTCP_ID_KERNEL && !utcp_fd_ours(sv[1]));
	CHECK(utcp_sock_lookup(sv[1]) == NULL);
	utcp_fd_clear(sv[1]);
	close(d), close(sv[0]), close(sv[1]);
}

static void
test_high_fds(void)
{
	int sv[2];

	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	CHECK(utcp_fd_set(sv[0], 5, AF_INET6, 0) == 0);
	/* above the static table: a chunk is mapped on first use */
	CHECK(utcp_fd_slot(UTCP_FDTAB_FAST + 7) == NULL);
	utcp_fd_copy(sv[0], UTCP_FDTAB_FAST + 7);
	CHECK(utcp_fd_id(UTCP_FDTAB_FAST + 7) == 5);
	CHECK(utcp_fd_slot(UTCP_FDTAB_FAST + 7)->family == AF_INET6);
	CHECK(utcp_fd_id(UTCP_FDTAB_FAST + 8) == 0);
	utcp_fd_copy(sv[0], 3 * UTCP_FDTAB_FAST + 1);
	CHECK(utcp_fd_id(3 * UTCP_FDTAB_FAST + 1) == 5);

	/* close_range over all of them */
	utcp_fd_clear_range(0, ~0u);
	CHECK(utcp_fd_id(sv[0]) == 0);
	CHECK(utcp_fd_id(UTCP_FDTAB_FAST + 7) == 0);
	CHECK(utcp_fd_id(3 * UTCP_FDTAB_FAST + 1) == 0);
	close(sv[0]), close(sv[1]);
}

static void
test_stale(void)
{
	int sv[2], other[2];

	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	CHECK(utcp_fd_set(sv[0], 9, AF_INET, 0) == 0);
	CHECK(utcp_fd_valid(sv[0], utcp_fd_slot(sv[0])));
	/* closed where we could not see it, the number reused */
	int n = sv[0];
	close(n);
	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, other) == 0);
	CHECK(other[0] == n);
	CHECK(!utcp_fd_valid(n, utcp_fd_slot(n)));
	/* a socket call notices and forgets (then finds nothing) */
	CHECK(utcp_sock_lookup(n) == NULL && utcp_fd_id(n) == 0);
	close(other[0]), close(other[1]), close(sv[1]);
}

static void
test_identify(void)
{
	struct sockaddr_un sa;
	int sv[2], plain[2], errno_before;
	struct utcp_fdent *e;
	socklen_t len;

	/* the daemon binds its end to "\0utcp/<pid>/<id>" */
	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	len = utcp_ipc_make_name(&sa, fake_daemon, 31);
	CHECK(bind(sv[1], (struct sockaddr *)&sa, len) == 0);
	calls = 0;
	errno = errno_before = EINTR;
	e = utcp_sock_lookup(sv[0]);
	CHECK(e != NULL && e->id == 31 && e->family == AF_INET6);
	CHECK(e != NULL && e->flags == 0); /* not connected, not listening */
	CHECK(errno == errno_before);
	CHECK(calls == 3);
	/* known now: no more questions */
	calls = 0;
	CHECK(utcp_sock_lookup(sv[0]) == e && calls == 0);
	utcp_fd_clear(sv[0]);

	/* unread filler in our end: a connect is under way */
	CHECK(write(sv[0], "filler", 6) == 6);
	e = utcp_sock_lookup(sv[0]);
	CHECK(e != NULL && e->flags == UTCP_FD_CONNECTING);
	utcp_fd_clear(sv[0]);

	/* another daemon's socket is not ours */
	fake_daemon = 4243;
	CHECK(utcp_sock_lookup(sv[0]) == NULL);
	fake_daemon = 4242;

	/* nor is a plain socketpair, which costs no request at all */
	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, plain) == 0);
	calls = 0;
	CHECK(utcp_sock_lookup(plain[0]) == NULL && calls == 0);
	CHECK(utcp_sock_lookup(0) == NULL || 1); /* stdin: whatever it is */

	/* our own code's calls (utcp_busy) never look */
	utcp_busy = 1;
	CHECK(utcp_sock_lookup(sv[0]) == NULL);
	utcp_busy = 0;
	close(sv[0]), close(sv[1]), close(plain[0]), close(plain[1]);
}

int
main(void)
{
	test_set_copy_clear();
	test_high_fds();
	test_stale();
	test_identify();
	printf("%d passed, %d failed\n", passed, failed);
	return failed != 0;
}
