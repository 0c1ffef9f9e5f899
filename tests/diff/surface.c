/*
 * surface.c — the socket surface of issue 5, as a transcript.
 *
 * Run twice by tests/diff/run: over kernel TCP (client namespace
 * 198.18.0.2 on a veth to a server namespace 198.18.0.1) and under
 * `utcp run` in `utcp sandbox`. Each line is a call and what it returned
 * (a value, or -1 and the errno name), a poll mask or an option value;
 * nothing that legitimately differs run to run (ports, ISNs, timings, fd
 * numbers) is printed. The two transcripts must match line by line, save
 * tests/diff/allowlist.
 *
 *   surface peer         the kernel-side servers on 198.18.0.1 (and ::)
 *   surface              the transcript, against those servers
 *   surface exec-child FD  (internal) the image exec'd with an inherited fd
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/sockios.h>

#define PEER "198.18.0.1"
#define PEER6 "fd75:7463:7000::1"
#define SELF "198.18.0.2"
#define SELF6 "fd75:7463:7000::2"

/* The peer's services (ports on PEER). */
enum {
	P_ECHO = 7001,     /* echo until EOF (dual-stack) */
	P_GREET = 7003,    /* "hello\n", then close */
	P_RESET = 7004,    /* accept, then close with RST */
	P_BURST = 7006,    /* 65536 bytes, then close */
	P_COUNT = 7011,    /* read to EOF or error; remember count and how */
	P_LAST = 7012,     /* tell what P_COUNT saw last ("N eof|reset") */
	P_CALLBACK = 7010, /* read "PORT N\n": connect to SELF:PORT N times,
			      send "hi\n" on each, read each to EOF */
	P_HOLD = 7013,     /* accept and never read; close on EOF of P_LAST */
	P_BLACKHOLE = 7998, /* SYNs dropped (nftables) */
	P_CLOSED = 7999,    /* nobody listens: RST */
};

static volatile sig_atomic_t sigpipes;
static void on_pipe(int s) { (void)s; sigpipes++; }

/* --- the transcript --- */

static void
say(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

static const char *
ename(int e)
{
	const char *n = strerrorname_np(e);
	return n != NULL ? n : "E?";
}

/* "label = value" or "label = -1 ENAME". */
static long
res(const char *label, long r, int e)
{
	if (r < 0)
		say("%s = -1 %s", label, ename(e));
	else
		say("%s = %ld", label, r);
	errno = e;
	return r;
}
#define T(label, expr)                                                         \
	({                                                                     \
		errno = 0;                                                     \
		long r_ = (long)(expr);                                        \
		res(label, r_, errno);                                         \
	})
/* For calls that return an fd: "fd" instead of its number. */
#define TFD(label, expr)                                                       \
	({                                                                     \
		errno = 0;                                                     \
		int r_ = (expr);                                               \
		int e_ = errno;                                                \
		if (r_ < 0)                                                    \
			say("%s = -1 %s", label, ename(e_));                   \
		else                                                           \
			say("%s = fd", label);                                 \
		errno = e_;                                                    \
		r_;                                                            \
	})

static const char *
pmask(int m)
{
	static char b[160];
	static const struct { int bit; const char *n; } names[] = {
	    {POLLIN, "IN"},     {POLLPRI, "PRI"},     {POLLOUT, "OUT"},
	    {POLLERR, "ERR"},   {POLLHUP, "HUP"},     {POLLNVAL, "NVAL"},
	    {POLLRDNORM, "RDNORM"}, {POLLWRNORM, "WRNORM"},
	    {POLLRDHUP, "RDHUP"},
	};
	b[0] = 0;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (m & names[i].bit) {
			if (b[0])
				strcat(b, "|");
			strcat(b, names[i].n);
		}
	if (!b[0])
		strcpy(b, "0");
	return b;
}

static int
poll1(int fd, int events, int ms)
{
	struct pollfd p = {.fd = fd, .events = events};
	int r = poll(&p, 1, ms);
	return r > 0 ? p.revents : r;
}

static void
say_poll(const char *label, int fd, int events, int ms)
{
	int m = poll1(fd, events, ms);
	say("%s: poll = %s", label, m < 0 ? ename(errno) : pmask(m));
}

/* Wait up to ms until poll reports any of want (or the timeout). */
static void __attribute__((unused))
wait_for(int fd, int want, int ms)
{
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		int m = poll1(fd, want | POLLIN | POLLOUT, 10);
		if (m > 0 && (m & want))
			return;
		clock_gettime(CLOCK_MONOTONIC, &t);
		if ((t.tv_sec - t0.tv_sec) * 1000 +
			(t.tv_nsec - t0.tv_nsec) / 1000000 >= ms)
			return;
	}
}

static void
msleep(int ms)
{
	struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&t, NULL);
}

static struct sockaddr_in
sin_of(const char *ip, int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
	inet_pton(AF_INET, ip, &a.sin_addr);
	return a;
}

static struct sockaddr_in6
sin6_of(const char *ip, int port)
{
	struct sockaddr_in6 a = {.sin6_family = AF_INET6,
				 .sin6_port = htons(port)};
	inet_pton(AF_INET6, ip, &a.sin6_addr);
	return a;
}

/* "198.18.0.1:7001", or "198.18.0.1:*" when the port is ephemeral. */
static const char *
addr_str(const struct sockaddr *sa, socklen_t len, bool port)
{
	static char b[128];
	char ip[INET6_ADDRSTRLEN] = "?";
	int p = 0;
	if (len == 0)
		return "(len 0)";
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *a = (const void *)sa;
		inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip));
		p = ntohs(a->sin_port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const void *)sa;
		inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof(ip));
		p = ntohs(a->sin6_port);
	} else {
		snprintf(b, sizeof(b), "family %d len %u", sa->sa_family, len);
		return b;
	}
	if (port)
		snprintf(b, sizeof(b), "%s:%d len %u", ip, p, len);
	else
		snprintf(b, sizeof(b), "%s:%s len %u", ip, p ? "*" : "0", len);
	return b;
}

static void
say_name(const char *label, int fd, bool peer, bool port)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	memset(&ss, 0, sizeof(ss));
	errno = 0;
	int r = peer ? getpeername(fd, (void *)&ss, &len)
		     : getsockname(fd, (void *)&ss, &len);
	if (r < 0)
		say("%s: %s = -1 %s", label, peer ? "getpeername" : "getsockname",
		    ename(errno));
	else
		say("%s: %s = %s", label, peer ? "getpeername" : "getsockname",
		    addr_str((void *)&ss, len, port));
}

static int
geti(int fd, int level, int name)
{
	int v = -12345;
	socklen_t l = sizeof(v);
	if (getsockopt(fd, level, name, &v, &l) < 0)
		return -1000 - errno;
	return v;
}

static void
say_int(const char *label, int fd, int level, int name)
{
	int v = -12345;
	socklen_t l = sizeof(v);
	errno = 0;
	if (getsockopt(fd, level, name, &v, &l) < 0)
		say("%s: get = -1 %s", label, ename(errno));
	else
		say("%s: get = %d (len %u)", label, v, l);
}

static void
set_int(const char *label, int fd, int level, int name, int v)
{
	char b[128];
	snprintf(b, sizeof(b), "%s: set %d", label, v);
	T(b, setsockopt(fd, level, name, &v, sizeof(v)));
}

static int
tcp_socket(int family, int flags)
{
	return socket(family, SOCK_STREAM | flags, 0);
}

static int
connect_to(int fd, int port)
{
	struct sockaddr_in a = sin_of(PEER, port);
	return connect(fd, (void *)&a, sizeof(a));
}

/* A blocking connected socket to a peer service, or -1 (said). */
static int
dial(int port)
{
	int s = tcp_socket(AF_INET, 0);
	if (s < 0 || connect_to(s, port) < 0) {
		say("dial %d: -1 %s", port, ename(errno));
		if (s >= 0)
			close(s);
		return -1;
	}
	return s;
}

static ssize_t
read_full(int fd, void *buf, size_t n)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = read(fd, (char *)buf + got, n - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return got ? (ssize_t)got : r;
		got += r;
	}
	return got;
}

static ssize_t
write_full(int fd, const void *buf, size_t n)
{
	size_t done = 0;
	while (done < n) {
		ssize_t r = write(fd, (const char *)buf + done, n - done);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return r;
		done += r;
	}
	return done;
}

/* What P_COUNT saw last: "N eof" or "N reset". */
static void
say_last(const char *label)
{
	char b[64] = "";
	msleep(300);
	int s = dial(P_LAST);
	if (s < 0)
		return;
	ssize_t n = read_full(s, b, sizeof(b) - 1);
	b[n > 0 ? n : 0] = 0;
	b[strcspn(b, "\n")] = 0;
	close(s);
	say("%s: peer saw %s", label, b);
}

/* Ask the peer to connect to SELF:port n times. */
static int
callback(int port, int n)
{
	int s = dial(P_CALLBACK);
	if (s < 0)
		return -1;
	char b[32];
	int l = snprintf(b, sizeof(b), "%d %d\n", port, n);
	write_full(s, b, l);
	return s;
}

/* --- sections --- */

static void
sec_socket(void)
{
	say("## socket");
	int s = TFD("socket NONBLOCK|CLOEXEC",
		    socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
	say("F_GETFL O_NONBLOCK = %d", !!(fcntl(s, F_GETFL) & O_NONBLOCK));
	say("F_GETFD FD_CLOEXEC = %d", !!(fcntl(s, F_GETFD) & FD_CLOEXEC));
	say_int("SO_TYPE", s, SOL_SOCKET, SO_TYPE);
	say_int("SO_DOMAIN", s, SOL_SOCKET, SO_DOMAIN);
	say_int("SO_PROTOCOL", s, SOL_SOCKET, SO_PROTOCOL);
	say_int("SO_ACCEPTCONN", s, SOL_SOCKET, SO_ACCEPTCONN);
	close(s);
	s = TFD("socket plain", socket(AF_INET, SOCK_STREAM, IPPROTO_TCP));
	say("F_GETFL O_NONBLOCK = %d", !!(fcntl(s, F_GETFL) & O_NONBLOCK));
	say("F_GETFD FD_CLOEXEC = %d", !!(fcntl(s, F_GETFD) & FD_CLOEXEC));
	close(s);
	TFD("socket STREAM/UDP", socket(AF_INET, SOCK_STREAM, IPPROTO_UDP));
	s = TFD("socket AF_INET6", socket(AF_INET6, SOCK_STREAM, 0));
	say_int("SO_DOMAIN", s, SOL_SOCKET, SO_DOMAIN);
	say_int("IPV6_V6ONLY default", s, IPPROTO_IPV6, IPV6_V6ONLY);
	set_int("IPV6_V6ONLY", s, IPPROTO_IPV6, IPV6_V6ONLY, 1);
	say_int("IPV6_V6ONLY", s, IPPROTO_IPV6, IPV6_V6ONLY);
	close(s);
}

static void
say_opts(const char *when, int s)
{
	static const struct { int level, name; const char *n; } ints[] = {
	    {SOL_SOCKET, SO_REUSEADDR, "SO_REUSEADDR"},
	    {SOL_SOCKET, SO_REUSEPORT, "SO_REUSEPORT"},
	    {SOL_SOCKET, SO_KEEPALIVE, "SO_KEEPALIVE"},
	    {SOL_SOCKET, SO_RCVLOWAT, "SO_RCVLOWAT"},
	    {SOL_SOCKET, SO_ERROR, "SO_ERROR"},
	    {SOL_SOCKET, SO_ACCEPTCONN, "SO_ACCEPTCONN"},
	    {IPPROTO_TCP, TCP_NODELAY, "TCP_NODELAY"},
	    {IPPROTO_TCP, TCP_CORK, "TCP_CORK"},
	    {IPPROTO_TCP, TCP_KEEPIDLE, "TCP_KEEPIDLE"},
	    {IPPROTO_TCP, TCP_KEEPINTVL, "TCP_KEEPINTVL"},
	    {IPPROTO_TCP, TCP_KEEPCNT, "TCP_KEEPCNT"},
	    {IPPROTO_TCP, TCP_USER_TIMEOUT, "TCP_USER_TIMEOUT"},
	    {IPPROTO_IP, IP_TOS, "IP_TOS"},
	};
	char b[96];
	for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
		snprintf(b, sizeof(b), "%s %s", when, ints[i].n);
		say_int(b, s, ints[i].level, ints[i].name);
	}
	struct linger lg = {-1, -1};
	socklen_t l = sizeof(lg);
	errno = 0;
	int r = getsockopt(s, SOL_SOCKET, SO_LINGER, &lg, &l);
	say("%s SO_LINGER = %d {%d,%d} len %u", when, r, lg.l_onoff,
	    lg.l_linger, l);
	struct timeval tv = {-1, -1};
	l = sizeof(tv);
	r = getsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, &l);
	say("%s SO_RCVTIMEO = %d {%ld,%ld}", when, r, (long)tv.tv_sec,
	    (long)tv.tv_usec);
	l = sizeof(tv);
	r = getsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, &l);
	say("%s SO_SNDTIMEO = %d {%ld,%ld}", when, r, (long)tv.tv_sec,
	    (long)tv.tv_usec);
	char cc[32] = "";
	l = sizeof(cc);
	r = getsockopt(s, IPPROTO_TCP, TCP_CONGESTION, cc, &l);
	say("%s TCP_CONGESTION = %d %s", when, r, r == 0 ? cc : ename(errno));
	struct tcp_info ti;
	memset(&ti, 0, sizeof(ti));
	l = sizeof(ti);
	r = getsockopt(s, IPPROTO_TCP, TCP_INFO, &ti, &l);
	say("%s TCP_INFO = %d state %u len>=104 %d", when, r, ti.tcpi_state,
	    l >= 104);
}

static void
sec_sockopt(void)
{
	say("## setsockopt/getsockopt");
	int s = socket(AF_INET, SOCK_STREAM, 0);
	say_opts("default", s);
	/* Buffer sizes: Linux doubles what it is given. */
	set_int("SO_RCVBUF", s, SOL_SOCKET, SO_RCVBUF, 65536);
	say_int("SO_RCVBUF", s, SOL_SOCKET, SO_RCVBUF);
	set_int("SO_SNDBUF", s, SOL_SOCKET, SO_SNDBUF, 65536);
	say_int("SO_SNDBUF", s, SOL_SOCKET, SO_SNDBUF);
	set_int("SO_REUSEADDR", s, SOL_SOCKET, SO_REUSEADDR, 1);
	set_int("SO_REUSEPORT", s, SOL_SOCKET, SO_REUSEPORT, 1);
	set_int("SO_KEEPALIVE", s, SOL_SOCKET, SO_KEEPALIVE, 1);
	set_int("SO_RCVLOWAT", s, SOL_SOCKET, SO_RCVLOWAT, 10);
	set_int("TCP_NODELAY", s, IPPROTO_TCP, TCP_NODELAY, 1);
	set_int("TCP_CORK", s, IPPROTO_TCP, TCP_CORK, 1);
	set_int("TCP_KEEPIDLE", s, IPPROTO_TCP, TCP_KEEPIDLE, 60);
	set_int("TCP_KEEPINTVL", s, IPPROTO_TCP, TCP_KEEPINTVL, 5);
	set_int("TCP_KEEPCNT", s, IPPROTO_TCP, TCP_KEEPCNT, 3);
	set_int("TCP_USER_TIMEOUT", s, IPPROTO_TCP, TCP_USER_TIMEOUT, 5000);
	set_int("IP_TOS", s, IPPROTO_IP, IP_TOS, 0x10);
	struct linger lg = {1, 5};
	T("SO_LINGER set {1,5}", setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)));
	struct timeval tv = {1, 500000};
	T("SO_RCVTIMEO set", setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)));
	tv.tv_sec = 2;
	T("SO_SNDTIMEO set", setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)));
	T("TCP_CONGESTION set reno",
	  setsockopt(s, IPPROTO_TCP, TCP_CONGESTION, "reno", 4));
	say_opts("after", s);
	/* Errors as Linux gives them. */
	set_int("TCP_KEEPIDLE 0", s, IPPROTO_TCP, TCP_KEEPIDLE, 0);
	set_int("TCP_KEEPCNT -1", s, IPPROTO_TCP, TCP_KEEPCNT, -1);
	set_int("TCP_USER_TIMEOUT -1", s, IPPROTO_TCP, TCP_USER_TIMEOUT, -1);
	T("TCP_CONGESTION set nosuch",
	  setsockopt(s, IPPROTO_TCP, TCP_CONGESTION, "nosuch", 6));
	short sh = 1;
	T("SO_KEEPALIVE optlen 2", setsockopt(s, SOL_SOCKET, SO_KEEPALIVE, &sh, sizeof(sh)));
	set_int("SOL_SOCKET 9999", s, SOL_SOCKET, 9999, 1);
	set_int("IPPROTO_TCP 9999", s, IPPROTO_TCP, 9999, 1);
	say_int("get SOL_SOCKET 9999", s, SOL_SOCKET, 9999);
	set_int("IPV6_V6ONLY on AF_INET", s, IPPROTO_IPV6, IPV6_V6ONLY, 1);
	set_int("SO_ERROR", s, SOL_SOCKET, SO_ERROR, 1);
	T("setsockopt NULL", setsockopt(s, SOL_SOCKET, SO_KEEPALIVE, NULL, 4));
	int v = 0;
	socklen_t l = 0;
	T("getsockopt optlen 0", getsockopt(s, SOL_SOCKET, SO_KEEPALIVE, &v, &l));
	say("  optlen after = %u", l);
	l = 1;
	char c = 9;
	T("getsockopt optlen 1", getsockopt(s, SOL_SOCKET, SO_KEEPALIVE, &c, &l));
	say("  optlen after = %u value %d", l, c);
	/* TCP_MAXSEG on an unconnected socket. */
	say_int("TCP_MAXSEG unconnected", s, IPPROTO_TCP, TCP_MAXSEG);
	set_int("TCP_MAXSEG", s, IPPROTO_TCP, TCP_MAXSEG, 1000);
	say_int("TCP_MAXSEG after set", s, IPPROTO_TCP, TCP_MAXSEG);
	close(s);
	/* A connected socket: options the connection answers. */
	s = dial(P_ECHO);
	say_int("connected SO_ERROR", s, SOL_SOCKET, SO_ERROR);
	int mss = geti(s, IPPROTO_TCP, TCP_MAXSEG);
	/* both paths have MTU 1500 (tests/diff/run) */
	say("connected TCP_MAXSEG = %d", mss);
	write_full(s, "x", 1);
	read_full(s, &c, 1);
	struct tcp_info ti;
	memset(&ti, 0, sizeof(ti));
	l = sizeof(ti);
	T("connected TCP_INFO", getsockopt(s, IPPROTO_TCP, TCP_INFO, &ti, &l));
	say("  state %u retransmits %u rtt>0 %d rto>0 %d cwnd>0 %d "
	    "ssthresh>0 %d",
	    ti.tcpi_state, ti.tcpi_retransmits, ti.tcpi_rtt > 0,
	    ti.tcpi_rto > 0, ti.tcpi_snd_cwnd > 0, ti.tcpi_snd_ssthresh > 0);
	close(s);
}

static void
sec_bind(void)
{
	say("## bind");
	struct sockaddr_in a = sin_of(SELF, 0);
	int s = socket(AF_INET, SOCK_STREAM, 0);
	T("bind port 0", bind(s, (void *)&a, sizeof(a)));
	say_name("port 0", s, false, false);
	T("bind again", bind(s, (void *)&a, sizeof(a)));
	close(s);
	a = sin_of(SELF, 8100);
	int s1 = socket(AF_INET, SOCK_STREAM, 0);
	int s2 = socket(AF_INET, SOCK_STREAM, 0);
	T("bind 8100", bind(s1, (void *)&a, sizeof(a)));
	say_name("fixed", s1, false, true);
	T("bind 8100 again", bind(s2, (void *)&a, sizeof(a)));
	close(s2);
	T("listen 8100", listen(s1, 5));
	s2 = socket(AF_INET, SOCK_STREAM, 0);
	set_int("SO_REUSEADDR", s2, SOL_SOCKET, SO_REUSEADDR, 1);
	T("bind 8100 REUSEADDR while listening", bind(s2, (void *)&a, sizeof(a)));
	close(s2);
	close(s1);
	/* Both with SO_REUSEADDR, neither listening: Linux allows it. */
	a = sin_of(SELF, 8101);
	s1 = socket(AF_INET, SOCK_STREAM, 0);
	s2 = socket(AF_INET, SOCK_STREAM, 0);
	set_int("SO_REUSEADDR 1", s1, SOL_SOCKET, SO_REUSEADDR, 1);
	set_int("SO_REUSEADDR 2", s2, SOL_SOCKET, SO_REUSEADDR, 1);
	T("bind 8101 first", bind(s1, (void *)&a, sizeof(a)));
	T("bind 8101 second", bind(s2, (void *)&a, sizeof(a)));
	close(s1);
	close(s2);
	/* SO_REUSEPORT: two listeners on one port. */
	a = sin_of(SELF, 8102);
	s1 = socket(AF_INET, SOCK_STREAM, 0);
	s2 = socket(AF_INET, SOCK_STREAM, 0);
	set_int("SO_REUSEPORT 1", s1, SOL_SOCKET, SO_REUSEPORT, 1);
	set_int("SO_REUSEPORT 2", s2, SOL_SOCKET, SO_REUSEPORT, 1);
	T("bind 8102 first", bind(s1, (void *)&a, sizeof(a)));
	T("listen first", listen(s1, 5));
	T("bind 8102 second", bind(s2, (void *)&a, sizeof(a)));
	T("listen second", listen(s2, 5));
	close(s1);
	close(s2);
	/* Bad arguments. */
	s = socket(AF_INET, SOCK_STREAM, 0);
	a = sin_of("198.18.0.9", 0);
	T("bind non-local", bind(s, (void *)&a, sizeof(a)));
	a = sin_of(SELF, 0);
	T("bind short len", bind(s, (void *)&a, 8));
	struct sockaddr_in6 a6 = sin6_of("::", 0);
	T("bind AF_INET6 addr on AF_INET", bind(s, (void *)&a6, sizeof(a6)));
	a = sin_of("0.0.0.0", 0);
	T("bind INADDR_ANY", bind(s, (void *)&a, sizeof(a)));
	say_name("any", s, false, false);
	close(s);
	/* Bind before connect: the connection keeps the port. */
	s = socket(AF_INET, SOCK_STREAM, 0);
	a = sin_of(SELF, 8103);
	T("bind 8103", bind(s, (void *)&a, sizeof(a)));
	T("connect after bind", connect_to(s, P_ECHO));
	say_name("bound+connected", s, false, true);
	close(s);
}

static void
sec_connect(void)
{
	say("## connect");
	int s = socket(AF_INET, SOCK_STREAM, 0);
	say_name("fresh", s, false, false);
	say_name("fresh", s, true, true);
	T("connect blocking", connect_to(s, P_ECHO));
	say_name("connected", s, true, true);
	say_name("connected", s, false, false);
	T("connect again", connect_to(s, P_ECHO));
	close(s);

	s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	T("connect nonblocking", connect_to(s, P_ECHO));
	say_poll("nonblocking", s, POLLOUT, 3000);
	say_int("nonblocking SO_ERROR", s, SOL_SOCKET, SO_ERROR);
	T("connect after completion", connect_to(s, P_ECHO));
	say_name("nonblocking", s, true, true);
	close(s);

	s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	T("connect blackhole", connect_to(s, P_BLACKHOLE));
	T("connect blackhole again", connect_to(s, P_BLACKHOLE));
	say_poll("pending", s, POLLIN | POLLOUT, 300);
	say_name("pending", s, true, true);
	say_int("pending TCP_INFO state", s, IPPROTO_TCP, TCP_INFO);
	struct tcp_info ti = {0};
	socklen_t l = sizeof(ti);
	getsockopt(s, IPPROTO_TCP, TCP_INFO, &ti, &l);
	say("pending tcpi_state = %u", ti.tcpi_state);
	T("connect elsewhere while pending", connect_to(s, P_ECHO));
	close(s);

	s = socket(AF_INET, SOCK_STREAM, 0);
	T("connect refused", connect_to(s, P_CLOSED));
	say_int("after refusal SO_ERROR", s, SOL_SOCKET, SO_ERROR);
	T("connect again after refusal", connect_to(s, P_ECHO));
	say_name("after refusal", s, true, true);
	close(s);

	s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	T("connect refused nonblocking", connect_to(s, P_CLOSED));
	say_poll("refused", s, POLLOUT, 3000);
	say_int("refused SO_ERROR", s, SOL_SOCKET, SO_ERROR);
	say_int("refused SO_ERROR again", s, SOL_SOCKET, SO_ERROR);
	char c;
	T("recv after refusal", recv(s, &c, 1, 0));
	close(s);

	s = socket(AF_INET, SOCK_STREAM, 0);
	struct timeval tv = {0, 300000};
	setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	T("connect SO_SNDTIMEO to blackhole", connect_to(s, P_BLACKHOLE));
	T("connect again", connect_to(s, P_BLACKHOLE));
	close(s);

	s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = sin_of(PEER, P_ECHO);
	T("connect short len", connect(s, (void *)&a, 4));
	struct sockaddr_in6 a6 = sin6_of(PEER6, P_ECHO);
	T("connect v6 addr on v4 socket", connect(s, (void *)&a6, sizeof(a6)));
	close(s);

	/* IPv6, and a v4-mapped address on a dual-stack socket. */
	s = socket(AF_INET6, SOCK_STREAM, 0);
	T("connect v6", connect(s, (void *)&a6, sizeof(a6)));
	say_name("v6", s, true, true);
	say_name("v6", s, false, false);
	T("v6 echo send", send(s, "v6", 2, 0));
	char b[8];
	T("v6 echo recv", read_full(s, b, 2));
	close(s);
	s = socket(AF_INET6, SOCK_STREAM, 0);
	a6 = sin6_of("::ffff:" PEER, P_ECHO);
	T("connect v4-mapped", connect(s, (void *)&a6, sizeof(a6)));
	say_name("v4-mapped", s, true, true);
	say_name("v4-mapped", s, false, false);
	close(s);
	s = socket(AF_INET6, SOCK_STREAM, 0);
	set_int("IPV6_V6ONLY", s, IPPROTO_IPV6, IPV6_V6ONLY, 1);
	T("connect v4-mapped on v6only", connect(s, (void *)&a6, sizeof(a6)));
	close(s);
}

static void
sec_listen(void)
{
	say("## listen/accept");
	struct sockaddr_in a = sin_of(SELF, 8200);
	int l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	T("accept unbound", accept(l, NULL, NULL));
	T("bind", bind(l, (void *)&a, sizeof(a)));
	T("listen", listen(l, 16));
	T("listen again", listen(l, 32));
	say_int("SO_ACCEPTCONN", l, SOL_SOCKET, SO_ACCEPTCONN);
	say_name("listener", l, false, true);
	say_name("listener", l, true, true);
	T("accept nothing (nonblocking)", accept(l, NULL, NULL));
	say_poll("listener empty", l, POLLIN | POLLOUT, 0);
	T("connect on listener", connect_to(l, P_ECHO));
	int cb = callback(8200, 3);
	say_poll("listener ready", l, POLLIN, 3000);
	msleep(200);
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int c1 = TFD("accept4 NONBLOCK|CLOEXEC",
		     accept4(l, (void *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC));
	say("  peer %s", addr_str((void *)&ss, sl, false));
	say("  F_GETFL O_NONBLOCK = %d", !!(fcntl(c1, F_GETFL) & O_NONBLOCK));
	say("  F_GETFD FD_CLOEXEC = %d", !!(fcntl(c1, F_GETFD) & FD_CLOEXEC));
	say_name("accepted", c1, false, true);
	say_name("accepted", c1, true, false);
	say_int("accepted SO_ACCEPTCONN", c1, SOL_SOCKET, SO_ACCEPTCONN);
	say_int("accepted SO_TYPE", c1, SOL_SOCKET, SO_TYPE);
	int c2 = TFD("accept NULL addr", accept(l, NULL, NULL));
	say("  F_GETFL O_NONBLOCK = %d", !!(fcntl(c2, F_GETFL) & O_NONBLOCK));
	say("  F_GETFD FD_CLOEXEC = %d", !!(fcntl(c2, F_GETFD) & FD_CLOEXEC));
	sl = 4;
	int c3 = TFD("accept short addrlen", accept(l, (void *)&ss, &sl));
	say("  addrlen after = %u", sl);
	T("accept4 bad flags", accept4(l, NULL, NULL, 0x1234));
	char b[16] = "";
	poll1(c1, POLLIN, 3000);
	T("read accepted", read_full(c1, b, 3));
	say("  data %.3s", b);
	T("listen on accepted", listen(c1, 1));
	close(c1);
	close(c2);
	close(c3);
	if (cb >= 0)
		close(cb);
	close(l);
	/* A listener bound to nothing gets a port on listen. */
	l = socket(AF_INET, SOCK_STREAM, 0);
	T("listen unbound", listen(l, 1));
	say_name("autobound", l, false, false);
	close(l);
	/* A listener on INADDR_ANY. */
	l = socket(AF_INET, SOCK_STREAM, 0);
	a = sin_of("0.0.0.0", 8201);
	T("bind any:8201", bind(l, (void *)&a, sizeof(a)));
	T("listen", listen(l, 4));
	cb = callback(8201, 1);
	sl = sizeof(ss);
	c1 = TFD("accept on any", accept(l, (void *)&ss, &sl));
	say_name("accepted on any", c1, false, true);
	close(c1);
	close(cb);
	close(l);
	/* Blocking accept woken by a connection. */
}

static void
sec_io(void)
{
	say("## send/recv");
	char b[20000], c[20000];
	int s = dial(P_ECHO);
	T("send", send(s, "abc", 3, 0));
	say_poll("echoed", s, POLLIN, 3000);
	msleep(100);
	int n = -1;
	T("FIONREAD", ioctl(s, FIONREAD, &n));
	say("  = %d", n);
	T("SIOCINQ", ioctl(s, SIOCINQ, &n));
	say("  = %d", n);
	T("recv PEEK", recv(s, b, 10, MSG_PEEK));
	T("recv", recv(s, b, 10, 0));
	T("recv DONTWAIT empty", recv(s, b, 10, MSG_DONTWAIT));
	T("SIOCOUTQ", ioctl(s, SIOCOUTQ, &n));
	say("  = %d", n);
	/* MSG_MORE then a plain send: one echo. */
	T("send MORE", send(s, "ab", 2, MSG_MORE));
	T("send", send(s, "c", 1, 0));
	T("recv WAITALL 3", recv(s, b, 3, MSG_WAITALL));
	for (int i = 0; i < (int)sizeof(b); i++)
		b[i] = i * 7;
	T("write 20000", write_full(s, b, sizeof(b)));
	T("recv WAITALL 20000", recv(s, c, sizeof(c), MSG_WAITALL));
	say("  intact %d", memcmp(b, c, sizeof(b)) == 0);
	/* sendto/recvfrom */
	struct sockaddr_in a = sin_of(PEER, 9);
	T("sendto with addr", sendto(s, "d", 1, 0, (void *)&a, sizeof(a)));
	T("sendto NULL", sendto(s, "e", 1, 0, NULL, 0));
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	socklen_t sl = sizeof(ss);
	T("recvfrom WAITALL", recvfrom(s, c, 2, MSG_WAITALL, (void *)&ss, &sl));
	say("  addrlen after = %u family %d", sl, ss.ss_family);
	/* sendmsg/recvmsg, readv/writev */
	struct iovec iov[2] = {{"12", 2}, {"345", 3}};
	struct msghdr m = {.msg_iov = iov, .msg_iovlen = 2};
	T("sendmsg", sendmsg(s, &m, 0));
	char r1[2], r2[10];
	struct iovec riov[2] = {{r1, 2}, {r2, 3}};
	struct msghdr rm = {.msg_iov = riov, .msg_iovlen = 2};
	char ctl[64];
	rm.msg_control = ctl;
	rm.msg_controllen = sizeof(ctl);
	rm.msg_name = &ss;
	rm.msg_namelen = sizeof(ss);
	T("recvmsg WAITALL", recvmsg(s, &rm, MSG_WAITALL));
	say("  namelen %u controllen %zu flags %d data %.2s%.3s", rm.msg_namelen,
	    (size_t)rm.msg_controllen, rm.msg_flags, r1, r2);
	T("writev", writev(s, iov, 2));
	msleep(100);
	T("readv", readv(s, riov, 2));
	T("sendmsg with name", ({
		  struct msghdr m2 = m;
		  m2.msg_name = &a;
		  m2.msg_namelen = sizeof(a);
		  sendmsg(s, &m2, 0);
	  }));
	T("recv WAITALL 5", recv(s, c, 5, MSG_WAITALL));
	T("send OOB", send(s, "o", 1, MSG_OOB));
	msleep(100);
	T("recv (after OOB)", recv(s, c, 10, MSG_DONTWAIT));
	T("recv OOB", recv(s, c, 1, MSG_OOB | MSG_DONTWAIT));
	T("send 0 bytes", send(s, b, 0, 0));
	T("recv 0 bytes", recv(s, c, 0, MSG_DONTWAIT));
	T("recv bad flag", recv(s, c, 1, MSG_DONTWAIT | MSG_ERRQUEUE));
	/* Blocking mode through FIONBIO and fcntl. */
	int on = 1;
	T("FIONBIO 1", ioctl(s, FIONBIO, &on));
	say("  F_GETFL O_NONBLOCK = %d", !!(fcntl(s, F_GETFL) & O_NONBLOCK));
	T("recv nonblocking", recv(s, c, 1, 0));
	T("read nonblocking", read(s, c, 1));
	on = 0;
	T("FIONBIO 0", ioctl(s, FIONBIO, &on));
	say("  F_GETFL O_NONBLOCK = %d", !!(fcntl(s, F_GETFL) & O_NONBLOCK));
	T("F_SETFL O_NONBLOCK", fcntl(s, F_SETFL, fcntl(s, F_GETFL) | O_NONBLOCK));
	T("recv via fcntl", recv(s, c, 1, 0));
	T("F_SETFL 0", fcntl(s, F_SETFL, fcntl(s, F_GETFL) & ~O_NONBLOCK));
	struct timeval tv = {0, 200000};
	setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	T("recv SO_RCVTIMEO", recv(s, c, 1, 0));
	/* SO_RCVLOWAT: poll waits for that many bytes. */
	int lw = 4;
	setsockopt(s, SOL_SOCKET, SO_RCVLOWAT, &lw, sizeof(lw));
	send(s, "xy", 2, 0);
	say_poll("below RCVLOWAT", s, POLLIN, 300);
	send(s, "zw", 2, 0);
	say_poll("at RCVLOWAT", s, POLLIN, 3000);
	T("recv", recv(s, c, 10, 0));
	T("ioctl unknown", ioctl(s, 0x89ff, &n));
	close(s);
}

static void
sec_shutdown(void)
{
	say("## shutdown");
	char c[16];
	int s = socket(AF_INET, SOCK_STREAM, 0);
	T("shutdown unconnected", shutdown(s, SHUT_RDWR));
	close(s);
	s = dial(P_ECHO);
	T("shutdown bad how", shutdown(s, 7));
	send(s, "q", 1, 0);
	T("shutdown WR", shutdown(s, SHUT_WR));
	T("send after SHUT_WR NOSIGNAL", send(s, "x", 1, MSG_NOSIGNAL));
	say("  sigpipes %d", (int)sigpipes);
	T("send after SHUT_WR", send(s, "x", 1, 0));
	say("  sigpipes %d", (int)sigpipes);
	T("read echo", read_full(s, c, 1));
	poll1(s, POLLRDHUP, 3000);
	say_poll("peer closed too", s, POLLIN | POLLOUT | POLLRDHUP, 3000);
	T("read EOF", read(s, c, 1));
	T("shutdown WR when closed", shutdown(s, SHUT_WR));
	T("shutdown RD when closed", shutdown(s, SHUT_RD));
	say_name("after shutdown", s, true, true);
	close(s);
	sigpipes = 0;

	s = dial(P_ECHO);
	T("shutdown RD", shutdown(s, SHUT_RD));
	say_poll("after SHUT_RD", s, POLLIN | POLLOUT | POLLRDHUP, 0);
	T("recv after SHUT_RD", recv(s, c, 1, MSG_DONTWAIT));
	T("send after SHUT_RD", send(s, "x", 1, 0));
	T("shutdown RDWR", shutdown(s, SHUT_RDWR));
	say_poll("after SHUT_RDWR", s, POLLIN | POLLOUT | POLLRDHUP, 3000);
	T("send after RDWR NOSIGNAL", send(s, "x", 1, MSG_NOSIGNAL));
	close(s);
}

static void
sec_errors(void)
{
	say("## peer close and reset");
	char c[16];
	int s = dial(P_GREET);
	T("read greeting", read_full(s, c, 6));
	poll1(s, POLLRDHUP, 3000);
	say_poll("greeted", s, POLLIN | POLLOUT | POLLRDHUP, 3000);
	T("read EOF", read(s, c, 1));
	T("send after peer FIN", send(s, "x", 1, MSG_NOSIGNAL));
	msleep(300);
	say_poll("after RST", s, POLLIN | POLLOUT | POLLRDHUP, 0);
	T("send after RST NOSIGNAL", send(s, "x", 1, MSG_NOSIGNAL));
	say("  sigpipes %d", (int)sigpipes);
	T("send after RST", send(s, "x", 1, 0));
	say("  sigpipes %d", (int)sigpipes);
	T("write after RST", write(s, "x", 1));
	say("  sigpipes %d", (int)sigpipes);
	T("read after RST", read(s, c, 1));
	say_int("SO_ERROR", s, SOL_SOCKET, SO_ERROR);
	close(s);
	sigpipes = 0;

	s = dial(P_RESET);
	say_poll("reset", s, POLLIN, 3000);
	msleep(100);
	say_poll("reset", s, POLLIN | POLLOUT | POLLRDHUP, 0);
	say_int("reset SO_ERROR", s, SOL_SOCKET, SO_ERROR);
	T("recv after RST", recv(s, c, 1, 0));
	T("recv again", recv(s, c, 1, 0));
	T("send NOSIGNAL", send(s, "x", 1, MSG_NOSIGNAL));
	say("  sigpipes %d", (int)sigpipes);
	close(s);
	sigpipes = 0;

	s = dial(P_RESET);
	say_poll("reset", s, POLLIN, 3000);
	msleep(100);
	T("read after RST", read(s, c, 1));
	close(s);
	s = dial(P_RESET);
	say_poll("reset", s, POLLIN, 3000);
	msleep(100);
	struct iovec iov = {c, 1};
	T("readv after RST", readv(s, &iov, 1));
	close(s);
	s = dial(P_RESET);
	say_poll("reset", s, POLLIN, 3000);
	msleep(100);
	T("send after RST (no recv)", send(s, "x", 1, MSG_NOSIGNAL));
	close(s);
}

static void
sec_close(void)
{
	say("## close");
	static char big[200000];
	memset(big, 'z', sizeof(big));
	/* Graceful: unsent data still arrives, then FIN. */
	int s = dial(P_COUNT);
	T("write 200000", write_full(s, big, sizeof(big)));
	T("close with unsent data", close(s));
	say_last("graceful");
	/* SO_LINGER {1,0}: RST, the data discarded. */
	s = dial(P_COUNT);
	write_full(s, "abc", 3);
	msleep(200);
	struct linger lg = {1, 0};
	setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	T("close linger 0", close(s));
	say_last("linger 0");
	/* SO_LINGER {1,2}: close waits until the data is acked. */
	s = dial(P_COUNT);
	lg.l_linger = 2;
	setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	T("write 200000", write_full(s, big, sizeof(big)));
	T("close linger 2", close(s));
	say_last("linger 2");
	/* shutdown then close */
	s = dial(P_COUNT);
	write_full(s, big, 1000);
	T("shutdown WR", shutdown(s, SHUT_WR));
	T("close", close(s));
	say_last("shutdown+close");
	T("close again", close(s));
	T("close -1", close(-1));
}

static void
sec_poll(void)
{
	say("## poll/select/epoll");
	char c[64];
	int s = dial(P_ECHO);
	say_poll("idle", s, POLLIN | POLLOUT | POLLRDHUP | POLLPRI, 0);
	say_poll("idle IN only", s, POLLIN, 0);
	send(s, "ab", 2, 0);
	say_poll("data", s, POLLIN, 3000);
	msleep(100);
	say_poll("data", s, POLLIN | POLLOUT, 0);
	fd_set r, w, e;
	FD_ZERO(&r);
	FD_ZERO(&w);
	FD_ZERO(&e);
	FD_SET(s, &r);
	FD_SET(s, &w);
	FD_SET(s, &e);
	struct timeval tv = {0, 0};
	T("select", select(s + 1, &r, &w, &e, &tv));
	say("  r %d w %d e %d", FD_ISSET(s, &r), FD_ISSET(s, &w), FD_ISSET(s, &e));

	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = {.events = EPOLLIN, .data.u32 = 1}, out[4];
	T("epoll_ctl ADD LT", epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev));
	T("epoll_wait LT", epoll_wait(ep, out, 4, 0));
	say("  events %s", pmask(out[0].events));
	T("epoll_wait LT again", epoll_wait(ep, out, 4, 0));
	ev.events = EPOLLIN | EPOLLET | EPOLLOUT;
	T("epoll_ctl MOD ET", epoll_ctl(ep, EPOLL_CTL_MOD, s, &ev));
	T("epoll_wait ET", epoll_wait(ep, out, 4, 0));
	say("  events %s", pmask(out[0].events));
	T("epoll_wait ET again", epoll_wait(ep, out, 4, 0));
	send(s, "c", 1, 0);
	T("epoll_wait ET new data", epoll_wait(ep, out, 4, 3000));
	say("  events %s", pmask(out[0].events));
	msleep(100);
	T("recv all", recv(s, c, sizeof(c), 0));
	T("epoll_wait ET drained", epoll_wait(ep, out, 4, 0));
	shutdown(s, SHUT_WR);
	T("epoll_wait ET peer FIN", epoll_wait(ep, out, 4, 3000));
	msleep(100);
	epoll_wait(ep, out, 4, 0);
	ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP;
	epoll_ctl(ep, EPOLL_CTL_MOD, s, &ev);
	T("epoll_wait after FIN", epoll_wait(ep, out, 4, 0));
	say("  events %s", pmask(out[0].events));
	T("epoll_ctl DEL", epoll_ctl(ep, EPOLL_CTL_DEL, s, NULL));
	close(s);
	close(ep);

	/* A pending connect in epoll: EPOLLOUT when it completes. */
	s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	connect_to(s, P_ECHO);
	ep = epoll_create1(0);
	ev.events = EPOLLOUT | EPOLLET;
	epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev);
	T("epoll_wait connect", epoll_wait(ep, out, 4, 3000));
	say("  events %s", pmask(out[0].events));
	close(s);
	close(ep);
}

static void
sec_sendfile(void)
{
	say("## sendfile/splice");
	char path[] = "/tmp/utcp-surface.XXXXXX";
	int f = mkstemp(path);
	unlink(path);
	static char b[100000], c[100000];
	for (size_t i = 0; i < sizeof(b); i++)
		b[i] = (char)(i * 13 + 1);
	write_full(f, b, sizeof(b));
	int s = dial(P_ECHO);
	off_t off = 0;
	/* The echo runs in parallel, so the socket buffers never fill. */
	pid_t kid = fork();
	if (kid == 0) {
		ssize_t n = read_full(s, c, sizeof(c));
		_exit(n == (ssize_t)sizeof(c) && memcmp(b, c, sizeof(b)) == 0 ? 0 : 1);
	}
	long total = 0;
	while (total < (long)sizeof(b)) {
		ssize_t n = sendfile(s, f, &off, sizeof(b) - total);
		if (n <= 0)
			break;
		total += n;
	}
	say("sendfile total = %ld", total);
	int st = -1;
	waitpid(kid, &st, 0);
	say("echoed back intact = %d", WIFEXITED(st) && WEXITSTATUS(st) == 0);
	/* splice: pipe → socket, socket → pipe */
	int p[2];
	if (pipe(p) < 0)
		return;
	write_full(p[1], "splice!", 7);
	T("splice pipe→socket", splice(p[0], NULL, s, NULL, 7, 0));
	say_poll("spliced", s, POLLIN, 3000);
	msleep(100);
	T("splice socket→pipe", splice(s, NULL, p[1], NULL, 64, 0));
	memset(c, 0, 16);
	T("read pipe", read(p[0], c, 16));
	say("  data %s", c);
	close(p[0]);
	close(p[1]);
	close(s);
	close(f);
}

static void
sec_dup(void)
{
	say("## dup");
	char c[8];
	int s = dial(P_ECHO);
	int d = TFD("dup", dup(s));
	say_name("dup", d, true, true);
	say_int("dup SO_TYPE", d, SOL_SOCKET, SO_TYPE);
	T("close original", close(s));
	T("send via dup", send(d, "a", 1, 0));
	T("recv via dup", recv(d, c, 1, 0));
	int hi = TFD("dup2 to 200", dup2(d, 200));
	say("  is 200 = %d", hi == 200);
	say_name("dup2", 200, true, true);
	T("dup2 onto itself", dup2(200, 200));
	int d3 = TFD("dup3 CLOEXEC to 201", dup3(200, 201, O_CLOEXEC));
	say("  FD_CLOEXEC = %d", !!(fcntl(201, F_GETFD) & FD_CLOEXEC));
	T("dup3 onto itself", dup3(201, 201, 0));
	int fd = TFD("F_DUPFD 300", fcntl(d, F_DUPFD, 300));
	say("  >= 300 = %d", fd >= 300);
	int fdc = TFD("F_DUPFD_CLOEXEC", fcntl(d, F_DUPFD_CLOEXEC, 0));
	say("  FD_CLOEXEC = %d", !!(fcntl(fdc, F_GETFD) & FD_CLOEXEC));
	say_name("F_DUPFD", fd, true, true);
	/* shutdown through one descriptor is seen by all. */
	T("shutdown WR via dup3", shutdown(d3, SHUT_WR));
	say_poll("EOF via F_DUPFD", fd, POLLIN | POLLRDHUP, 3000);
	T("read EOF via 200", read(200, c, 1));
	/* dup2 over a socket closes it (and its engine socket). */
	int s2 = dial(P_ECHO);
	int devnull = open("/dev/null", O_RDONLY);
	T("dup2 /dev/null over socket is s2", dup2(devnull, s2) == s2);
	T("getpeername on replaced", getpeername(s2, NULL, NULL));
	close(devnull);
	close(s2);
	close(d);
	close(200);
	close(201);
	close(fd);
	close(fdc);
}

static void
sec_fork(void)
{
	say("## fork");
	char c[16];
	int s = dial(P_ECHO);
	fflush(stdout);
	pid_t kid = fork();
	if (kid == 0) {
		int ok = send(s, "kid", 3, 0) == 3;
		struct sockaddr_in a;
		socklen_t l = sizeof(a);
		ok = ok && getpeername(s, (void *)&a, &l) == 0 &&
		     ntohs(a.sin_port) == P_ECHO;
		ok = ok && geti(s, SOL_SOCKET, SO_TYPE) == SOCK_STREAM;
		close(s);
		_exit(ok ? 0 : 1);
	}
	int st;
	waitpid(kid, &st, 0);
	say("child used the socket = %d", WIFEXITED(st) && WEXITSTATUS(st) == 0);
	T("parent reads child's echo", read_full(s, c, 3));
	T("parent sends", send(s, "par", 3, 0));
	T("parent reads", read_full(s, c, 3));
	say_name("parent after child closed", s, true, true);
	/* The child shuts the socket down: the parent sees it. */
	fflush(stdout);
	kid = fork();
	if (kid == 0) {
		shutdown(s, SHUT_WR);
		_exit(0);
	}
	waitpid(kid, &st, 0);
	say_poll("after child's shutdown", s, POLLIN | POLLRDHUP, 3000);
	T("read EOF", read(s, c, 1));
	close(s);
}

static int
exec_child(int fd)
{
	say("exec-child: fd inherited");
	say_name("exec-child", fd, true, true);
	say_name("exec-child", fd, false, false);
	say_int("exec-child SO_TYPE", fd, SOL_SOCKET, SO_TYPE);
	say_int("exec-child SO_KEEPALIVE", fd, SOL_SOCKET, SO_KEEPALIVE);
	say_int("exec-child TCP_NODELAY", fd, IPPROTO_TCP, TCP_NODELAY);
	struct tcp_info ti = {0};
	socklen_t l = sizeof(ti);
	T("exec-child TCP_INFO", getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &l));
	say("  state %u", ti.tcpi_state);
	char c[8];
	T("exec-child send", send(fd, "exe", 3, 0));
	T("exec-child read", read_full(fd, c, 3));
	T("exec-child shutdown WR", shutdown(fd, SHUT_WR));
	T("exec-child read EOF", read(fd, c, 1));
	T("exec-child close", close(fd));
	return 0;
}

static void
sec_exec(void)
{
	say("## exec");
	int s = dial(P_ECHO);
	int one = 1;
	setsockopt(s, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	int fd = fcntl(s, F_DUPFD, 100); /* a fixed number to pass along */
	close(s);
	fflush(stdout);
	pid_t kid = fork();
	if (kid == 0) {
		char arg[16];
		snprintf(arg, sizeof(arg), "%d", fd);
		execl("/proc/self/exe", "surface", "exec-child", arg, (char *)NULL);
		_exit(127);
	}
	int st;
	waitpid(kid, &st, 0);
	say("exec-child exited %d", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	close(fd);
	/* CLOEXEC sockets do not survive exec. */
	s = dial(P_ECHO);
	fd = fcntl(s, F_DUPFD_CLOEXEC, 100);
	close(s);
	fflush(stdout);
	kid = fork();
	if (kid == 0) {
		char arg[16];
		snprintf(arg, sizeof(arg), "%d", fd);
		execl("/bin/sh", "sh", "-c",
		      "if [ -e /proc/self/fd/$0 ]; then echo 'cloexec fd: open'; "
		      "else echo 'cloexec fd: closed'; fi",
		      arg, (char *)NULL);
		_exit(127);
	}
	waitpid(kid, &st, 0);
	close(fd);
}

static void
sec_scm_rights(void)
{
	say("## SCM_RIGHTS");
	int sp[2];
	socketpair(AF_UNIX, SOCK_STREAM, 0, sp);
	int s = dial(P_ECHO);
	char cbuf[CMSG_SPACE(sizeof(int))];
	memset(cbuf, 0, sizeof(cbuf));
	struct iovec iov = {"F", 1};
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1,
			   .msg_control = cbuf, .msg_controllen = sizeof(cbuf)};
	struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &s, sizeof(int));
	fflush(stdout);
	pid_t kid = fork();
	if (kid == 0) {
		close(sp[0]);
		close(s);
		char c[8];
		char rbuf[CMSG_SPACE(sizeof(int))];
		struct iovec riov = {c, 1};
		struct msghdr rm = {.msg_iov = &riov, .msg_iovlen = 1,
				    .msg_control = rbuf,
				    .msg_controllen = sizeof(rbuf)};
		T("child recvmsg", recvmsg(sp[1], &rm, 0));
		struct cmsghdr *rc = CMSG_FIRSTHDR(&rm);
		int fd = -1;
		if (rc != NULL && rc->cmsg_type == SCM_RIGHTS)
			memcpy(&fd, CMSG_DATA(rc), sizeof(int));
		say("child got an fd = %d", fd >= 0);
		say_name("passed", fd, true, true);
		say_int("passed SO_TYPE", fd, SOL_SOCKET, SO_TYPE);
		T("passed send", send(fd, "scm", 3, 0));
		T("passed read", read_full(fd, c, 3));
		T("passed shutdown WR", shutdown(fd, SHUT_WR));
		T("passed read EOF", read(fd, c, 1));
		_exit(0);
	}
	close(sp[1]);
	T("sendmsg SCM_RIGHTS", sendmsg(sp[0], &m, 0));
	/* Closed while the child uses its copy; said after the child is
	 * done, so the two processes' lines come in one order. */
	errno = 0;
	int closed = close(s), cerr = errno, st;
	waitpid(kid, &st, 0);
	res("close sent socket", closed, cerr);
	close(sp[0]);
}

#define NTHREADS 8
#define NCONN 25
static void *
thread_main(void *arg)
{
	long ok = 0;
	(void)arg;
	for (int i = 0; i < NCONN; i++) {
		int s = socket(AF_INET, SOCK_STREAM, 0);
		if (s < 0)
			continue;
		char c[4];
		if (connect_to(s, P_ECHO) == 0 && send(s, "thr", 3, 0) == 3 &&
		    read_full(s, c, 3) == 3 && memcmp(c, "thr", 3) == 0)
			ok++;
		close(s);
	}
	return (void *)ok;
}

static void
sec_threads(void)
{
	say("## threads");
	pthread_t t[NTHREADS];
	for (int i = 0; i < NTHREADS; i++)
		pthread_create(&t[i], NULL, thread_main, NULL);
	long total = 0;
	for (int i = 0; i < NTHREADS; i++) {
		void *r;
		pthread_join(t[i], &r);
		total += (long)r;
	}
	say("threads: %ld of %d round trips", total, NTHREADS * NCONN);
}

/* --- the peer: kernel-side servers --- */

static pthread_mutex_t last_lock = PTHREAD_MUTEX_INITIALIZER;
static char last[64] = "nothing";

static int
peer_listen(int family, int port)
{
	int s = socket(family, SOCK_STREAM, 0), one = 1, zero = 0;
	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (family == AF_INET6) {
		setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
		struct sockaddr_in6 a = sin6_of("::", port);
		if (bind(s, (void *)&a, sizeof(a)) < 0)
			goto fail;
	} else {
		struct sockaddr_in a = sin_of(PEER, port);
		if (bind(s, (void *)&a, sizeof(a)) < 0)
			goto fail;
	}
	listen(s, 128);
	return s;
fail:
	fprintf(stderr, "peer: bind %d: %s\n", port, strerror(errno));
	exit(1);
}

struct conn { int fd, port; };

static void *
peer_conn(void *arg)
{
	struct conn *c = arg;
	int fd = c->fd;
	char b[65536];
	ssize_t n;
	switch (c->port) {
	case P_ECHO:
		while ((n = read(fd, b, sizeof(b))) > 0)
			if (write_full(fd, b, n) < 0)
				break;
		break;
	case P_GREET:
		write_full(fd, "hello\n", 6);
		break;
	case P_RESET: {
		struct linger lg = {1, 0};
		/* after the client's connect() has surely returned */
		usleep(50000);
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		break;
	}
	case P_BURST:
		memset(b, 'b', sizeof(b));
		write_full(fd, b, sizeof(b));
		break;
	case P_COUNT: {
		long total = 0;
		const char *how = "eof";
		for (;;) {
			n = read(fd, b, sizeof(b));
			if (n > 0) {
				total += n;
				continue;
			}
			if (n < 0)
				how = errno == ECONNRESET ? "reset" : ename(errno);
			break;
		}
		pthread_mutex_lock(&last_lock);
		snprintf(last, sizeof(last), "%ld %s", total, how);
		pthread_mutex_unlock(&last_lock);
		break;
	}
	case P_LAST:
		pthread_mutex_lock(&last_lock);
		n = snprintf(b, sizeof(b), "%s\n", last);
		pthread_mutex_unlock(&last_lock);
		write_full(fd, b, n);
		break;
	case P_CALLBACK: {
		int port = 0, count = 0;
		n = read(fd, b, sizeof(b) - 1);
		b[n > 0 ? n : 0] = 0;
		sscanf(b, "%d %d", &port, &count);
		int out[16];
		count = count > 16 ? 16 : count;
		for (int i = 0; i < count; i++) {
			out[i] = socket(AF_INET, SOCK_STREAM, 0);
			struct sockaddr_in a = sin_of(SELF, port);
			if (connect(out[i], (void *)&a, sizeof(a)) == 0)
				write_full(out[i], "hi\n", 3);
		}
		/* Hold them until the client hangs up. */
		while (read(fd, b, sizeof(b)) > 0)
			;
		for (int i = 0; i < count; i++)
			close(out[i]);
		break;
	}
	}
	close(fd);
	free(c);
	return NULL;
}

struct lsn { int fd, port; };

static void *
peer_accept(void *arg)
{
	struct lsn *l = arg;
	for (;;) {
		int fd = accept(l->fd, NULL, NULL);
		if (fd < 0)
			continue;
		struct conn *c = malloc(sizeof(*c));
		c->fd = fd;
		c->port = l->port;
		pthread_t t;
		pthread_create(&t, NULL, peer_conn, c);
		pthread_detach(t);
	}
	return NULL;
}

static int
peer_main(void)
{
	static const int ports[] = {P_ECHO, P_GREET, P_RESET, P_BURST,
				    P_COUNT, P_LAST, P_CALLBACK};
	signal(SIGPIPE, SIG_IGN);
	for (size_t i = 0; i < sizeof(ports) / sizeof(ports[0]); i++) {
		struct lsn *l = malloc(sizeof(*l));
		l->port = ports[i];
		l->fd = peer_listen(ports[i] == P_ECHO ? AF_INET6 : AF_INET,
				    ports[i]);
		pthread_t t;
		pthread_create(&t, NULL, peer_accept, l);
		pthread_detach(t);
	}
	/* Blackholed port: listening, but nftables drops its SYNs. */
	peer_listen(AF_INET, P_BLACKHOLE);
	printf("peers up\n");
	fflush(stdout);
	for (;;)
		pause();
	return 0;
}

int
main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc > 1 && strcmp(argv[1], "peer") == 0)
		return peer_main();
	if (argc > 2 && strcmp(argv[1], "exec-child") == 0)
		return exec_child(atoi(argv[2]));
	signal(SIGPIPE, on_pipe);
	static const struct { const char *name; void (*fn)(void); } secs[] = {
	    {"socket", sec_socket},     {"sockopt", sec_sockopt},
	    {"bind", sec_bind},         {"connect", sec_connect},
	    {"listen", sec_listen},     {"io", sec_io},
	    {"shutdown", sec_shutdown}, {"errors", sec_errors},
	    {"close", sec_close},       {"poll", sec_poll},
	    {"sendfile", sec_sendfile}, {"dup", sec_dup},
	    {"fork", sec_fork},         {"exec", sec_exec},
	    {"scm", sec_scm_rights},    {"threads", sec_threads},
	};
	for (size_t i = 0; i < sizeof(secs) / sizeof(secs[0]); i++) {
		if (argc > 1 && strcmp(argv[1], secs[i].name) != 0)
			continue;
		secs[i].fn();
		sigpipes = 0;
	}
	say("## end");
	return 0;
}
