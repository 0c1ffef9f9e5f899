/*
 * trace.c — telling the daemon about a traced program's socket calls.
 *
 * `utcp run --trace` sets UTCP_TRACE_TAG; the tag goes to the daemon in
 * HELLO (ctl.c), and each wrapped call on an engine socket is reported
 * afterwards as one UTCP_OP_CALL message (ipc.h): name, arguments, result,
 * errno and duration. The message has no reply and is sent without
 * waiting: if the control socket is full it is dropped, so tracing never
 * changes when or how a call returns.
 *
 * Untraced (the normal case) a wrapper pays one load and one predicted
 * branch: utcp_trace_start() returns 0 and nothing else runs.
 */
#include "preload.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

uint32_t utcp_trace_tag;
/* Set by HELLO when the daemon understands UTCP_OP_CALL. */
static int daemon_traces;
static unsigned long dropped;

void
utcp_trace_init(void)
{
	const char *s = getenv("UTCP_TRACE_TAG");
	char *end;
	unsigned long v;

	if (s == NULL || s[0] == '\0')
		return;
	v = strtoul(s, &end, 10);
	if (*end != '\0' || v == 0 || v > INT32_MAX) {
		utcp_log(UTCP_LOG_WARN, "UTCP_TRACE_TAG=%s: not a tag", s);
		return;
	}
	utcp_trace_tag = (uint32_t)v;
}

void
utcp_trace_daemon_caps(uint32_t caps)
{
	__atomic_store_n(&daemon_traces, (caps & UTCP_CAP_TRACE) != 0,
			 __ATOMIC_RELAXED);
}

uint64_t
utcp_trace_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	/* never 0: 0 means "not traced" to the wrappers */
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u + 1;
}

void
utcp_trace_call(uint64_t t0, const char *name, uint32_t id, int fd,
		long long ret, const char *fmt, ...)
{
	struct utcp_req req;
	size_t nl = strlen(name);
	uint64_t dur = utcp_trace_now() - t0;
	int saved = errno, ctl;
	va_list ap;

	if (utcp_busy)
		return; /* our own calls are not the program's */
	if ((ctl = utcp_ctl_get()) < 0 ||
	    !__atomic_load_n(&daemon_traces, __ATOMIC_RELAXED)) {
		errno = saved;
		return;
	}
	utcp_req_init(&req, UTCP_OP_CALL, utcp_id_ours(id) ? id : 0);
	req.arg[0] = fd;
	if (ret < 0) {
		req.arg[1] = -1;
		req.arg[2] = (int32_t)-ret;
	} else {
		req.arg[1] = ret > INT32_MAX ? INT32_MAX : (int32_t)ret;
	}
	req.arg[3] = dur > INT32_MAX ? INT32_MAX : (int32_t)dur;
	/* data: "name\0args\0" */
	if (nl > 31)
		nl = 31;
	memcpy(req.data, name, nl);
	req.data[nl] = '\0';
	va_start(ap, fmt);
	int n = vsnprintf((char *)req.data + nl + 1, sizeof(req.data) - nl - 1,
			  fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	req.len = (uint32_t)(nl + 1 + (size_t)n + 1);
	if (req.len > sizeof(req.data))
		req.len = sizeof(req.data);
	utcp_busy++;
	if (LIBC(send)(ctl, &req, sizeof(req), MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		dropped++; /* never wait: the trace loses, the program not */
	utcp_busy--;
	errno = saved;
}

/* ---- argument formatting, strace's spelling ---- */

const char *
utcp_trace_family(int d)
{
	return d == AF_INET ? "AF_INET" : d == AF_INET6 ? "AF_INET6" : "AF_?";
}

const char *
utcp_trace_sockflags(int flags, char *buf, size_t len)
{
	snprintf(buf, len, "%s%s",
		 (flags & SOCK_NONBLOCK) ? "|SOCK_NONBLOCK" : "",
		 (flags & SOCK_CLOEXEC) ? "|SOCK_CLOEXEC" : "");
	return buf;
}

const char *
utcp_trace_how(int how)
{
	switch (how) {
	case SHUT_RD: return "SHUT_RD";
	case SHUT_WR: return "SHUT_WR";
	case SHUT_RDWR: return "SHUT_RDWR";
	}
	return "?";
}

/* "SOL_SOCKET, SO_KEEPALIVE" for the options programs set most. */
const char *
utcp_trace_opt(int level, int name, char *buf, size_t len)
{
	static const struct {
		int level, name;
		const char *s;
	} known[] = {
#define O(l, n) {l, n, #l ", " #n}
		O(SOL_SOCKET, SO_KEEPALIVE), O(SOL_SOCKET, SO_REUSEADDR),
		O(SOL_SOCKET, SO_REUSEPORT), O(SOL_SOCKET, SO_LINGER),
		O(SOL_SOCKET, SO_SNDBUF), O(SOL_SOCKET, SO_RCVBUF),
		O(SOL_SOCKET, SO_ERROR), O(SOL_SOCKET, SO_TYPE),
		O(SOL_SOCKET, SO_RCVTIMEO), O(SOL_SOCKET, SO_SNDTIMEO),
		O(SOL_SOCKET, SO_BROADCAST), O(SOL_SOCKET, SO_OOBINLINE),
		O(IPPROTO_TCP, TCP_NODELAY), O(IPPROTO_TCP, TCP_MAXSEG),
		O(IPPROTO_TCP, TCP_CORK), O(IPPROTO_TCP, TCP_KEEPIDLE),
		O(IPPROTO_TCP, TCP_KEEPINTVL), O(IPPROTO_TCP, TCP_KEEPCNT),
		O(IPPROTO_TCP, TCP_INFO), O(IPPROTO_TCP, TCP_USER_TIMEOUT),
		O(IPPROTO_TCP, TCP_QUICKACK), O(IPPROTO_TCP, TCP_CONGESTION),
		O(IPPROTO_TCP, TCP_DEFER_ACCEPT), O(IPPROTO_TCP, TCP_FASTOPEN),
		O(IPPROTO_TCP, TCP_NOTSENT_LOWAT), O(IPPROTO_IPV6, IPV6_V6ONLY),
		O(IPPROTO_IP, IP_TOS),
#undef O
	};
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (known[i].level == level && known[i].name == name)
			return known[i].s;
	snprintf(buf, len, "%d, %d", level, name);
	return buf;
}

/* The value of an int-sized option, else its length. */
const char *
utcp_trace_optval(const void *val, socklen_t len, char *buf, size_t blen)
{
	int v;

	if (val != NULL && len == sizeof(int)) {
		memcpy(&v, val, sizeof(v));
		snprintf(buf, blen, "[%d]", v);
	} else if (val == NULL) {
		snprintf(buf, blen, "NULL");
	} else {
		snprintf(buf, blen, "<%u bytes>", (unsigned)len);
	}
	return buf;
}
