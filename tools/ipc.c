/* ipc.c — message framing for the control protocol (see ipc.h). */
#include "ipc.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

const char *
utcp_ipc_socket_path(void)
{
	const char *p = getenv("UTCP_SOCKET");

	return (p != NULL && p[0] != '\0') ? p : UTCP_DEFAULT_SOCKET;
}

int
utcp_ipc_send(int sock, const void *msg, size_t len, int fd)
{
	struct iovec iov = { .iov_base = (void *)msg, .iov_len = len };
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;

	if (fd >= 0) {
		memset(&u, 0, sizeof(u));
		mh.msg_control = u.buf;
		mh.msg_controllen = sizeof(u.buf);
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	do {
		n = sendmsg(sock, &mh, MSG_NOSIGNAL);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -EPROTO;
}

int
utcp_ipc_recv(int sock, void *msg, size_t len, int *fd, int cloexec)
{
	struct iovec iov = { .iov_base = msg, .iov_len = len };
	union {
		char buf[CMSG_SPACE(sizeof(int) * 4)];
		struct cmsghdr align;
	} u;
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = u.buf,
			     .msg_controllen = sizeof(u.buf) };
	ssize_t n;
	int got = -1;

	if (fd != NULL)
		*fd = -1;
	do {
		n = recvmsg(sock, &mh, cloexec ? MSG_CMSG_CLOEXEC : 0);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c != NULL;
	     c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t nfd = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < nfd; i++) {
			int f;
			memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (got < 0 && fd != NULL)
				got = f;
			else
				close(f); /* unexpected extras never leak */
		}
	}
	if (fd != NULL)
		*fd = got;
	if (n == 0)
		return -ECONNRESET;
	if ((size_t)n != len || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
		if (got >= 0 && fd != NULL) {
			close(got);
			*fd = -1;
		}
		/* The message is whole, its fd was not: no room for it. */
		if ((size_t)n == len && !(mh.msg_flags & MSG_TRUNC))
			return -EMFILE;
		return -EPROTO;
	}
	return 0;
}

int
utcp_ipc_parse_peer(const struct sockaddr_un *sa, socklen_t len, pid_t *pid,
		    uint32_t *id)
{
	size_t off = offsetof(struct sockaddr_un, sun_path);
	size_t plen = strlen(UTCP_ABSTRACT_PREFIX);
	char buf[sizeof(sa->sun_path) + 1];
	unsigned long p, i;
	char *end;

	if (sa->sun_family != AF_UNIX || len <= off + 1 + plen ||
	    sa->sun_path[0] != '\0')
		return -1;
	size_t n = len - off - 1;
	if (n >= sizeof(buf))
		return -1;
	memcpy(buf, sa->sun_path + 1, n);
	buf[n] = '\0';
	if (strncmp(buf, UTCP_ABSTRACT_PREFIX, plen) != 0)
		return -1;
	errno = 0;
	p = strtoul(buf + plen, &end, 10);
	if (errno != 0 || *end != '/' || p == 0)
		return -1;
	i = strtoul(end + 1, &end, 10);
	if (errno != 0 || *end != '\0' || i == 0 || i > UINT32_MAX)
		return -1;
	*pid = (pid_t)p;
	*id = (uint32_t)i;
	return 0;
}

socklen_t
utcp_ipc_make_name(struct sockaddr_un *sa, pid_t pid, uint32_t id)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	int n = snprintf(sa->sun_path + 1, sizeof(sa->sun_path) - 1,
			 UTCP_ABSTRACT_PREFIX "%ld/%lu", (long)pid,
			 (unsigned long)id);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
}
