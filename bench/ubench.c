/*
 * ubench.c — the small measuring programs of `make bench` that no Debian
 * tool provides. bench/run builds it into build/bench/ubench.
 *
 *   ubench serve ADDR PORT        accept connections on ADDR:PORT, echo
 *                                 what they send, keep them open (until
 *                                 killed)
 *   ubench hold ADDR PORT N       open N connections to ADDR:PORT, send 64
 *                                 bytes on each and read the echo, print
 *                                 "held N", keep them until stdin closes
 *   ubench crr-serve ADDR PORT    for each connection: read a 64-byte
 *                                 request, answer 64 bytes, close (HTTP/1.0
 *                                 style: the server closes first)
 *   ubench crr ADDR PORT SECONDS  connect, one request, read the answer to
 *                                 EOF, close, in a loop: prints "conn/s"
 *   ubench unix-pp SECONDS        64-byte ping-pong over an AF_UNIX stream
 *                                 socketpair between two processes: prints
 *                                 "avg_us p50_us p99_us"
 *   ubench unix-tput SECONDS      one-way 64 KiB writes over a socketpair:
 *                                 prints "GB/s"
 *   ubench file-write FILE SECONDS  4 KiB write()s into FILE, wrapping at
 *                                 64 MiB: prints "MB/s"
 *   ubench file-read FILE SECONDS   4 KiB read()s of FILE (made by
 *                                 file-write), wrapping: prints "MB/s"
 *
 * read() and write() are the calls the preload wraps; the figures with and
 * without LD_PRELOAD=libutcp.so tell what that wrapping costs. Errors go to
 * stderr as one line, with exit status 1.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PP_SIZE 64
#define TPUT_CHUNK (64 * 1024)
#define FILE_BLOCK 4096
#define FILE_WRAP (64L * 1024 * 1024)
#define PP_MAX_SAMPLES (4L * 1024 * 1024)
#define CRR_SIZE 64
#define HOLD_BYTES 64

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
die(const char *what)
{
	fprintf(stderr, "ubench: %s: %s\n", what, strerror(errno));
	return 1;
}

static double
parse_seconds(const char *s)
{
	char *end;
	double v = strtod(s, &end);

	if (*end != '\0' || v <= 0 || v > 3600) {
		fprintf(stderr, "ubench: bad duration '%s'\n", s);
		exit(2);
	}
	return v;
}

/* Write all of buf, or -1. */
static int
write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Read exactly len bytes, or -1 (0 bytes read at EOF: also -1). */
static int
read_all(int fd, char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = read(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Holding thousands of connections needs as many fds as the hard limit
 * allows (root may raise the hard limit too). */
static void
raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return;
	rl.rlim_cur = rl.rlim_max;
	if (rl.rlim_max < 1048576) {
		struct rlimit want = {1048576, 1048576};

		if (setrlimit(RLIMIT_NOFILE, &want) == 0)
			return;
	}
	setrlimit(RLIMIT_NOFILE, &rl);
}

/* Fill sin from ADDR and PORT, or print why not and return -1. */
static int
parse_sin(struct sockaddr_in *sin, const char *addr, const char *port)
{
	char *end;
	long p = strtol(port, &end, 10);

	memset(sin, 0, sizeof(*sin));
	sin->sin_family = AF_INET;
	if (*end != '\0' || p <= 0 || p > 65535) {
		fprintf(stderr, "ubench: bad port '%s'\n", port);
		return -1;
	}
	sin->sin_port = htons((uint16_t)p);
	if (inet_pton(AF_INET, addr, &sin->sin_addr) != 1) {
		fprintf(stderr, "ubench: bad address '%s'\n", addr);
		return -1;
	}
	return 0;
}

/* Report what failed, close s (if open) and return -1. */
static int
fail(int s, const char *what)
{
	die(what);
	if (s >= 0)
		close(s);
	return -1;
}

/* A listening socket on ADDR:PORT, or -1 (reported). */
static int
listen_on(const char *addr, const char *port)
{
	struct sockaddr_in sin;
	int one = 1, s;

	if (parse_sin(&sin, addr, port) != 0)
		return -1;
	s = socket(AF_INET, SOCK_STREAM, 0);
	if (s < 0)
		return fail(s, "socket");
	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(s, (struct sockaddr *)&sin, sizeof(sin)) != 0)
		return fail(s, "bind");
	if (listen(s, 4096) != 0)
		return fail(s, "listen");
	printf("listening\n");
	fflush(stdout);
	return s;
}

static int
cmd_serve(const char *addr, const char *port)
{
	struct epoll_event ev = {.events = EPOLLIN}, evs[64];
	char buf[HOLD_BYTES];
	int s, ep;

	raise_nofile();
	if ((s = listen_on(addr, port)) < 0)
		return 1;
	ep = epoll_create1(0);
	ev.data.fd = s;
	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev) != 0)
		return die("epoll");
	for (;;) {
		int n = epoll_wait(ep, evs, 64, -1);

		if (n < 0 && errno != EINTR)
			return die("epoll_wait");
		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;

			if (fd == s) {
				/* A failure (EMFILE too) leaves that
				 * connection pending: the holder says. */
				int c = accept4(s, NULL, NULL, SOCK_NONBLOCK);

				if (c < 0)
					continue;
				ev.data.fd = c;
				epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev);
				continue;
			}
			/* Echo what comes; keep the connection until EOF. */
			ssize_t r = read(fd, buf, sizeof(buf));

			if (r > 0)
				(void)write_all(fd, buf, (size_t)r);
			else if (r == 0 || errno != EAGAIN)
				close(fd);
		}
	}
}

/* Open n connections, each carrying HOLD_BYTES there and back, then
 * idle: what a daemon holds for a connection that has been used. */
static int
cmd_hold(const char *addr, const char *port, const char *count)
{
	struct sockaddr_in sin;
	long n = atol(count), i;
	char c, buf[HOLD_BYTES];

	if (parse_sin(&sin, addr, port) != 0)
		return 2;
	raise_nofile();
	memset(buf, 'h', sizeof(buf));
	for (i = 0; i < n; i++) {
		int s = socket(AF_INET, SOCK_STREAM, 0);

		if (s < 0 ||
		    connect(s, (struct sockaddr *)&sin, sizeof(sin)) != 0 ||
		    write_all(s, buf, sizeof(buf)) != 0 ||
		    read_all(s, buf, sizeof(buf)) != 0) {
			fprintf(stderr, "ubench: connection %ld of %ld: %s\n",
				i + 1, n, errno ? strerror(errno) : "EOF");
			printf("held %ld\n", i);
			fflush(stdout);
			return 1;
		}
	}
	printf("held %ld\n", n);
	fflush(stdout);
	/* Idle until the bench closes our stdin (or kills us). */
	while (read(0, &c, 1) > 0)
		;
	return 0;
}

static int
cmd_crr_serve(const char *addr, const char *port)
{
	char buf[CRR_SIZE];
	int s;

	if ((s = listen_on(addr, port)) < 0)
		return 1;
	memset(buf, 'r', sizeof(buf));
	for (;;) {
		int c = accept(s, NULL, NULL);

		if (c < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			return die("accept");
		}
		/* A client that fails mid-way costs its connection only. */
		if (read_all(c, buf, sizeof(buf)) == 0)
			(void)write_all(c, buf, sizeof(buf));
		close(c);
	}
}

static int
cmd_crr(const char *addr, const char *port, double seconds)
{
	struct sockaddr_in sin;
	char buf[CRR_SIZE];
	double t0, t1;
	long n = 0;

	if (parse_sin(&sin, addr, port) != 0)
		return 2;
	memset(buf, 'q', sizeof(buf));
	t0 = now_s();
	do {
		ssize_t r;
		int s = socket(AF_INET, SOCK_STREAM, 0);

		if (s < 0)
			return die("socket");
		if (connect(s, (struct sockaddr *)&sin, sizeof(sin)) != 0) {
			fprintf(stderr, "ubench: connect after %ld: %s\n", n,
				strerror(errno));
			return 1;
		}
		if (write_all(s, buf, sizeof(buf)) != 0 ||
		    read_all(s, buf, sizeof(buf)) != 0) {
			fprintf(stderr, "ubench: request after %ld: %s\n", n,
				errno ? strerror(errno) : "early EOF");
			return 1;
		}
		/* The server closes first: wait for its FIN. */
		while ((r = read(s, buf, sizeof(buf))) < 0 && errno == EINTR)
			;
		if (r != 0) {
			fprintf(stderr, "ubench: no EOF after %ld: %s\n", n,
				r < 0 ? strerror(errno) : "extra data");
			return 1;
		}
		close(s);
		n++;
		t1 = now_s();
	} while (t1 - t0 < seconds);
	printf("%.1f\n", (double)n / (t1 - t0));
	return 0;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static int
cmd_unix_pp(double seconds)
{
	char buf[PP_SIZE];
	double *lat, t0, end, sum = 0;
	long n = 0;
	int sv[2], status;
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
		return die("socketpair");
	pid = fork();
	if (pid < 0)
		return die("fork");
	if (pid == 0) { /* the echo side */
		close(sv[0]);
		while (read_all(sv[1], buf, sizeof(buf)) == 0)
			if (write_all(sv[1], buf, sizeof(buf)) != 0)
				break;
		_exit(0);
	}
	close(sv[1]);
	lat = malloc(PP_MAX_SAMPLES * sizeof(*lat));
	if (lat == NULL)
		return die("malloc");
	memset(buf, 'p', sizeof(buf));
	end = now_s() + seconds;
	while (n < PP_MAX_SAMPLES) {
		t0 = now_s();
		if (write_all(sv[0], buf, sizeof(buf)) != 0 ||
		    read_all(sv[0], buf, sizeof(buf)) != 0)
			return die("ping-pong");
		lat[n] = (now_s() - t0) * 1e6;
		sum += lat[n++];
		if (t0 > end)
			break;
	}
	close(sv[0]);
	waitpid(pid, &status, 0);
	qsort(lat, (size_t)n, sizeof(*lat), cmp_double);
	printf("%.3f %.3f %.3f\n", sum / (double)n, lat[n / 2],
	       lat[(long)((double)n * 0.99)]);
	free(lat);
	return 0;
}

static int
cmd_unix_tput(double seconds)
{
	static char buf[TPUT_CHUNK];
	double t0, t1;
	long long bytes = 0, got = 0;
	int sv[2], status;
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
		return die("socketpair");
	pid = fork();
	if (pid < 0)
		return die("fork");
	if (pid == 0) { /* the sink: counts bytes until EOF, then reports */
		ssize_t r;

		close(sv[0]);
		while ((r = read(sv[1], buf, sizeof(buf))) > 0)
			got += r;
		if (write_all(sv[1], (char *)&got, sizeof(got)) != 0)
			_exit(1);
		_exit(0);
	}
	close(sv[1]);
	memset(buf, 't', sizeof(buf));
	t0 = now_s();
	do {
		if (write_all(sv[0], buf, sizeof(buf)) != 0)
			return die("write");
		bytes += sizeof(buf);
	} while (now_s() - t0 < seconds);
	shutdown(sv[0], SHUT_WR);
	if (read_all(sv[0], (char *)&got, sizeof(got)) != 0)
		return die("read the sink's count");
	t1 = now_s();
	waitpid(pid, &status, 0);
	if (got != bytes) {
		fprintf(stderr, "ubench: sent %lld bytes, sink got %lld\n",
			bytes, got);
		return 1;
	}
	printf("%.3f\n", (double)bytes / (t1 - t0) / 1e9);
	return 0;
}

static int
cmd_file(const char *path, double seconds, int writing)
{
	static char buf[FILE_BLOCK];
	long long bytes = 0;
	long off = 0;
	double t0, t1;
	int fd;

	fd =
	    open(path, writing ? O_WRONLY | O_CREAT | O_TRUNC : O_RDONLY, 0600);
	if (fd < 0)
		return die(path);
	memset(buf, 'f', sizeof(buf));
	t0 = now_s();
	do {
		/* Check the clock every 256 blocks only: the call is the cost.
		 */
		for (int i = 0; i < 256; i++) {
			ssize_t n = writing ? write(fd, buf, sizeof(buf))
					    : read(fd, buf, sizeof(buf));

			if (n != (ssize_t)sizeof(buf))
				return die(writing ? "write"
						   : "read (run "
						     "file-write "
						     "first)");
			bytes += n;
			off += n;
			if (off >= FILE_WRAP) {
				if (lseek(fd, 0, SEEK_SET) != 0)
					return die("lseek");
				off = 0;
			}
		}
		t1 = now_s();
	} while (t1 - t0 < seconds);
	if (writing) {
		/* A full file for file-read, whatever was reached. */
		while (off < FILE_WRAP) {
			if (write(fd, buf, sizeof(buf)) != (ssize_t)sizeof(buf))
				return die("write");
			off += sizeof(buf);
		}
	}
	close(fd);
	printf("%.1f\n", (double)bytes / (t1 - t0) / 1e6);
	return 0;
}

static int
usage(void)
{
	fprintf(stderr,
		"usage: ubench serve ADDR PORT | hold ADDR PORT N |\n"
		"       crr-serve ADDR PORT | crr ADDR PORT SECONDS |\n"
		"       unix-pp SECONDS | unix-tput SECONDS |\n"
		"       file-write FILE SECONDS | file-read FILE SECONDS\n");
	return 2;
}

int
main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	if (argc == 4 && strcmp(argv[1], "serve") == 0)
		return cmd_serve(argv[2], argv[3]);
	if (argc == 5 && strcmp(argv[1], "hold") == 0)
		return cmd_hold(argv[2], argv[3], argv[4]);
	if (argc == 4 && strcmp(argv[1], "crr-serve") == 0)
		return cmd_crr_serve(argv[2], argv[3]);
	if (argc == 5 && strcmp(argv[1], "crr") == 0)
		return cmd_crr(argv[2], argv[3], parse_seconds(argv[4]));
	if (argc == 3 && strcmp(argv[1], "unix-pp") == 0)
		return cmd_unix_pp(parse_seconds(argv[2]));
	if (argc == 3 && strcmp(argv[1], "unix-tput") == 0)
		return cmd_unix_tput(parse_seconds(argv[2]));
	if (argc == 4 && strcmp(argv[1], "file-write") == 0)
		return cmd_file(argv[2], parse_seconds(argv[3]), 1);
	if (argc == 4 && strcmp(argv[1], "file-read") == 0)
		return cmd_file(argv[2], parse_seconds(argv[3]), 0);
	return usage();
}
