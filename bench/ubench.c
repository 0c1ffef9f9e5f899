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
 *                                 EOF, close, in a loop: prints "conn/s",
 *                                 then socket=… connect=… answer=… eof=…
 *                                 close=…: µs per connection in each
 *   ubench unix-pp LEN            64-byte ping-pong over an AF_UNIX stream
 *                                 socketpair between two processes: prints
 *                                 "p50_us avg_us p99_us" of a round trip
 *   ubench unix-tput LEN          one-way 64 KiB writes over a socketpair:
 *                                 prints "GB/s mean_GB/s"
 *   ubench file-write FILE LEN    4 KiB write()s into FILE, wrapping at
 *                                 64 MiB: prints "MB/s mean_MB/s"
 *   ubench file-read FILE LEN     4 KiB read()s of FILE (made by
 *                                 file-write), wrapping: "MB/s mean_MB/s"
 *
 * LEN is SECONDS, or xCOUNT for exactly COUNT operations with no clock in
 * the loop (for valgrind: bench/localcost.py). The first figure is that of
 * the median batch (a round trip, 1 MiB), which a preemption hardly moves;
 * then "calls N": the read()/write() calls this process made.
 * read() and write() are the calls the preload wraps; the figures with and
 * without LD_PRELOAD=libutcp.so tell what that wrapping costs. Errors go to
 * stderr as one line, with exit status 1.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
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

/* read() and write() calls made by this process (the preload's cost is
 * per call: the unix and file tests report it). */
static long ncalls;

/* All of buf through read() or write(), counting the calls; 0, or -1 on
 * an error or at EOF. */
static int
xfer_all(int fd, char *buf, size_t len, bool wr)
{
	while (len > 0) {
		ssize_t n = wr ? write(fd, buf, len) : read(fd, buf, len);

		ncalls++;
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static int
write_all(int fd, const char *buf, size_t len)
{
	return xfer_all(fd, (char *)buf, len, true);
}

static int
read_all(int fd, char *buf, size_t len)
{
	return xfer_all(fd, buf, len, false);
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

/* Where a serial connection's time goes, summed over the run. */
enum { PH_SOCKET, PH_CONNECT, PH_ANSWER, PH_EOF, PH_CLOSE, PH_N };

static int
cmd_crr(const char *addr, const char *port, double seconds)
{
	static const char *const names[PH_N] = { "socket", "connect", "answer",
						 "eof", "close" };
	struct sockaddr_in sin;
	char buf[CRR_SIZE];
	double t0, t1, ph[PH_N] = { 0 }, at[PH_N + 1];
	long n = 0;

	if (parse_sin(&sin, addr, port) != 0)
		return 2;
	memset(buf, 'q', sizeof(buf));
	t0 = t1 = now_s();
	do {
		ssize_t r;
		int s;

		at[0] = t1;
		if ((s = socket(AF_INET, SOCK_STREAM, 0)) < 0)
			return die("socket");
		at[1] = now_s();
		if (connect(s, (struct sockaddr *)&sin, sizeof(sin)) != 0) {
			fprintf(stderr, "ubench: connect after %ld: %s\n", n,
				strerror(errno));
			return 1;
		}
		at[2] = now_s();
		if (write_all(s, buf, sizeof(buf)) != 0 ||
		    read_all(s, buf, sizeof(buf)) != 0) {
			fprintf(stderr, "ubench: request after %ld: %s\n", n,
				errno ? strerror(errno) : "early EOF");
			return 1;
		}
		at[3] = now_s();
		/* The server closes first: wait for its FIN. */
		while ((r = read(s, buf, sizeof(buf))) < 0 && errno == EINTR)
			;
		if (r != 0) {
			fprintf(stderr, "ubench: no EOF after %ld: %s\n", n,
				r < 0 ? strerror(errno) : "extra data");
			return 1;
		}
		at[4] = now_s();
		close(s);
		n++;
		t1 = at[5] = now_s();
		for (int i = 0; i < PH_N; i++)
			ph[i] += at[i + 1] - at[i];
	} while (t1 - t0 < seconds);
	/* The rate first (bench/run reads it), then µs per connection in
	 * each call: socket(), connect(), request + answer, the EOF, close(). */
	printf("%.1f", (double)n / (t1 - t0));
	for (int i = 0; i < PH_N; i++)
		printf(" %s=%.1f", names[i], ph[i] * 1e6 / (double)n);
	printf("\n");
	return 0;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/*
 * The length of a unix-* or file-* run: SECONDS (timed: figures printed),
 * or xCOUNT: exactly COUNT operations with no clock read in the loop, for
 * counting instructions (valgrind). Either way each process prints the
 * number of read()/write() calls it made, "calls N", last: what the
 * preload wrapped.
 */
struct budget {
	double seconds;
	long count; /* 0: timed */
};

static struct budget
parse_budget(const char *s)
{
	struct budget b = {0, 0};
	char *end;

	if (s[0] != 'x') {
		b.seconds = parse_seconds(s);
		return b;
	}
	b.count = strtol(s + 1, &end, 10);
	if (*end != '\0' || b.count <= 0 || b.count > 1000000000L) {
		fprintf(stderr, "ubench: bad count '%s'\n", s);
		exit(2);
	}
	return b;
}

static void
print_calls(void)
{
	printf("calls %ld\n", ncalls);
	fflush(stdout);
}

/*
 * Timed runs keep the duration of every batch of operations and report
 * the median batch: a figure that the other work of a shared machine
 * (a preemption, an interrupt, a neighbour's cache storm) moves far less
 * than the mean, while a cost paid on every call moves it in full.
 */
#define MAX_BATCHES (4L * 1024 * 1024)

struct batches {
	double *t;
	long n;
};

static int
batches_init(struct batches *b)
{
	b->n = 0;
	b->t = malloc(MAX_BATCHES * sizeof(*b->t));
	return b->t != NULL ? 0 : -1;
}

/* Record one batch; false once full. */
static bool
batches_add(struct batches *b, double seconds)
{
	b->t[b->n++] = seconds;
	return b->n < MAX_BATCHES;
}

/* The q-quantile of the batches (sorts them). */
static double
batches_q(struct batches *b, double q)
{
	qsort(b->t, (size_t)b->n, sizeof(*b->t), cmp_double);
	return b->t[(long)((double)(b->n - 1) * q)];
}

/* 64-byte ping-pong; timed: "p50_us avg_us p99_us" of a round trip. */
static int
cmd_unix_pp(struct budget bud)
{
	char buf[PP_SIZE];
	struct batches lat;
	double t0, t1, end, sum = 0;
	long n = 0;
	int sv[2], status;
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
		return die("socketpair");
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		return die("fork");
	if (pid == 0) { /* the echo side */
		close(sv[0]);
		while (read_all(sv[1], buf, sizeof(buf)) == 0)
			if (write_all(sv[1], buf, sizeof(buf)) != 0)
				break;
		if (bud.count)
			print_calls();
		_exit(0);
	}
	close(sv[1]);
	memset(buf, 'p', sizeof(buf));
	if (bud.count) {
		for (n = 0; n < bud.count; n++)
			if (write_all(sv[0], buf, sizeof(buf)) != 0 ||
			    read_all(sv[0], buf, sizeof(buf)) != 0)
				return die("ping-pong");
		close(sv[0]);
		waitpid(pid, &status, 0);
		print_calls();
		return 0;
	}
	if (batches_init(&lat) != 0)
		return die("malloc");
	end = now_s() + bud.seconds;
	do {
		t0 = now_s();
		if (write_all(sv[0], buf, sizeof(buf)) != 0 ||
		    read_all(sv[0], buf, sizeof(buf)) != 0)
			return die("ping-pong");
		t1 = now_s();
		sum += t1 - t0;
		n++;
	} while (batches_add(&lat, (t1 - t0) * 1e6) && t1 < end);
	close(sv[0]);
	waitpid(pid, &status, 0);
	printf("%.3f %.3f %.3f\n", batches_q(&lat, 0.5), sum / (double)n * 1e6,
	       batches_q(&lat, 0.99));
	print_calls();
	free(lat.t);
	return 0;
}

#define TPUT_BATCH 16 /* writes of 64 KiB: 1 MiB */

/* One-way 64 KiB writes; timed: "GB/s mean_GB/s" (the median batch's
 * rate, the whole run's). */
static int
cmd_unix_tput(struct budget bud)
{
	static char buf[TPUT_CHUNK];
	struct batches bt;
	double t0, t1, tb;
	long long bytes = 0, got = 0;
	long writes = 0;
	int sv[2], status;
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
		return die("socketpair");
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		return die("fork");
	if (pid == 0) { /* the sink: counts bytes until EOF, then reports */
		ssize_t r;

		close(sv[0]);
		while ((r = read(sv[1], buf, sizeof(buf))) > 0) {
			ncalls++;
			got += r;
		}
		ncalls++;
		if (write_all(sv[1], (char *)&got, sizeof(got)) != 0)
			_exit(1);
		if (bud.count)
			print_calls();
		_exit(0);
	}
	close(sv[1]);
	memset(buf, 't', sizeof(buf));
	if (!bud.count && batches_init(&bt) != 0)
		return die("malloc");
	t0 = tb = now_s();
	for (;;) {
		if (write_all(sv[0], buf, sizeof(buf)) != 0)
			return die("write");
		bytes += sizeof(buf);
		if (bud.count) {
			if (++writes == bud.count)
				break;
			continue;
		}
		if (++writes % TPUT_BATCH != 0)
			continue;
		t1 = now_s();
		if (!batches_add(&bt, t1 - tb) || t1 - t0 >= bud.seconds)
			break;
		tb = t1;
	}
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
	if (!bud.count) {
		printf("%.3f %.3f\n",
		       TPUT_BATCH * (double)sizeof(buf) / batches_q(&bt, 0.5) /
			   1e9,
		       (double)bytes / (t1 - t0) / 1e9);
		free(bt.t);
	}
	print_calls();
	return 0;
}

#define FILE_BATCH 256 /* calls of 4 KiB: 1 MiB */

/* 4 KiB write()s or read()s, wrapping at FILE_WRAP; timed: "MB/s
 * mean_MB/s" (the median batch's rate, the whole run's). */
static int
cmd_file(const char *path, struct budget bud, int writing)
{
	static char buf[FILE_BLOCK];
	struct batches bt;
	long long bytes = 0;
	long off = 0, left = bud.count;
	double t0, t1 = 0, tb;
	int fd;

	fd =
	    open(path, writing ? O_WRONLY | O_CREAT | O_TRUNC : O_RDONLY, 0600);
	if (fd < 0)
		return die(path);
	memset(buf, 'f', sizeof(buf));
	if (!bud.count && batches_init(&bt) != 0)
		return die("malloc");
	t0 = tb = now_s();
	for (;;) {
		int i, batch = FILE_BATCH;

		if (bud.count && left < batch)
			batch = (int)left;
		for (i = 0; i < batch; i++) {
			ssize_t n = writing ? write(fd, buf, sizeof(buf))
					    : read(fd, buf, sizeof(buf));

			ncalls++;
			if (n != (ssize_t)sizeof(buf))
				return die(writing
					       ? "write"
					       : "read (run file-write first)");
			bytes += n;
			off += n;
			if (off >= FILE_WRAP) {
				if (lseek(fd, 0, SEEK_SET) != 0)
					return die("lseek");
				off = 0;
			}
		}
		if (bud.count) {
			if ((left -= batch) == 0)
				break;
			continue;
		}
		/* The clock every batch only: the call is the cost. */
		t1 = now_s();
		if (!batches_add(&bt, t1 - tb) || t1 - t0 >= bud.seconds)
			break;
		tb = t1;
	}
	if (writing && !bud.count) {
		/* A full file for file-read, whatever was reached. */
		while (off < FILE_WRAP) {
			if (write(fd, buf, sizeof(buf)) != (ssize_t)sizeof(buf))
				return die("write");
			off += sizeof(buf);
		}
	}
	close(fd);
	if (!bud.count) {
		printf("%.1f %.1f\n",
		       FILE_BATCH * (double)sizeof(buf) / batches_q(&bt, 0.5) /
			   1e6,
		       (double)bytes / (t1 - t0) / 1e6);
		free(bt.t);
	}
	print_calls();
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
		return cmd_unix_pp(parse_budget(argv[2]));
	if (argc == 3 && strcmp(argv[1], "unix-tput") == 0)
		return cmd_unix_tput(parse_budget(argv[2]));
	if (argc == 4 && strcmp(argv[1], "file-write") == 0)
		return cmd_file(argv[2], parse_budget(argv[3]), 1);
	if (argc == 4 && strcmp(argv[1], "file-read") == 0)
		return cmd_file(argv[2], parse_budget(argv[3]), 0);
	return usage();
}
