/*
 * behaviour.c — what a program sees of its TCP sockets under libutcp.so,
 * checked against Linux's answers (the same binary passes without the
 * preload). Run by preload/tests/run under LD_PRELOAD, with peer.py's
 * kernel-side servers on 198.18.0.1 and the engine (or fake_utcpd.py) on
 * 198.18.0.2. Built with -D_FORTIFY_SOURCE=2 so __read_chk and friends are
 * exercised.
 *
 *   behaviour            every test but t_closefrom
 *   behaviour TEST       one test (t_closefrom only this way: it closes
 *                        every fd above 2)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/sockios.h>

static int fails, passes;
#define CHECK(c, ...)                                                          \
	do {                                                                   \
		if (c) {                                                       \
			passes++;                                              \
		} else {                                                       \
			fails++;                                               \
			printf("FAIL %s:%d: %s — ", __func__, __LINE__, #c);   \
			printf(__VA_ARGS__);                                   \
			printf(" (errno %s)\n", strerror(errno));              \
		}                                                              \
	} while (0)

static const char *peer = "198.18.0.1";
static volatile sig_atomic_t sigpipes;
static void on_pipe(int s) { (void)s; sigpipes++; }

static struct sockaddr_in
sin_of(const char *ip, int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	inet_pton(AF_INET, ip, &a.sin_addr);
	return a;
}

static double
now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

static int
tcp_to(int port, int flags)
{
	struct sockaddr_in a = sin_of(peer, port);
	int s = socket(AF_INET, SOCK_STREAM | flags, 0);
	if (s < 0)
		return -1;
	if (connect(s, (void *)&a, sizeof(a)) < 0 && errno != EINPROGRESS) {
		int e = errno;
		close(s);
		errno = e;
		return -1;
	}
	return s;
}

static void
t_blocking(void)
{
	int s = tcp_to(9001, 0), v;
	char buf[64];
	socklen_t l = sizeof(v);
	struct sockaddr_in a;

	CHECK(s >= 0, "blocking connect to echo");
	CHECK(write(s, "ping", 4) == 4, "write");
	CHECK(read(s, buf, sizeof(buf)) == 4 && memcmp(buf, "ping", 4) == 0, "echo");
	CHECK(getsockopt(s, SOL_SOCKET, SO_TYPE, &v, &l) == 0 && v == SOCK_STREAM, "SO_TYPE %d", v);
	CHECK(getsockopt(s, SOL_SOCKET, SO_DOMAIN, &v, &l) == 0 && v == AF_INET, "SO_DOMAIN %d", v);
	CHECK(getsockopt(s, SOL_SOCKET, SO_PROTOCOL, &v, &l) == 0 && v == IPPROTO_TCP, "SO_PROTOCOL %d", v);
	CHECK(getsockopt(s, SOL_SOCKET, SO_ERROR, &v, &l) == 0 && v == 0, "SO_ERROR %d", v);
	v = 1;
	CHECK(setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &v, sizeof(v)) == 0, "TCP_NODELAY");
	l = sizeof(a);
	CHECK(getpeername(s, (void *)&a, &l) == 0 && l == sizeof(a) && a.sin_port == htons(9001), "getpeername");
	l = sizeof(a);
	CHECK(getsockname(s, (void *)&a, &l) == 0 && a.sin_family == AF_INET && a.sin_port != 0, "getsockname");
	l = 4; /* truncation reports the full length */
	CHECK(getpeername(s, (void *)&a, &l) == 0 && l == sizeof(a), "truncated getpeername %u", l);
	struct sockaddr_in from;
	l = sizeof(from);
	CHECK(sendto(s, "x", 1, 0, (void *)&a, sizeof(a)) == 1, "sendto with address on TCP");
	CHECK(recvfrom(s, buf, 1, 0, (void *)&from, &l) == 1 && l == 0, "recvfrom names nobody (%u)", l);
	CHECK(connect(s, (void *)&a, sizeof(a)) < 0 && errno == EISCONN, "connect again: EISCONN");
	shutdown(s, SHUT_WR);
	CHECK(read(s, buf, sizeof(buf)) == 0, "EOF after our FIN (echo closes)");
	CHECK(close(s) == 0, "close");
}

static void
t_refused(void)
{
	double t0 = now();
	int s = tcp_to(9004, 0);
	CHECK(s < 0 && errno == ECONNREFUSED, "refused port");
	CHECK(now() - t0 < 0.5, "fast: %.3fs", now() - t0);
}

static void
t_nonblocking(void)
{
	int s = tcp_to(9001, SOCK_NONBLOCK), v = -1;
	socklen_t l = sizeof(v);
	struct sockaddr_in a = sin_of(peer, 9001);
	struct pollfd p = { .fd = s, .events = POLLOUT };

	CHECK(s >= 0 && errno == EINPROGRESS, "nonblocking connect: EINPROGRESS");
	CHECK(fcntl(s, F_GETFL) & O_NONBLOCK, "O_NONBLOCK");
	CHECK(poll(&p, 1, 2000) == 1 && (p.revents & POLLOUT), "POLLOUT when connected");
	CHECK(getsockopt(s, SOL_SOCKET, SO_ERROR, &v, &l) == 0 && v == 0, "SO_ERROR 0");
	CHECK(connect(s, (void *)&a, sizeof(a)) == 0, "2nd connect after success: 0");
	CHECK(connect(s, (void *)&a, sizeof(a)) < 0 && errno == EISCONN, "3rd: EISCONN");
	char buf[8];
	CHECK(read(s, buf, 8) < 0 && errno == EAGAIN, "nonblocking read: EAGAIN");
	close(s);

	/* refused, non-blocking */
	s = tcp_to(9004, SOCK_NONBLOCK);
	p.fd = s;
	CHECK(s >= 0, "nonblocking connect to closed port");
	CHECK(poll(&p, 1, 2000) == 1, "poll wakes");
	l = sizeof(v);
	CHECK(getsockopt(s, SOL_SOCKET, SO_ERROR, &v, &l) == 0 && v == ECONNREFUSED, "SO_ERROR ECONNREFUSED (%d)", v);
	close(s);

	/* EALREADY while in progress: a silent unroutable destination */
	struct sockaddr_in far = sin_of("198.18.0.77", 80);
	s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	CHECK(connect(s, (void *)&far, sizeof(far)) < 0 && errno == EINPROGRESS, "in progress");
	CHECK(connect(s, (void *)&far, sizeof(far)) < 0 && errno == EALREADY, "EALREADY");
	close(s);
}

static void
t_sndtimeo(void)
{
	struct sockaddr_in far = sin_of("198.18.0.77", 80);
	struct timeval tv = { 0, 300000 };
	int s = socket(AF_INET, SOCK_STREAM, 0);
	double t0 = now();

	setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	CHECK(connect(s, (void *)&far, sizeof(far)) < 0 && errno == EINPROGRESS, "SO_SNDTIMEO: EINPROGRESS");
	CHECK(now() - t0 > 0.25 && now() - t0 < 1.0, "after ~0.3s: %.3f", now() - t0);
	close(s);
}

static void on_alrm(int s) { (void)s; }

static void
t_eintr(void)
{
	struct sockaddr_in far = sin_of("198.18.0.77", 80);
	struct sigaction sa = { .sa_handler = on_alrm }; /* no SA_RESTART */
	int s = socket(AF_INET, SOCK_STREAM, 0);

	sigaction(SIGALRM, &sa, NULL);
	ualarm(200000, 0);
	CHECK(connect(s, (void *)&far, sizeof(far)) < 0 && errno == EINTR, "EINTR");
	fcntl(s, F_SETFL, O_NONBLOCK);
	CHECK(connect(s, (void *)&far, sizeof(far)) < 0 && errno == EALREADY, "then EALREADY");
	close(s);
}

static void
t_rst(void)
{
	int s = tcp_to(9002, 0);
	char buf[8];

	signal(SIGPIPE, on_pipe);
	CHECK(s >= 0, "connect");
	CHECK(write(s, "x", 1) == 1, "write");
	CHECK(read(s, buf, sizeof(buf)) < 0 && errno == ECONNRESET, "read after RST: ECONNRESET");
	CHECK(read(s, buf, sizeof(buf)) == 0, "then EOF");
	sigpipes = 0;
	CHECK(write(s, "x", 1) < 0 && errno == EPIPE, "write: EPIPE");
	CHECK(sigpipes == 1, "with SIGPIPE (%d)", (int)sigpipes);
	CHECK(send(s, "x", 1, MSG_NOSIGNAL) < 0 && errno == EPIPE && sigpipes == 1, "MSG_NOSIGNAL: no signal");
	close(s);

	s = tcp_to(9002, 0);
	CHECK(write(s, "x", 1) == 1, "write");
	usleep(300000);
	sigpipes = 0;
	CHECK(write(s, "y", 1) < 0 && errno == ECONNRESET && sigpipes == 0, "first write after RST: ECONNRESET, no SIGPIPE (%d)", (int)sigpipes);
	CHECK(write(s, "y", 1) < 0 && errno == EPIPE && sigpipes == 1, "second: EPIPE + SIGPIPE");
	close(s);
	signal(SIGPIPE, SIG_DFL);
}

/* sendfile and splice into a reset connection: the TCP error, as write. */
static void
t_sendfile_rst(void)
{
	char path[] = "/tmp/utcp-sendfile.XXXXXX";
	int f = mkstemp(path), p[2], s;

	unlink(path);
	CHECK(f >= 0 && write(f, "file", 4) == 4, "a file");
	signal(SIGPIPE, SIG_IGN);
	s = tcp_to(9002, 0);
	CHECK(s >= 0 && write(s, "x", 1) == 1, "connect, write");
	usleep(300000); /* the peer resets 0.1 s after reading */
	off_t off = 0;
	CHECK(sendfile(s, f, &off, 4) < 0 && errno == ECONNRESET, "sendfile after RST: ECONNRESET");
	CHECK(sendfile(s, f, &off, 4) < 0 && errno == EPIPE, "then EPIPE");
	close(s);
	s = tcp_to(9002, 0);
	CHECK(s >= 0 && write(s, "x", 1) == 1, "connect, write");
	usleep(300000);
	CHECK(pipe(p) == 0 && write(p[1], "pipe", 4) == 4, "a pipe");
	CHECK(splice(p[0], NULL, s, NULL, 4, 0) < 0 && errno == ECONNRESET, "splice after RST: ECONNRESET");
	close(p[0]);
	close(p[1]);
	close(s);
	close(f);
	signal(SIGPIPE, SIG_DFL);
}

/* An RST after the peer's FIN (CLOSE-WAIT): Linux's reader keeps seeing
 * EOF (the FIN came first), only a writer learns EPIPE. */
static void
t_rst_after_fin(void)
{
	int s = tcp_to(9006, 0);
	char buf[8];

	CHECK(s >= 0, "connect");
	CHECK(read(s, buf, sizeof(buf)) == 3, "bye");
	CHECK(read(s, buf, sizeof(buf)) == 0, "peer FIN: EOF");
	usleep(400000); /* the RST comes 0.2 s after the FIN */
	CHECK(read(s, buf, sizeof(buf)) == 0, "after the RST still EOF, never EPIPE");
	CHECK(recv(s, buf, sizeof(buf), 0) == 0, "recv too");
	CHECK(send(s, "x", 1, MSG_NOSIGNAL) < 0 && errno == EPIPE, "write: EPIPE");
	close(s);
}

/* A program that empties its environment and then forks workers (nginx
 * keeps only TZ): the workers still reach the daemon the parent used. */
static void
t_env_cleared(void)
{
	char buf[8];
	int st = -1;
	pid_t kid;

	clearenv();
	kid = fork();
	if (kid == 0) {
		int s = tcp_to(9001, 0);
		_exit(s >= 0 && write(s, "env", 3) == 3 && read(s, buf, 3) == 3 ? 0 : 1);
	}
	CHECK(kid > 0 && waitpid(kid, &st, 0) == kid && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	      "a child of a process without environment connects (status %d)", st);
}

/* A forked child that drops privileges (nginx's workers as nobody)
 * still has the engine: the daemon serves root and its own uid only. */
static void
t_fork_setuid(void)
{
	char buf[8];
	int st = -1, s = tcp_to(9001, 0);
	pid_t kid;

	CHECK(s >= 0, "connect"); /* the parent talks to the daemon */
	close(s);
	if (geteuid() != 0)
		return; /* nothing to drop */
	kid = fork();
	if (kid == 0) {
		if (setgid(65534) < 0 || setuid(65534) < 0)
			_exit(2);
		s = tcp_to(9001, 0);
		_exit(s >= 0 && write(s, "uid", 3) == 3 && read(s, buf, 3) == 3 ? 0 : 1);
	}
	CHECK(kid > 0 && waitpid(kid, &st, 0) == kid && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	      "a child that became nobody connects (status %d)", st);
}

static void
t_halfclose(void)
{
	int s = tcp_to(9003, 0);
	char buf[16];

	signal(SIGPIPE, SIG_IGN);
	CHECK(s >= 0, "connect");
	CHECK(read(s, buf, 16) == 5, "hello");
	CHECK(read(s, buf, 16) == 0, "peer FIN → EOF");
	CHECK(write(s, "after-fin", 9) == 9, "we may still write");
	CHECK(shutdown(s, SHUT_WR) == 0, "shutdown");
	CHECK(write(s, "x", 1) < 0 && errno == EPIPE, "write after SHUT_WR: EPIPE");
	close(s);
	signal(SIGPIPE, SIG_DFL);
}

static void
t_server(void)
{
	const char *eng = getenv("ENGINE") ? getenv("ENGINE") : "198.18.0.2";
	struct sockaddr_in a = sin_of("0.0.0.0", 9100), b;
	socklen_t l;
	int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), v = 1, c;
	char cmd[256], buf[64];

	CHECK(setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &v, sizeof(v)) == 0, "SO_REUSEADDR");
	CHECK(bind(ls, (void *)&a, sizeof(a)) == 0, "bind");
	CHECK(listen(ls, 8) == 0, "listen");
	l = sizeof(v);
	CHECK(getsockopt(ls, SOL_SOCKET, SO_ACCEPTCONN, &v, &l) == 0 && v == 1, "SO_ACCEPTCONN %d", v);
	l = sizeof(b);
	CHECK(getsockname(ls, (void *)&b, &l) == 0 && b.sin_port == htons(9100), "listener name");
	/* a kernel client, no preload */
	snprintf(cmd, sizeof(cmd),
		 "env -u LD_PRELOAD /usr/bin/python3 -c \"import socket;s=socket.create_connection(('%s',9100));"
		 "s.sendall(b'hi from kernel');print('client got', s.recv(100))\" &",
		 eng);
	CHECK(system(cmd) == 0, "start the kernel client");
	l = sizeof(b);
	c = accept4(ls, (void *)&b, &l, SOCK_CLOEXEC);
	CHECK(c >= 0 && l == sizeof(b) && b.sin_family == AF_INET, "accept4");
	CHECK(fcntl(c, F_GETFD) & FD_CLOEXEC, "SOCK_CLOEXEC on accepted");
	CHECK(read(c, buf, sizeof(buf)) == 14, "data from kernel client");
	CHECK(write(c, "hello back", 10) == 10, "reply");
	close(c);
	/* non-blocking accept with nothing queued */
	fcntl(ls, F_SETFL, O_NONBLOCK);
	CHECK(accept(ls, NULL, NULL) < 0 && errno == EAGAIN, "EAGAIN on empty queue");
	close(ls);
	wait(NULL);
	usleep(100000);
}

/* Start a kernel-side python client of ENGINE:port (no preload) whose
 * one line of outcome is appended to file. */
static void
kernel_client(int port, const char *file, const char *body)
{
	const char *eng = getenv("ENGINE") ? getenv("ENGINE") : "198.18.0.2";
	char cmd[1024];

	snprintf(cmd, sizeof(cmd),
		 "env -u LD_PRELOAD /usr/bin/python3 -c \"import socket,sys\n"
		 "s=socket.create_connection(('%s',%d),timeout=8)\n"
		 "out=open('%s','a')\n%s\" >/dev/null 2>&1 &",
		 eng, port, file, body);
	CHECK(system(cmd) == 0, "start a kernel client");
}

static int
lines(const char *file, const char *word)
{
	char buf[4096];
	int fd = open(file, O_RDONLY), n = 0;
	ssize_t len;

	if (fd < 0)
		return 0;
	len = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[len > 0 ? len : 0] = '\0';
	for (char *p = buf; (p = strstr(p, word)) != NULL; p++)
		n++;
	return n;
}

/* Linux: listen(fd, 1) holds two established connections (backlog + 1)
 * and drops further SYNs until accept() makes room. */
static void
t_backlog(void)
{
	struct sockaddr_in a = sin_of("0.0.0.0", 9102);
	char file[] = "/tmp/utcp-backlog.XXXXXX";
	/* close-on-exec: the clients must not hold the listener open */
	int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), v = 1, fd, c;
	int got = 0;
	double t0;

	if (getenv("UTCP_FAKE_DAEMON")) {
		printf("  not with the fake daemon (it accepts on the kernel)\n");
		close(ls);
		return;
	}
	fd = mkstemp(file);
	close(fd);
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &v, sizeof(v));
	CHECK(bind(ls, (void *)&a, sizeof(a)) == 0, "bind");
	CHECK(listen(ls, 1) == 0, "listen(1)");
	for (int i = 0; i < 4; i++)
		kernel_client(9102, file, "out.write('up\\n');out.flush();s.recv(1)");
	t0 = now();
	while (lines(file, "up") < 2 && now() - t0 < 5)
		usleep(20000);
	usleep(600000); /* room for a third, if there were any */
	CHECK(lines(file, "up") == 2, "two connections established, not %d",
	      lines(file, "up"));
	/* accept makes room: the others get in at their SYN retransmission */
	t0 = now();
	while (got < 4 && now() - t0 < 8) {
		struct pollfd p = { .fd = ls, .events = POLLIN };
		if (poll(&p, 1, 500) == 1 && (c = accept(ls, NULL, NULL)) >= 0) {
			got++;
			CHECK(write(c, "x", 1) == 1, "answer");
			close(c);
		}
	}
	CHECK(got == 4, "all four accepted in the end: %d", got);
	close(ls);
	/* each client opens the file after its connect: let all have */
	t0 = now();
	while (lines(file, "up") < 4 && now() - t0 < 5)
		usleep(20000);
	unlink(file);
	while (wait(NULL) > 0)
		;
}

/* Linux resets the connections a listener still held when it closes. */
static void
t_listen_close(void)
{
	struct sockaddr_in a = sin_of("0.0.0.0", 9103);
	char file[] = "/tmp/utcp-lclose.XXXXXX";
	int ls, v = 1, fd;
	double t0;

	if (getenv("UTCP_FAKE_DAEMON")) {
		/* fake_utcpd.py accepts on the kernel itself: nothing of
		 * this is the preload's to decide */
		printf("  not with the fake daemon\n");
		return;
	}
	ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	fd = mkstemp(file);
	close(fd);
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &v, sizeof(v));
	CHECK(bind(ls, (void *)&a, sizeof(a)) == 0, "bind");
	CHECK(listen(ls, 8) == 0, "listen");
	kernel_client(9103, file,
		      "s.sendall(b'x');out.write('up\\n');out.flush()\n"
		      "try:\n d=s.recv(10);out.write('data\\n' if d else 'eof\\n')\n"
		      "except ConnectionResetError: out.write('reset\\n')");
	t0 = now();
	while (lines(file, "up") < 1 && now() - t0 < 5)
		usleep(20000);
	usleep(100000);
	close(ls); /* never accepted */
	t0 = now();
	while (lines(file, "reset") + lines(file, "eof") < 1 && now() - t0 < 5)
		usleep(20000);
	CHECK(lines(file, "reset") == 1, "the unaccepted peer is reset (%d eof, %d data, %d up)",
	      lines(file, "eof"), lines(file, "data"), lines(file, "up"));
	unlink(file);
	while (wait(NULL) > 0)
		;
}

static void *
make_socket(void *arg)
{
	(void)arg;
	return (void *)(long)socket(AF_INET, SOCK_STREAM, 0);
}

/* A socket made in one thread is usable at once in another (the preload's
 * sockets are asynchronous: their news travels on another connection). */
static void
t_thread_handoff(void)
{
	int ok = 0;

	for (int i = 0; i < 40; i++) {
		struct sockaddr_in a = sin_of(peer, 9001);
		pthread_t t;
		void *r;
		char buf[8];

		pthread_create(&t, NULL, make_socket, NULL);
		pthread_join(t, &r); /* the thread and its connection are gone */
		int s = (int)(long)r;
		if (s >= 0 && connect(s, (void *)&a, sizeof(a)) == 0 &&
		    write(s, "hand", 4) == 4 && read(s, buf, 4) == 4)
			ok++;
		close(s);
	}
	CHECK(ok == 40, "40 sockets made in a thread, used in another: %d", ok);
}

static void
t_unix(void)
{
	int sv[2], s;
	struct sockaddr_un un = { .sun_family = AF_UNIX };

	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair");
	CHECK(write(sv[0], "a", 1) == 1 && read(sv[1], &un.sun_path[0], 1) == 1, "unix data");
	close(sv[0]);
	CHECK(read(sv[1], un.sun_path, 1) == 0, "unix EOF untouched");
	close(sv[1]);
	s = socket(AF_UNIX, SOCK_STREAM, 0);
	CHECK(s >= 0, "AF_UNIX socket");
	strcpy(un.sun_path, "/nonexistent/x");
	CHECK(connect(s, (void *)&un, sizeof(un)) < 0 && errno == ENOENT, "AF_UNIX connect to libc");
	close(s);
	s = socket(AF_INET, SOCK_DGRAM, 0);
	CHECK(s >= 0, "UDP socket");
	int t;
	socklen_t l = sizeof(t);
	CHECK(getsockopt(s, SOL_SOCKET, SO_TYPE, &t, &l) == 0 && t == SOCK_DGRAM, "UDP is the kernel's");
	close(s);
}

static void
t_loopback(void)
{
	int ls = socket(AF_INET, SOCK_STREAM, 0), s, c, v = 1, t;
	struct sockaddr_in a = sin_of("127.0.0.1", 0);
	socklen_t l = sizeof(a);

	/* policy loopback=kernel: a loopback bind goes to the kernel */
	CHECK(setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &v, sizeof(v)) == 0, "opt");
	CHECK(bind(ls, (void *)&a, sizeof(a)) == 0 && listen(ls, 4) == 0, "loopback listener");
	CHECK(getsockname(ls, (void *)&a, &l) == 0 && a.sin_port != 0, "kernel picked a port");
	l = sizeof(v);
	CHECK(getsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &v, &l) == 0 && v == 1, "option replayed");
	s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct timeval tv = { 5, 0 };
	setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	CHECK(connect(s, (void *)&a, sizeof(a)) == 0, "connect to 127.0.0.1");
	CHECK(fcntl(s, F_GETFD) & FD_CLOEXEC, "cloexec kept");
	l = sizeof(tv);
	CHECK(getsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, &l) == 0 && tv.tv_sec == 5, "SO_RCVTIMEO replayed");
	c = accept(ls, NULL, NULL);
	CHECK(c >= 0 && write(c, "lo", 2) == 2 && read(s, &t, 2) == 2, "loopback data");
	close(c), close(s), close(ls);
}

static void
t_dup_fork_exec(char *self)
{
	int s = tcp_to(9001, 0), d, d2;
	char buf[8];
	pid_t p;
	int st;

	CHECK(s >= 0, "connect");
	d = dup(s);
	d2 = fcntl(s, F_DUPFD_CLOEXEC, 100);
	CHECK(d2 >= 100, "F_DUPFD_CLOEXEC");
	close(s);
	int v, t;
	socklen_t l = sizeof(v);
	CHECK(getsockopt(d, SOL_SOCKET, SO_DOMAIN, &v, &l) == 0 && v == AF_INET, "dup is ours");
	CHECK(getsockopt(d2, SOL_SOCKET, SO_DOMAIN, &v, &l) == 0 && v == AF_INET, "F_DUPFD is ours");
	CHECK(write(d2, "ab", 2) == 2 && read(d, buf, 2) == 2, "data via dups");
	close(d2);
	if ((p = fork()) == 0) {
		/* child: own control connection */
		l = sizeof(v);
		int ok = getsockopt(d, SOL_SOCKET, SO_ERROR, &v, &l) == 0 && v == 0 &&
			 write(d, "cd", 2) == 2 && read(d, buf, 2) == 2;
		int n = tcp_to(9001, 0);
		ok = ok && n >= 0 && write(n, "z", 1) == 1 && read(n, buf, 1) == 1;
		_exit(ok ? 0 : 1);
	}
	waitpid(p, &st, 0);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "fork child used socket and daemon");
	/* exec: the new image identifies the fd by its peer's name */
	dup2(d, 42);
	if ((p = fork()) == 0) {
		execl(self, self, "exec-child", (char *)NULL);
		_exit(2);
	}
	waitpid(p, &st, 0);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "exec child recognised fd 42 (%d)", WEXITSTATUS(st));
	(void)t;
	close(42);
	close(d);
}

static int
exec_child(void)
{
	int v = 0;
	socklen_t l = sizeof(v);
	struct sockaddr_in a;
	char buf[4];

	if (getsockopt(42, SOL_SOCKET, SO_DOMAIN, &v, &l) < 0 || v != AF_INET)
		return 3;
	l = sizeof(a);
	if (getpeername(42, (void *)&a, &l) < 0 || a.sin_port != htons(9001))
		return 4;
	if (write(42, "ef", 2) != 2 || read(42, buf, 2) != 2)
		return 5;
	return 0;
}

static void
t_threads_big(void)
{
	/* 2 MB through echo with a writer child */
	int s = tcp_to(9001, 0);
	size_t n = 2 << 20, got = 0;
	char *b = malloc(65536);
	pid_t p;

	CHECK(s >= 0, "connect");
	if ((p = fork()) == 0) {
		char *w = calloc(1, 65536);
		for (size_t i = 0; i < n; i += 65536)
			if (write(s, w, 65536) != 65536)
				_exit(1);
		_exit(0);
	}
	while (got < n) {
		ssize_t r = read(s, b, 65536);
		if (r <= 0)
			break;
		got += r;
	}
	int st;
	waitpid(p, &st, 0);
	CHECK(got == n && WIFEXITED(st) && WEXITSTATUS(st) == 0, "2 MiB echoed: %zu", got);
	free(b);
	close(s);
}


/* fortified reads: n unknown at compile time, so __read_chk/__recv_chk */
static void
t_fortify(size_t n)
{
	char buf[64];
	int s = tcp_to(9002, 0);

	CHECK(s >= 0 && write(s, "x", 1) == 1, "connect");
	CHECK(read(s, buf, n) < 0 && errno == ECONNRESET, "__read_chk: ECONNRESET");
	close(s);
	s = tcp_to(9002, 0);
	CHECK(s >= 0 && write(s, "x", 1) == 1, "connect");
	CHECK(recv(s, buf, n, 0) < 0 && errno == ECONNRESET, "__recv_chk: ECONNRESET");
	close(s);
}

static void
t_ioctl(void)
{
	int s = tcp_to(9005, 0), q = -1, on = 1;
	char c;

	CHECK(s >= 0, "connect");
	CHECK(ioctl(s, SIOCOUTQ, &q) == 0 && q == 0, "SIOCOUTQ idle: %d", q);
	CHECK(ioctl(s, FIONREAD, &q) == 0 && q == 0, "FIONREAD: %d", q);
	CHECK(ioctl(s, FIONBIO, &on) == 0 && read(s, &c, 1) < 0 && errno == EAGAIN, "FIONBIO");
	close(s);
}

static int
nfds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	while (readdir(d) != NULL)
		n++;
	closedir(d);
	return n;
}

static void *
one_thread(void *arg)
{
	int s = tcp_to(9001, 0), ok;
	char b;

	(void)arg;
	ok = s >= 0 && write(s, "t", 1) == 1 && read(s, &b, 1) == 1;
	close(s);
	return (void *)(long)ok;
}

/* each thread its own control connection, closed when it exits */
static void
t_threads(void)
{
	int before = nfds();
	pthread_t t[20];
	long all = 1;
	void *r;

	for (int i = 0; i < 20; i++)
		pthread_create(&t[i], NULL, one_thread, NULL);
	for (int i = 0; i < 20; i++) {
		pthread_join(t[i], &r);
		all &= (long)r;
	}
	CHECK(all, "20 threads connect and echo");
	CHECK(nfds() == before, "no fd left behind: %d, was %d", nfds(), before);
}

static void
t_closefrom(void)
{
	int s = tcp_to(9001, 0), f, n;
	char path[] = "/tmp/utcp-closefrom.XXXXXX", buf[64];

	CHECK(s >= 0, "connect");
	closefrom(3); /* our control connection goes too */
	f = mkstemp(path);
	CHECK(f == 3, "file took fd 3 (%d)", f);
	s = tcp_to(9001, 0);
	CHECK(s >= 0, "a new socket after closefrom");
	CHECK(write(s, "again", 5) == 5 && read(s, buf, 5) == 5, "echo");
	close(s);
	n = pread(f, buf, sizeof(buf), 0);
	CHECK(n == 0, "our file untouched by the preload (%d bytes)", n);
	close(f);
	unlink(path);
}

int
main(int argc, char **argv)
{
	if (getenv("PEER"))
		peer = getenv("PEER");
	if (argc > 1 && strcmp(argv[1], "exec-child") == 0)
		return exec_child();
	setvbuf(stdout, NULL, _IONBF, 0);
	const char *only = argc > 1 ? argv[1] : NULL;
#define RUN(f, ...) if (!only || strcmp(only, #f) == 0) { printf("- %s\n", #f); f(__VA_ARGS__); }
	RUN(t_blocking);
	RUN(t_refused);
	RUN(t_nonblocking);
	RUN(t_sndtimeo);
	RUN(t_eintr);
	RUN(t_rst);
	RUN(t_sendfile_rst);
	RUN(t_rst_after_fin);
	RUN(t_halfclose);
	RUN(t_server);
	RUN(t_backlog);
	RUN(t_listen_close);
	RUN(t_thread_handoff);
	RUN(t_unix);
	RUN(t_loopback);
	RUN(t_dup_fork_exec, argv[0]);
	RUN(t_threads_big);
	RUN(t_fortify, (size_t)(8 + argc));
	RUN(t_ioctl);
	RUN(t_threads);
	RUN(t_fork_setuid);
	RUN(t_env_cleared); /* last: it empties the environment */
	if (only && strcmp(only, "t_closefrom") == 0)
		RUN(t_closefrom);
	printf("%d passed, %d failed\n", passes, fails);
	return fails != 0;
}
