/*
 * connmem-hold.c — the two ends of bench/connmem-e2e: many idle TCP
 * connections, held open.
 *
 *   connmem-hold serve ADDR PORT[,PORT…]   accept on every port and keep
 *                                          what comes (until killed);
 *                                          prints "listening"
 *   connmem-hold hold ADDR PORT[,PORT…] N [B]
 *                                          open N connections, spread over
 *                                          the ports (more than 64k 4-tuples
 *                                          need several); with B, send B
 *                                          bytes on each and read the echo;
 *                                          print "held N", keep them until
 *                                          stdin closes
 *
 * The server echoes what it reads.
 * Both raise their fd limit to the hard limit first. The holder keeps at
 * most 512 connects in flight, so the listener's backlog never overflows.
 * Errors: one line on stderr, exit status 1.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAXPORTS 64
#define INFLIGHT 512

static void __attribute__((noreturn))
die(const char *what)
{
	fprintf(stderr, "connmem-hold: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void
raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static int
parse_ports(char *s, struct sockaddr_in *sa, const char *addr)
{
	int n = 0;

	for (char *tok = strtok(s, ","); tok != NULL && n < MAXPORTS;
	     tok = strtok(NULL, ",")) {
		long p = strtol(tok, NULL, 10);

		if (p <= 0 || p > 65535) {
			fprintf(stderr, "connmem-hold: bad port %s\n", tok);
			exit(2);
		}
		memset(&sa[n], 0, sizeof(sa[n]));
		sa[n].sin_family = AF_INET;
		sa[n].sin_port = htons((uint16_t)p);
		if (inet_pton(AF_INET, addr, &sa[n].sin_addr) != 1) {
			fprintf(stderr, "connmem-hold: bad address %s\n", addr);
			exit(2);
		}
		n++;
	}
	return n;
}

static int __attribute__((noreturn))
serve(struct sockaddr_in *sa, int np)
{
	struct epoll_event ev, evs[64];
	int ep = epoll_create1(0), one = 1;

	if (ep < 0)
		die("epoll_create1");
	for (int i = 0; i < np; i++) {
		int l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);

		if (l < 0)
			die("socket");
		setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(l, (struct sockaddr *)&sa[i], sizeof(sa[i])) != 0)
			die("bind");
		if (listen(l, 4096) != 0)
			die("listen");
		ev.events = EPOLLIN;
		ev.data.u64 = (uint64_t)l << 1 | 1; /* low bit: a listener */
		if (epoll_ctl(ep, EPOLL_CTL_ADD, l, &ev) != 0)
			die("epoll_ctl");
	}
	printf("listening\n");
	fflush(stdout);
	for (;;) {
		int n = epoll_wait(ep, evs, 64, -1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die("epoll_wait");
		for (int i = 0; i < n; i++) {
			int fd = (int)(evs[i].data.u64 >> 1);

			if (evs[i].data.u64 & 1) {
				int c;

				while ((c = accept4(fd, NULL, NULL,
						    SOCK_NONBLOCK)) >= 0) {
					ev.events = EPOLLIN;
					ev.data.u64 = (uint64_t)c << 1;
					if (epoll_ctl(ep, EPOLL_CTL_ADD, c,
						      &ev) != 0)
						die("epoll_ctl");
				}
				if (errno != EAGAIN && errno != ECONNABORTED)
					die("accept4");
			} else {
				char buf[4096];
				ssize_t r = read(fd, buf, sizeof(buf));

				if (r == 0 || (r < 0 && errno != EAGAIN))
					close(fd);
				else if (r > 0 && write(fd, buf, (size_t)r) != r)
					close(fd);
			}
		}
	}
}

/* B bytes out on every connection, then B bytes back on each. */
static void
echo_all(int *fds, long n, size_t b)
{
	char msg[1024], buf[1024];
	struct epoll_event ev, evs[256];
	int ep = epoll_create1(0);
	long left = n;

	if (ep < 0)
		die("epoll_create1");
	memset(msg, 'r', sizeof(msg));
	for (long i = 0; i < n; i++) {
		if (write(fds[i], msg, b) != (ssize_t)b)
			die("write");
		ev.events = EPOLLIN;
		ev.data.u64 = (uint64_t)i;
		if (epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev) != 0)
			die("epoll_ctl");
	}
	/* Each reply is small: one read takes it whole or in pieces. */
	{
		size_t *got = calloc((size_t)n, sizeof(*got));

		if (got == NULL)
			die("calloc");
		while (left > 0) {
			int k = epoll_wait(ep, evs, 256, 30000);

			if (k < 0 && errno == EINTR)
				continue;
			if (k <= 0) {
				fprintf(stderr, "connmem-hold: %ld echoes "
						"missing after 30 s\n",
					left);
				exit(1);
			}
			for (int i = 0; i < k; i++) {
				long j = (long)evs[i].data.u64;
				ssize_t r = read(fds[j], buf, sizeof(buf));

				if (r <= 0) {
					if (r < 0 && errno == EAGAIN)
						continue;
					die("read (echo)");
				}
				got[j] += (size_t)r;
				if (got[j] >= b) {
					epoll_ctl(ep, EPOLL_CTL_DEL, fds[j],
						  NULL);
					left--;
				}
			}
		}
		free(got);
	}
	close(ep);
}

static int
hold(struct sockaddr_in *sa, int np, long n, size_t b)
{
	struct epoll_event ev, evs[256];
	long opened = 0, done = 0, pending = 0;
	int ep = epoll_create1(0);
	int *fds = calloc((size_t)n, sizeof(*fds));
	char c;

	if (fds == NULL)
		die("calloc");

	if (ep < 0)
		die("epoll_create1");
	while (done < n) {
		while (opened < n && pending < INFLIGHT) {
			int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
			const struct sockaddr_in *to = &sa[opened % np];

			if (s < 0)
				die("socket");
			fds[opened] = s;
			if (connect(s, (const struct sockaddr *)to,
				    sizeof(*to)) == 0) {
				done++;
			} else if (errno == EINPROGRESS) {
				ev.events = EPOLLOUT;
				ev.data.fd = s;
				if (epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev) != 0)
					die("epoll_ctl");
				pending++;
			} else {
				die("connect");
			}
			opened++;
		}
		if (pending == 0)
			continue;
		int k = epoll_wait(ep, evs, 256, 30000);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			die("epoll_wait");
		if (k == 0) {
			fprintf(stderr,
				"connmem-hold: %ld connects pending for 30 s "
				"(%ld of %ld done)\n",
				pending, done, n);
			return 1;
		}
		for (int i = 0; i < k; i++) {
			int s = evs[i].data.fd, err = 0;
			socklen_t len = sizeof(err);

			if (getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
				die("getsockopt");
			if (err != 0) {
				errno = err;
				die("connect (completion)");
			}
			/* Connected: no longer watched, just held. */
			epoll_ctl(ep, EPOLL_CTL_DEL, s, NULL);
			pending--;
			done++;
		}
	}
	close(ep);
	if (b > 0)
		echo_all(fds, n, b);
	printf("held %ld\n", done);
	fflush(stdout);
	while (read(0, &c, 1) > 0)
		;
	return 0;
}

int
main(int argc, char **argv)
{
	struct sockaddr_in sa[MAXPORTS];
	int np;

	if (argc < 4 || (strcmp(argv[1], "serve") != 0 &&
			 strcmp(argv[1], "hold") != 0) ||
	    (strcmp(argv[1], "hold") == 0 && argc < 5)) {
		fprintf(stderr, "usage: connmem-hold serve ADDR PORT[,PORT...]\n"
				"       connmem-hold hold ADDR PORT[,PORT...] N [B]\n");
		return 2;
	}
	raise_nofile();
	np = parse_ports(argv[3], sa, argv[2]);
	if (np == 0) {
		fprintf(stderr, "connmem-hold: no port\n");
		return 2;
	}
	if (strcmp(argv[1], "serve") == 0)
		return serve(sa, np);
	return hold(sa, np, strtol(argv[4], NULL, 10),
		    argc > 5 ? (size_t)strtoul(argv[5], NULL, 10) % 1025 : 0);
}
