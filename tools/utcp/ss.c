/*
 * ss.c — `utcp ss`: the engine's sockets as a table, in the manner of
 * `ss -tn`.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
};

static void
ss_usage(FILE *f)
{
	fprintf(f, "Usage: utcp ss [-l | -a]\n"
		   "\n"
		   "List the TCP sockets of the engine behind $UTCP_SOCKET: "
		   "state, unread and\n"
		   "unacknowledged bytes, addresses and the process that made "
		   "each one.\n"
		   "By default listening and closed sockets are left out.\n"
		   "\n"
		   "Options:\n"
		   "  -l, --listening   only listening sockets\n"
		   "  -a, --all         every socket\n"
		   "  -n, -t            accepted for ss(8) habits (always "
		   "numeric, always TCP)\n"
		   "  -h, --help        show this help\n");
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
print_table(const struct row *rows, size_t n)
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
		printf("%-*s %*s %*s %-*s %-*s %s\n", ws, rows[i].state, wr,
		       rows[i].recvq, wq, rows[i].sendq, wl, rows[i].local, wp,
		       rows[i].peer, rows[i].proc);
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
	bool listening = false, all = false;
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
			fprintf(stderr, "utcp ss: -i is not implemented yet\n");
			return EXIT_USAGE;
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
	if (optind < argc) {
		fprintf(stderr,
			"utcp ss: unexpected argument '%s'\n"
			"Try `utcp ss --help`.\n",
			argv[optind]);
		return EXIT_USAGE;
	}
	fd = cli_ctl_open(path, NULL);
	if (fd < 0) {
		fprintf(stderr, "utcp ss: no utcpd answers at %s (%s)\n", path,
			strerror(-fd));
		return 1;
	}
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
		bool is_listen = conn.state == UTCP_LISTEN;
		bool is_closed = conn.state == UTCP_CLOSED;
		if (listening ? !is_listen : (!all && (is_listen || is_closed)))
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
		fill_row(&conn, &rows[nrows++]);
	}
	close(fd);
	if (r < 0) {
		fprintf(stderr, "utcp ss: %s: %s\n", path, strerror(-r));
		free(rows);
		return 1;
	}
	print_table(rows, nrows);
	free(rows);
	return fflush(stdout) == 0 ? 0 : 1;
}
