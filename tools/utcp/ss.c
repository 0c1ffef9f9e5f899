/*
 * ss.c — `utcp ss`: the engine's sockets as a table, in the manner of
 * `ss -tn`; with -i, each connection's TCP details on a second line, in
 * the manner of `ss -tni`.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <getopt.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "utcp.h"

/* ss(8)'s spelling, so the two tables read alike. */
static const char *const ss_state[UTCP_NSTATES] = {
    [UTCP_CLOSED] = "CLOSED",	      [UTCP_LISTEN] = "LISTEN",
    [UTCP_SYN_SENT] = "SYN-SENT",     [UTCP_SYN_RECEIVED] = "SYN-RECV",
    [UTCP_ESTABLISHED] = "ESTAB",     [UTCP_CLOSE_WAIT] = "CLOSE-WAIT",
    [UTCP_FIN_WAIT_1] = "FIN-WAIT-1", [UTCP_CLOSING] = "CLOSING",
    [UTCP_LAST_ACK] = "LAST-ACK",     [UTCP_FIN_WAIT_2] = "FIN-WAIT-2",
    [UTCP_TIME_WAIT] = "TIME-WAIT",
};

#define ADDR_LEN (INET6_ADDRSTRLEN + 16)

struct row {
	char state[16];
	char recvq[12], sendq[12];
	char local[ADDR_LEN], peer[ADDR_LEN];
	char proc[40];
	char info[512]; /* -i: the details line, "" without */
};

/* ss(8)'s state filter names, each a set of states. */
#define ST(s) (1u << (s))
#define ST_ALL ((1u << UTCP_NSTATES) - 1)
static const struct {
	const char *name;
	unsigned set;
} filters[] = {
    {"all", ST_ALL},
    {"connected", ST_ALL & ~(ST(UTCP_LISTEN) | ST(UTCP_CLOSED))},
    {"synchronized",
     ST_ALL & ~(ST(UTCP_LISTEN) | ST(UTCP_CLOSED) | ST(UTCP_SYN_SENT))},
    {"bucket", ST(UTCP_SYN_RECEIVED) | ST(UTCP_TIME_WAIT)},
    {"big", ST_ALL & ~(ST(UTCP_SYN_RECEIVED) | ST(UTCP_TIME_WAIT))},
    {"established", ST(UTCP_ESTABLISHED)},
    {"syn-sent", ST(UTCP_SYN_SENT)},
    {"syn-recv", ST(UTCP_SYN_RECEIVED)},
    {"syn-received", ST(UTCP_SYN_RECEIVED)},
    {"fin-wait-1", ST(UTCP_FIN_WAIT_1)},
    {"fin-wait-2", ST(UTCP_FIN_WAIT_2)},
    {"time-wait", ST(UTCP_TIME_WAIT)},
    {"closed", ST(UTCP_CLOSED)},
    {"close-wait", ST(UTCP_CLOSE_WAIT)},
    {"last-ack", ST(UTCP_LAST_ACK)},
    {"listening", ST(UTCP_LISTEN)},
    {"listen", ST(UTCP_LISTEN)},
    {"closing", ST(UTCP_CLOSING)},
};

static int
parse_filter(const char *name, unsigned *set)
{
	for (size_t i = 0; i < sizeof(filters) / sizeof(filters[0]); i++)
		if (strcasecmp(name, filters[i].name) == 0) {
			*set = filters[i].set;
			return 0;
		}
	return -1;
}

static void
ss_usage(FILE *f)
{
	fprintf(f, "Usage: utcp ss [-i] [-l | -a] [state FILTER]... "
		   "[exclude FILTER]...\n"
		   "\n"
		   "List the TCP sockets of the engine behind $UTCP_SOCKET: "
		   "state, unread and\n"
		   "unacknowledged bytes, addresses and the process that made "
		   "each one.\n"
		   "By default listening and closed sockets are left out.\n"
		   "\n"
		   "Options:\n"
		   "  -i, --info        TCP details on a second line: rto, "
		   "rtt/rttvar (ms),\n"
		   "                    mss, wscale, cwnd and ssthresh "
		   "(segments), bytes\n"
		   "                    sent/acked/received, retransmissions "
		   "and the timer\n"
		   "                    running: timer:(on,200ms,2) "
		   "(retransmission, backoff),\n"
		   "                    (persist,…), (keepalive,1.2s,0) "
		   "(probes), (timewait,58s)\n"
		   "  -l, --listening   only listening sockets\n"
		   "  -a, --all         every socket\n"
		   "  -n, -t            accepted for ss(8) habits (always "
		   "numeric, always TCP)\n"
		   "  -h, --help        show this help\n"
		   "\n"
		   "FILTER, as in ss(8): a state (established, syn-sent, "
		   "syn-recv, fin-wait-1,\n"
		   "fin-wait-2, time-wait, closed, close-wait, last-ack, "
		   "listening, closing) or\n"
		   "a group: all, connected (all but listening and closed), "
		   "synchronized\n"
		   "(connected but syn-sent), bucket (syn-recv and "
		   "time-wait), big (the rest).\n");
}

static void
format_addr(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	char ip[INET6_ADDRSTRLEN];
	char port[8];

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)ss;
		inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
		if (in->sin_port == 0)
			snprintf(port, sizeof(port), "*");
		else
			snprintf(port, sizeof(port), "%u", ntohs(in->sin_port));
		snprintf(buf, len, "%s:%s", ip, port);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)ss;
		inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
		if (in6->sin6_port == 0)
			snprintf(port, sizeof(port), "*");
		else
			snprintf(port, sizeof(port), "%u",
				 ntohs(in6->sin6_port));
		snprintf(buf, len, "[%s]:%s", ip, port);
	} else {
		snprintf(buf, len, "*:*");
	}
}

/* The daemon's answer to UTCP_OP_LIST carries one struct utcp_ipc_conn:
 * in rep.data when it fits there, otherwise as a second message right
 * after the reply (rep.len says which). 0, or -errno. */
static int
read_conn(int fd, const struct utcp_rep *rep, struct utcp_ipc_conn *conn)
{
	if (rep->len != sizeof(*conn))
		return -EPROTO;
	if (rep->len <= sizeof(rep->data)) {
		memcpy(conn, rep->data, sizeof(*conn));
		return 0;
	}
	int r = utcp_ipc_recv(fd, conn, sizeof(*conn), NULL, 1);
	return r == -EAGAIN ? -ETIMEDOUT : r;
}

static uint64_t
mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* A timer's time left, as the examples and ss(8) spell it:
 * 200ms, 1.2s, 58s, 119min. */
static void
fmt_left(char *buf, size_t len, uint64_t us)
{
	if (us < 1000000u)
		snprintf(buf, len, "%llums", (unsigned long long)(us / 1000u));
	else if (us < 10000000u)
		snprintf(buf, len, "%.1fs", us / 1e6);
	else if (us < 120000000u)
		snprintf(buf, len, "%llus", (unsigned long long)(us / 1000000u));
	else
		snprintf(buf, len, "%llumin",
			 (unsigned long long)(us / 60000000u));
}

/* Appends to an -i line; never past its end. */
static void __attribute__((format(printf, 3, 4)))
add(char *buf, size_t len, const char *fmt, ...)
{
	size_t used = strlen(buf);
	va_list ap;

	if (used + 1 >= len)
		return;
	va_start(ap, fmt);
	vsnprintf(buf + used, len - used, fmt, ap);
	va_end(ap);
}

static uint32_t
segs(uint32_t bytes, uint32_t mss)
{
	if (mss == 0)
		return bytes;
	return (bytes + mss - 1) / mss;
}

/* The details line of ss -tni, from the engine's struct utcp_info. */
static void
fill_info(const struct utcp_ipc_conn *c, char *b, size_t len, uint64_t now)
{
	struct utcp_info in;
	char left[32];

	memcpy(&in, c->info, sizeof(in));
	b[0] = '\0';
	if (in.state == UTCP_LISTEN || in.state == UTCP_CLOSED) {
		if (in.timer == UTCP_TIMER_NONE)
			return;
	} else {
		if (in.ts_ok)
			add(b, len, " ts");
		if (in.sack_ok)
			add(b, len, " sack");
		add(b, len, " wscale:%u,%u", in.wscale_snd, in.wscale_rcv);
		add(b, len, " rto:%u", (in.rto + 500) / 1000);
		add(b, len, " rtt:%.3f/%.3f", in.rtt / 1000.0,
		    in.rttvar / 1000.0);
		add(b, len, " mss:%u rcvmss:%u", in.mss_snd, in.mss_rcv);
		add(b, len, " cwnd:%u", segs(in.cwnd, in.mss_snd));
		/* ss shows no ssthresh while it is still "infinite" */
		if (in.ssthresh != 0 && in.ssthresh < (1u << 30))
			add(b, len, " ssthresh:%u",
			    segs(in.ssthresh, in.mss_snd));
		add(b, len, " bytes_sent:%llu bytes_acked:%llu "
			    "bytes_received:%llu",
		    (unsigned long long)in.bytes_sent,
		    (unsigned long long)in.bytes_acked,
		    (unsigned long long)in.bytes_received);
		add(b, len, " segs_out:%u segs_in:%u", in.segs_out, in.segs_in);
		add(b, len, " snd_wnd:%u rcv_wnd:%u", in.snd_wnd, in.rcv_wnd);
		if (in.unacked != 0)
			add(b, len, " unacked:%u", in.unacked);
		add(b, len, " retrans:%u/%u", in.retransmits, in.total_retrans);
		if (in.last_data_sent != 0 && in.last_data_sent <= now)
			add(b, len, " lastsnd:%llu",
			    (unsigned long long)((now - in.last_data_sent) /
						 1000u));
		if (in.last_data_recv != 0 && in.last_data_recv <= now)
			add(b, len, " lastrcv:%llu",
			    (unsigned long long)((now - in.last_data_recv) /
						 1000u));
		if (in.last_ack_recv != 0 && in.last_ack_recv <= now)
			add(b, len, " lastack:%llu",
			    (unsigned long long)((now - in.last_ack_recv) /
						 1000u));
	}
	fmt_left(left, sizeof(left),
		 in.timer_expires > now ? in.timer_expires - now : 0);
	switch (in.timer) {
	case UTCP_TIMER_RETRANS:
		add(b, len, " timer:(on,%s,%u)", left, in.backoff);
		break;
	case UTCP_TIMER_PERSIST:
		add(b, len, " timer:(persist,%s,%u)", left, in.probes);
		break;
	case UTCP_TIMER_KEEPALIVE:
		add(b, len, " timer:(keepalive,%s,%u)", left, in.probes);
		break;
	case UTCP_TIMER_TIMEWAIT:
	case UTCP_TIMER_FINWAIT2: /* Linux shows both as timewait */
		add(b, len, " timer:(timewait,%s)", left);
		break;
	case UTCP_TIMER_DELACK:
	case UTCP_TIMER_NONE:
		break; /* ss(8) shows no delayed-ACK timer either */
	}
}

static void
fill_row(const struct utcp_ipc_conn *c, struct row *r)
{
	char comm[sizeof(c->comm) + 1];

	if (c->state >= 0 && c->state < UTCP_NSTATES)
		snprintf(r->state, sizeof(r->state), "%s", ss_state[c->state]);
	else
		snprintf(r->state, sizeof(r->state), "?%d", c->state);
	snprintf(r->recvq, sizeof(r->recvq), "%u", c->recv_q);
	snprintf(r->sendq, sizeof(r->sendq), "%u", c->send_q);
	format_addr(&c->local, r->local, sizeof(r->local));
	format_addr(&c->remote, r->peer, sizeof(r->peer));
	memcpy(comm, c->comm, sizeof(c->comm));
	comm[sizeof(c->comm)] = '\0';
	for (char *p = comm; *p != '\0'; p++)
		if (*p < 0x20 || *p == 0x7f)
			*p = '?';
	if (c->pid > 0)
		snprintf(r->proc, sizeof(r->proc), "%d,%s", c->pid, comm);
	else
		r->proc[0] = '\0';
	r->info[0] = '\0';
}

static int
width(const struct row *rows, size_t n, size_t off, const char *head)
{
	size_t w = strlen(head);

	for (size_t i = 0; i < n; i++) {
		size_t l = strlen((const char *)&rows[i] + off);
		if (l > w)
			w = l;
	}
	return (int)w;
}

static void
print_table(const struct row *rows, size_t n, bool info)
{
	int ws = width(rows, n, offsetof(struct row, state), "State");
	int wr = width(rows, n, offsetof(struct row, recvq), "Recv-Q");
	int wq = width(rows, n, offsetof(struct row, sendq), "Send-Q");
	int wl =
	    width(rows, n, offsetof(struct row, local), "Local Address:Port");
	int wp =
	    width(rows, n, offsetof(struct row, peer), "Peer Address:Port");

	printf("%-*s %*s %*s %-*s %-*s %s\n", ws, "State", wr, "Recv-Q", wq,
	       "Send-Q", wl, "Local Address:Port", wp, "Peer Address:Port",
	       "Process");
	for (size_t i = 0; i < n; i++)
	{
		printf("%-*s %*s %*s %-*s %-*s %s\n", ws, rows[i].state, wr,
		       rows[i].recvq, wq, rows[i].sendq, wl, rows[i].local, wp,
		       rows[i].peer, rows[i].proc);
		if (info && rows[i].info[0] != '\0')
			printf("\t%s\n", rows[i].info);
	}
}

int
cmd_ss(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"listening", no_argument, NULL, 'l'},
	    {"all", no_argument, NULL, 'a'},
	    {"numeric", no_argument, NULL, 'n'},
	    {"tcp", no_argument, NULL, 't'},
	    {"info", no_argument, NULL, 'i'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *path = utcp_ipc_socket_path();
	bool listening = false, all = false, info = false;
	unsigned want = 0, exclude = 0, set;
	uint64_t now;
	struct row *rows = NULL;
	size_t nrows = 0, cap = 0;
	struct utcp_ipc_conn conn;
	struct utcp_req req;
	struct utcp_rep rep;
	int c, fd, r = 0;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "+lantih", longopts, NULL)) != -1) {
		switch (c) {
		case 'l':
			listening = true;
			break;
		case 'a':
			all = true;
			break;
		case 'n':
		case 't':
			break;
		case 'i':
			info = true;
			break;
		case 'h':
			ss_usage(stdout);
			return 0;
		default:
			fprintf(stderr,
				"utcp ss: unknown option '%s'\n"
				"Try `utcp ss --help`.\n",
				argv[optind - 1]);
			return EXIT_USAGE;
		}
	}
	/* ss(8)'s filter words: state NAME, exclude NAME */
	for (int i = optind; i < argc; i += 2) {
		bool is_state = strcmp(argv[i], "state") == 0;
		if ((!is_state && strcmp(argv[i], "exclude") != 0) ||
		    i + 1 >= argc) {
			fprintf(stderr,
				"utcp ss: unexpected argument '%s' (want "
				"state FILTER or exclude FILTER)\n"
				"Try `utcp ss --help`.\n",
				argv[i]);
			return EXIT_USAGE;
		}
		if (parse_filter(argv[i + 1], &set) != 0) {
			fprintf(stderr,
				"utcp ss: unknown state '%s'\n"
				"Try `utcp ss --help`.\n",
				argv[i + 1]);
			return EXIT_USAGE;
		}
		if (is_state)
			want |= set;
		else
			exclude |= set;
	}
	/* ss(8): -l is state listening, -a is state all; otherwise the
	 * default hides listening and closed sockets */
	if (listening)
		want |= ST(UTCP_LISTEN);
	if (all)
		want |= ST_ALL;
	if (want == 0)
		want = ST_ALL & ~(ST(UTCP_LISTEN) | ST(UTCP_CLOSED));
	want &= ~exclude;
	fd = cli_ctl_open(path, NULL);
	if (fd < 0) {
		fprintf(stderr, "utcp ss: no utcpd answers at %s (%s)\n", path,
			strerror(-fd));
		return 1;
	}
	now = mono_us();
	for (int32_t i = 0;; i++) {
		cli_req_init(&req, UTCP_OP_LIST);
		req.arg[0] = i;
		r = cli_ctl_call(fd, &req, &rep);
		if (r < 0)
			break;
		if (rep.err == ENOENT) /* past the last socket */
			break;
		if (rep.err != 0) {
			r = -rep.err;
			break;
		}
		if ((r = read_conn(fd, &rep, &conn)) < 0)
			break;
		if (conn.state < 0 || conn.state >= UTCP_NSTATES ||
		    !(want & ST(conn.state)))
			continue;
		if (nrows == cap) {
			size_t ncap = cap ? cap * 2 : 32;
			struct row *nr = reallocarray(rows, ncap, sizeof(*nr));
			if (nr == NULL) {
				r = -ENOMEM;
				break;
			}
			rows = nr;
			cap = ncap;
		}
		fill_row(&conn, &rows[nrows]);
		if (info)
			fill_info(&conn, rows[nrows].info,
				  sizeof(rows[nrows].info), now);
		nrows++;
	}
	close(fd);
	if (r < 0) {
		fprintf(stderr, "utcp ss: %s: %s\n", path, strerror(-r));
		free(rows);
		return 1;
	}
	print_table(rows, nrows, info);
	free(rows);
	return fflush(stdout) == 0 ? 0 : 1;
}
