/*
 * pd_driver.c — plays packetdrill's part against build/libutcp_packetdrill.so
 * (packetdrill is not packaged for Debian): dlopen() with packetdrill's
 * flags, packetdrill_interface_init(), blocking calls on a second thread,
 * raw IP packets through netdev_send/netdev_receive, libc close() on the
 * fds at the end, then free().
 *
 *   pd-driver build/libutcp_packetdrill.so
 *
 * Sessions: a passive open, an active open, data both ways, closes from
 * each side, poll/fcntl/ioctl/getsockopt, and one real-time retransmission.
 * Prints one line per check and "N passed, N failed".
 */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "packetdrill.h"
#include "wire.h"

static struct packetdrill_interface ifc;
static int npass, nfail;
static uint16_t ip_id;

static const uint8_t LOCAL[4] = {192, 168, 0, 1};
static const uint8_t REMOTE[4] = {192, 0, 2, 1};

static void check(int ok, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void check(int ok, const char *fmt, ...)
{
	va_list ap;

	printf("%s ", ok ? "ok  " : "FAIL");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	if (ok)
		npass++;
	else
		nfail++;
}

/* ---- the peer's packets ---- */

static void peer_send(uint16_t sport, uint16_t dport, uint8_t flags,
		      uint32_t seq, uint32_t ack, const char *data, bool syn_opts)
{
	struct seg s;
	uint8_t pkt[2000];
	size_t len;

	memset(&s, 0, sizeof(s));
	memcpy(s.src, REMOTE, 4);
	memcpy(s.dst, LOCAL, 4);
	s.sport = sport;
	s.dport = dport;
	s.seq = seq;
	s.ack = ack;
	s.flags = flags;
	s.win = 65535;
	if (syn_opts) {
		s.opts[0].kind = OPT_MSS;
		s.opts[0].val = 1460;
		s.nopts = 1;
	}
	if (data) {
		s.payload = (const uint8_t *)data;
		s.len = strlen(data);
	}
	len = wire_build(pkt, sizeof(pkt), &s, ++ip_id, NULL);
	if (ifc.netdev_send(ifc.userdata, pkt, len) != 0)
		check(0, "netdev_send");
}

/* The next packet from the engine that is not a bare ACK (unless
 * want_bare), within about `secs`; as packetdrill does, keep calling
 * netdev_receive while it returns -1. */
static int engine_next(struct seg *s, uint8_t *buf, size_t cap, int secs,
		       bool want_bare, long long *when)
{
	for (int tries = 0; tries < secs * 20 + 1; tries++) {
		size_t n = cap;
		long long t = 0;
		const char *why;

		if (ifc.netdev_receive(ifc.userdata, buf, &n, &t) != 0)
			continue;
		if (wire_parse(buf, n, s, &why) != 0) {
			check(0, "engine sent an unparsable packet: %s", why);
			return -1;
		}
		if (!want_bare && s->flags == TH_ACK && s->len == 0)
			continue; /* a pure ACK: not what we wait for */
		if (when)
			*when = t;
		return 0;
	}
	return -1;
}

/* ---- blocking calls on a second thread, as packetdrill runs them ---- */

struct bcall {
	pthread_t th;
	int kind; /* 0 accept, 1 connect, 2 read */
	int fd;
	int ret, err;
	char buf[256];
};

static void *bcall_main(void *arg)
{
	struct bcall *b = arg;
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);

	if (b->kind == 0) {
		b->ret = ifc.accept(ifc.userdata, b->fd, (struct sockaddr *)&sin, &len);
	} else if (b->kind == 1) {
		memset(&sin, 0, sizeof(sin));
		sin.sin_family = AF_INET;
		sin.sin_port = htons(8080);
		memcpy(&sin.sin_addr, REMOTE, 4);
		b->ret = ifc.connect(ifc.userdata, b->fd, (struct sockaddr *)&sin,
				     sizeof(sin));
	} else {
		b->ret = (int)ifc.read(ifc.userdata, b->fd, b->buf, sizeof(b->buf));
	}
	b->err = errno;
	return NULL;
}

static void bcall_start(struct bcall *b, int kind, int fd)
{
	memset(b, 0, sizeof(*b));
	b->kind = kind;
	b->fd = fd;
	pthread_create(&b->th, NULL, bcall_main, b);
}

/* ---- sessions ---- */

static void passive_open(int *fds, int *nfds)
{
	struct sockaddr_in sin;
	struct seg s;
	uint8_t buf[4096];
	struct bcall acc, rd;
	int one = 1, lfd, afd;
	uint32_t isn;
	char out[200];
	long long t;

	printf("# passive open, data both ways, active close\n");
	lfd = ifc.socket(ifc.userdata, AF_INET, SOCK_STREAM, IPPROTO_TCP);
	check(lfd >= 0 && fcntl(lfd, F_GETFD) >= 0,
	      "socket() = %d, a real fd", lfd);
	fds[(*nfds)++] = lfd;
	check(ifc.setsockopt(ifc.userdata, lfd, SOL_SOCKET, SO_REUSEADDR, &one,
			     sizeof(one)) == 0,
	      "setsockopt(SO_REUSEADDR)");
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(8080);
	memcpy(&sin.sin_addr, LOCAL, 4);
	check(ifc.bind(ifc.userdata, lfd, (struct sockaddr *)&sin, sizeof(sin)) == 0,
	      "bind(192.168.0.1:8080)");
	check(ifc.listen(ifc.userdata, lfd, 1) == 0, "listen()");

	bcall_start(&acc, 0, lfd); /* blocks until the handshake completes */
	peer_send(40000, 8080, TH_SYN, 1000, 0, NULL, true);
	check(engine_next(&s, buf, sizeof(buf), 2, false, NULL) == 0 &&
		      s.flags == (TH_SYN | TH_ACK) && s.ack == 1001 &&
		      s.sport == 8080 && s.dport == 40000 &&
		      memcmp(s.src, LOCAL, 4) == 0 && s.csum_ok,
	      "SYN -> SYN|ACK ack 1001 from 192.168.0.1:8080");
	isn = s.seq;
	peer_send(40000, 8080, TH_ACK, 1001, isn + 1, NULL, false);
	pthread_join(acc.th, NULL);
	afd = acc.ret;
	check(afd >= 0 && afd != lfd && fcntl(afd, F_GETFD) >= 0,
	      "blocking accept() on the second thread = %d", afd);
	if (afd < 0)
		return;
	fds[(*nfds)++] = afd;

	/* Peer -> engine: a blocking read wakes up with the data. */
	bcall_start(&rd, 2, afd);
	usleep(20000);
	peer_send(40000, 8080, TH_ACK | TH_PSH, 1001, isn + 1, "hello, utcp", false);
	pthread_join(rd.th, NULL);
	check(rd.ret == 11 && memcmp(rd.buf, "hello, utcp", 11) == 0,
	      "blocking read() = %d \"%.*s\"", rd.ret, rd.ret > 0 ? rd.ret : 0,
	      rd.buf);
	check(engine_next(&s, buf, sizeof(buf), 2, true, NULL) == 0 &&
		      s.flags == TH_ACK && s.ack == 1012,
	      "the data is acknowledged (ack 1012)");

	/* Engine -> peer. */
	memset(out, 'x', sizeof(out));
	check(ifc.write(ifc.userdata, afd, out, sizeof(out)) == (ssize_t)sizeof(out),
	      "write(200)");
	check(engine_next(&s, buf, sizeof(buf), 2, false, &t) == 0 &&
		      s.len == 200 && s.seq == isn + 1 &&
		      memcmp(s.payload, out, 200) == 0,
	      "200 bytes leave at seq ISN+1");
	{
		struct timeval tv;

		ifc.gettimeofday(ifc.userdata, &tv, NULL);
		long long now = (long long)tv.tv_sec * 1000000 + tv.tv_usec;
		check(t > 0 && t <= now && now - t < 5000000,
		      "packet timestamps are on gettimeofday()'s clock");
	}
	peer_send(40000, 8080, TH_ACK, 1012, isn + 201, NULL, false);

	/* poll and ioctl as packetdrill scripts use them. */
	{
		struct pollfd p = {.fd = afd, .events = POLLIN | POLLOUT};
		int n = 0;

		check(ifc.poll(ifc.userdata, &p, 1, 0) == 1 && p.revents == POLLOUT,
		      "poll(): POLLOUT only");
		check(ifc.ioctl(ifc.userdata, afd, FIONREAD, &n) == 0 && n == 0,
		      "ioctl(FIONREAD) = 0");
	}

	/* Active close from our side: FIN, the peer's FIN, our last ACK. */
	check(ifc.close(ifc.userdata, afd) == 0, "close(accepted fd)");
	(*nfds)--;
	check(engine_next(&s, buf, sizeof(buf), 2, false, NULL) == 0 &&
		      s.flags == (TH_FIN | TH_ACK) && s.seq == isn + 201,
	      "FIN at seq ISN+201");
	peer_send(40000, 8080, TH_FIN | TH_ACK, 1012, isn + 202, NULL, false);
	check(engine_next(&s, buf, sizeof(buf), 2, true, NULL) == 0 &&
		      s.flags == TH_ACK && s.ack == 1013,
	      "the peer's FIN is acknowledged (TIME-WAIT)");
}

static void active_open(int *fds, int *nfds)
{
	struct seg s;
	uint8_t buf[4096];
	struct bcall con;
	int cfd, err = 0;
	socklen_t el = sizeof(err);
	uint32_t isn;
	uint16_t lport;
	char in[64];
	bool mss_ok = false;

	printf("# active open, data both ways, passive close\n");
	cfd = ifc.socket(ifc.userdata, AF_INET, SOCK_STREAM, 0);
	check(cfd >= 0, "socket() = %d", cfd);
	fds[(*nfds)++] = cfd;
	bcall_start(&con, 1, cfd); /* a blocking connect */
	check(engine_next(&s, buf, sizeof(buf), 2, false, NULL) == 0 &&
		      s.flags == TH_SYN && s.dport == 8080 &&
		      memcmp(s.dst, REMOTE, 4) == 0,
	      "connect() sends a SYN to 192.0.2.1:8080");
	for (int i = 0; i < s.nopts; i++)
		if (s.opts[i].kind == OPT_MSS && s.opts[i].val == 1460)
			mss_ok = true;
	check(mss_ok, "the SYN offers MSS 1460 (MTU 1500)");
	isn = s.seq;
	lport = s.sport;
	peer_send(8080, lport, TH_SYN | TH_ACK, 5000, isn + 1, NULL, true);
	check(engine_next(&s, buf, sizeof(buf), 2, true, NULL) == 0 &&
		      s.flags == TH_ACK && s.ack == 5001,
	      "SYN|ACK -> ACK");
	pthread_join(con.th, NULL);
	check(con.ret == 0, "blocking connect() = %d", con.ret);
	check(ifc.getsockopt(ifc.userdata, cfd, SOL_SOCKET, SO_ERROR, &err, &el) ==
			      0 &&
		      err == 0,
	      "SO_ERROR = 0");

	check(ifc.send(ifc.userdata, cfd, "ping", 4, 0) == 4, "send(4)");
	check(engine_next(&s, buf, sizeof(buf), 2, false, NULL) == 0 &&
		      s.len == 4 && memcmp(s.payload, "ping", 4) == 0,
	      "\"ping\" leaves");
	peer_send(8080, lport, TH_ACK | TH_PSH | TH_FIN, 5001, isn + 5, "pong",
		  false);
	check(engine_next(&s, buf, sizeof(buf), 2, true, NULL) == 0 &&
		      s.ack == 5006,
	      "data and FIN acknowledged (ack 5006)");
	check(ifc.recv(ifc.userdata, cfd, in, sizeof(in), 0) == 4 &&
		      memcmp(in, "pong", 4) == 0,
	      "recv() = \"pong\"");
	check(ifc.read(ifc.userdata, cfd, in, sizeof(in)) == 0,
	      "read() = 0 at end of stream");
	check(ifc.shutdown(ifc.userdata, cfd, SHUT_WR) == 0, "shutdown(SHUT_WR)");
	check(engine_next(&s, buf, sizeof(buf), 2, false, NULL) == 0 &&
		      s.flags == (TH_FIN | TH_ACK),
	      "FIN from LAST-ACK");
	peer_send(8080, lport, TH_ACK, 5006, isn + 6, NULL, false);
	check(ifc.close(ifc.userdata, cfd) == 0, "close()");
	(*nfds)--;
}

static void retransmission(int *fds, int *nfds)
{
	struct seg s;
	uint8_t buf[4096];
	long long t0 = 0, t1 = 0;
	int fd;

	printf("# a lost SYN is retransmitted after 1 s of real time\n");
	fd = ifc.socket(ifc.userdata, AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	fds[(*nfds)++] = fd;
	{
		struct sockaddr_in sin;

		memset(&sin, 0, sizeof(sin));
		sin.sin_family = AF_INET;
		sin.sin_port = htons(8080);
		memcpy(&sin.sin_addr, REMOTE, 4);
		int r = ifc.connect(ifc.userdata, fd, (struct sockaddr *)&sin,
				    sizeof(sin));
		check(r == -1 && errno == EINPROGRESS,
		      "non-blocking connect() = -1 EINPROGRESS");
	}
	check(engine_next(&s, buf, sizeof(buf), 2, false, &t0) == 0 &&
		      s.flags == TH_SYN,
	      "SYN");
	int got = engine_next(&s, buf, sizeof(buf), 3, false, &t1);

	check(got == 0 && s.flags == TH_SYN && t1 - t0 > 900000 &&
		      t1 - t0 < 1300000,
	      "SYN again after %.3f s (RTO 1 s)", (double)(t1 - t0) / 1e6);
	/* Left open on purpose: packetdrill's libc close() must cope. */
}

int main(int argc, char **argv)
{
	void *h;
	packetdrill_interface_init_t init;
	int fds[16], nfds = 0;

	if (argc != 2) {
		fprintf(stderr, "usage: pd-driver LIB.so\n");
		return 2;
	}
	/* The flags packetdrill's so_testing.c passes to dlopen(). */
	h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE | RTLD_DEEPBIND);
	if (!h) {
		fprintf(stderr, "%s\n", dlerror());
		return 1;
	}
	init = (packetdrill_interface_init_t)dlsym(h, "packetdrill_interface_init");
	check(init != NULL, "packetdrill_interface_init is exported");
	if (!init)
		return 1;
	init("local=192.168.0.1", &ifc);
	check(ifc.userdata && ifc.netdev_send && ifc.netdev_receive &&
		      ifc.socket && ifc.free && ifc.splice,
	      "the interface is filled in");

	passive_open(fds, &nfds);
	active_open(fds, &nfds);
	retransmission(fds, &nfds);

	/* What packetdrill does at the end: libc close() on every fd, then
	 * free(). */
	for (int i = 0; i < nfds; i++)
		close(fds[i]);
	ifc.free(ifc.userdata);
	dlclose(h);
	printf("%d passed, %d failed\n", npass, nfail);
	return nfail ? 1 : 0;
}
