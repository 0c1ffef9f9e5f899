/* common.c — helpers shared by the utcp subcommands (see cli.h). */
#include "cli.h"

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

/* How long the tool waits for any one answer from the daemon. */
#define CTL_TIMEOUT_SEC 3

const char *
cli_self_dir(void)
{
	static char dir[PATH_MAX];
	ssize_t n;
	char *slash;

	if (dir[0] != '\0')
		return dir;
	n = readlink("/proc/self/exe", dir, sizeof(dir) - 1);
	if (n <= 0 || (size_t)n >= sizeof(dir) - 1) {
		dir[0] = '\0';
		return NULL;
	}
	dir[n] = '\0';
	slash = strrchr(dir, '/');
	if (slash == NULL) {
		dir[0] = '\0';
		return NULL;
	}
	*(slash == dir ? slash + 1 : slash) = '\0';
	return dir;
}

char *
cli_find_companion(const char *env, const char *near, const char *far, int mode)
{
	const char *dir, *v = env != NULL ? getenv(env) : NULL;
	const char *cand[2] = {near, far};
	char buf[PATH_MAX];

	if (v != NULL && v[0] != '\0') {
		if (access(v, mode) != 0)
			return NULL; /* errno from access(): say so, don't guess
				      */
		return realpath(v, NULL);
	}
	dir = cli_self_dir();
	if (dir == NULL) {
		errno = ENOENT;
		return NULL;
	}
	for (size_t i = 0; i < 2; i++) {
		if (cand[i] == NULL)
			continue;
		int n = snprintf(buf, sizeof(buf), "%s/%s", dir, cand[i]);
		if (n < 0 || (size_t)n >= sizeof(buf))
			continue;
		if (access(buf, mode) == 0)
			return realpath(buf, NULL);
	}
	errno = ENOENT;
	return NULL;
}

void
cli_req_init(struct utcp_req *req, enum utcp_op op)
{
	memset(req, 0, sizeof(*req));
	req->version = UTCP_IPC_VERSION;
	req->op = (uint16_t)op;
}

int
cli_ctl_call(int fd, struct utcp_req *req, struct utcp_rep *rep)
{
	int r = utcp_ipc_send(fd, req, sizeof(*req), -1);

	if (r == 0)
		r = utcp_ipc_recv(fd, rep, sizeof(*rep), NULL, 1);
	/* SO_RCVTIMEO expiring reads as EAGAIN; call it what it is. */
	if (r == -EAGAIN || r == -EWOULDBLOCK)
		r = -ETIMEDOUT;
	return r;
}

int
cli_ctl_open(const char *path, pid_t *daemon_pid)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct timeval tv = {.tv_sec = CTL_TIMEOUT_SEC};
	struct utcp_req req;
	struct utcp_rep rep;
	int fd, r;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0)
		goto fail_errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		goto fail_errno;
	cli_req_init(&req, UTCP_OP_HELLO);
	r = cli_ctl_call(fd, &req, &rep);
	if (r < 0)
		goto fail;
	if (rep.err != 0) {
		r = -rep.err;
		goto fail;
	}
	if (daemon_pid != NULL)
		*daemon_pid = (pid_t)rep.val;
	return fd;

fail_errno:
	r = -errno;
fail:
	close(fd);
	return r;
}

int
cli_parse_ulong(const char *s, unsigned long lo, unsigned long hi,
		unsigned long *out)
{
	unsigned long v;
	char *end;

	if (s == NULL || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

bool
cli_is_help(const char *arg)
{
	return strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0;
}
