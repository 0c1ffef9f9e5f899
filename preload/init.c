/*
 * init.c — libc bindings, configuration, logging.
 *
 * Environment:
 *   UTCP_SOCKET    the daemon's control socket (ipc.h)
 *   UTCP_LOG       error | warn | info | debug (default warn)
 *   UTCP_LOG_FILE  append log lines there instead of stderr
 *   UTCP_FALLBACK  "kernel": if utcpd cannot be reached, TCP sockets are
 *                  the kernel's (said once on stderr); otherwise socket()
 *                  fails (see socket.c)
 *   UTCP_POLICY    see connect.c
 *   UTCP_TRACE_TAG set by `utcp run --trace`: report calls (trace.c)
 */
#include "preload.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

struct utcp_config utcp_cfg = {
	.loglevel = UTCP_LOG_WARN,
	.loopback_kernel = true,
};
UTCP_TLS int utcp_busy;

/* Only reachable if a program calls a function its own libc lacks; raw
 * syscalls, since nothing of libc's can be trusted to be bound yet. */
static void __attribute__((noreturn))
utcp_missing(const char *name)
{
	static const char pre[] = "utcp: libc has no ";

	(void)!syscall(SYS_write, 2, pre, sizeof(pre) - 1);
	(void)!syscall(SYS_write, 2, name, strlen(name));
	(void)!syscall(SYS_write, 2, "\n", 1);
	abort();
}

#define UTCP_X_DEF(ret, name, params)                                          \
	utcp_fn_##name utcp_libc_##name;                                       \
	utcp_fn_##name utcp_resolve_##name(void)                               \
	{                                                                      \
		utcp_fn_##name f = (utcp_fn_##name)dlsym(RTLD_NEXT, #name);    \
		if (f == NULL)                                                 \
			utcp_missing(#name);                                   \
		__atomic_store_n(&utcp_libc_##name, f, __ATOMIC_RELAXED);      \
		return f;                                                      \
	}
UTCP_LIBC_CALLS(UTCP_X_DEF)
#undef UTCP_X_DEF

static int
parse_level(const char *s)
{
	static const char *const names[] = { "error", "warn", "info", "debug" };

	for (int i = 0; i < 4; i++)
		if (strcmp(s, names[i]) == 0)
			return i;
	if (strcmp(s, "warning") == 0)
		return UTCP_LOG_WARN;
	utcp_log(UTCP_LOG_WARN, "UTCP_LOG=%s: want error, warn, info or debug",
		 s);
	return UTCP_LOG_WARN;
}

/* UTCP_POLICY: comma-separated key=value (connect.c lists them). */
/* UTCP_BUSY_POLL=USEC, 0 to 10000 (utcp run --busy-poll). */
static void
parse_busy_poll(const char *s)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || *end != '\0' || s[0] < '0' || s[0] > '9' ||
	    v > 10000) {
		utcp_log(UTCP_LOG_WARN,
			 "UTCP_BUSY_POLL=%s: want 0 to 10000 (µs); not polling",
			 s);
		return;
	}
	utcp_cfg.busy_poll = (unsigned)v;
}

static void
parse_policy(const char *s)
{
	char buf[256], *save = NULL;

	snprintf(buf, sizeof(buf), "%s", s);
	for (char *kv = strtok_r(buf, ",", &save); kv != NULL;
	     kv = strtok_r(NULL, ",", &save)) {
		if (strcmp(kv, "loopback=kernel") == 0)
			utcp_cfg.loopback_kernel = true;
		else if (strcmp(kv, "loopback=engine") == 0)
			utcp_cfg.loopback_kernel = false;
		else
			utcp_log(UTCP_LOG_WARN,
				 "UTCP_POLICY: unknown '%s' (want "
				 "loopback=kernel or loopback=engine)",
				 kv);
	}
}

static void
atfork_prepare(void)
{
	utcp_ctl_atfork_prepare();
	utcp_rec_atfork_prepare();
}

static void
atfork_parent(void)
{
	utcp_rec_atfork_parent();
	utcp_ctl_atfork_parent();
}

static void
atfork_child(void)
{
	utcp_rec_atfork_child();
	utcp_ctl_atfork_child();
}

static void
init_once(void)
{
	const char *s;

#define UTCP_X_RESOLVE(ret, name, params) (void)LIBC(name);
	UTCP_LIBC_CALLS(UTCP_X_RESOLVE)
#undef UTCP_X_RESOLVE

	snprintf(utcp_cfg.socket_path, sizeof(utcp_cfg.socket_path), "%s",
		 utcp_ipc_socket_path());
	if ((s = getenv("UTCP_LOG_FILE")) != NULL)
		snprintf(utcp_cfg.log_file, sizeof(utcp_cfg.log_file), "%s", s);
	if ((s = getenv("UTCP_LOG")) != NULL && s[0] != '\0')
		utcp_cfg.loglevel = parse_level(s);
	if ((s = getenv("UTCP_FALLBACK")) != NULL && s[0] != '\0') {
		if (strcmp(s, "kernel") == 0)
			utcp_cfg.fallback_kernel = true;
		else
			utcp_log(UTCP_LOG_WARN,
				 "UTCP_FALLBACK=%s: only 'kernel' is known", s);
	}
	if ((s = getenv("UTCP_POLICY")) != NULL && s[0] != '\0')
		parse_policy(s);
	if ((s = getenv("UTCP_BUSY_POLL")) != NULL && s[0] != '\0')
		parse_busy_poll(s);
	utcp_trace_init();
	pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
	utcp_debug("[%d] loaded: socket %s, loopback %s%s", (int)getpid(),
		   utcp_cfg.socket_path,
		   utcp_cfg.loopback_kernel ? "kernel" : "engine",
		   utcp_cfg.fallback_kernel ? ", fallback kernel" : "");
}

const char *
utcp_socket_path(void)
{
	utcp_init();
	return utcp_cfg.socket_path;
}

void
utcp_init(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, init_once);
}

__attribute__((constructor)) static void
utcp_constructor(void)
{
	utcp_init();
}

void
utcp_log(int level, const char *fmt, ...)
{
	char buf[1024];
	int saved = errno, n, fd;
	va_list ap;

	if (level > utcp_cfg.loglevel)
		return;
	n = snprintf(buf, sizeof(buf), "utcp: ");
	va_start(ap, fmt);
	n += vsnprintf(buf + n, sizeof(buf) - n - 1, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(buf) - 2)
		n = sizeof(buf) - 2;
	buf[n++] = '\n';
	utcp_busy++;
	if (utcp_cfg.log_file[0] != '\0') {
		/* Opened per line: a program that closes every fd it does not
		 * know cannot make us write into one of its own files. */
		fd = open(utcp_cfg.log_file,
			  O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
		if (fd >= 0) {
			(void)!LIBC(write)(fd, buf, n);
			LIBC(close)(fd);
		}
	} else if (utcp_fd_id(2) == 0) {
		/* (never into an fd 2 that is now a TCP stream) */
		(void)!LIBC(write)(2, buf, n);
	}
	utcp_busy--;
	errno = saved;
}

const char *
utcp_fmt_addr(const struct sockaddr *sa, socklen_t len, char *buf,
	      size_t size)
{
	char ip[INET6_ADDRSTRLEN];

	if (sa == NULL || len < sizeof(sa_family_t)) {
		snprintf(buf, size, "(none)");
	} else if (sa->sa_family == AF_INET &&
		   len >= sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *in = (const void *)sa;
		inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
		snprintf(buf, size, "%s:%u", ip, ntohs(in->sin_port));
	} else if (sa->sa_family == AF_INET6 &&
		   len >= sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *in6 = (const void *)sa;
		inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
		snprintf(buf, size, "[%s]:%u", ip, ntohs(in6->sin6_port));
	} else {
		snprintf(buf, size, "(family %d)", sa->sa_family);
	}
	return buf;
}
