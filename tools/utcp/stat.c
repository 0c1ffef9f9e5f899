/*
 * stat.c — `utcp stat`: the engine's counters and the daemon's own, one
 * "name value" line each, like nstat(8).
 */
#include <errno.h>
#include <fnmatch.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static void
stat_usage(FILE *f)
{
	fprintf(f, "Usage: utcp stat [-a] [-d] [PATTERN]...\n"
		   "\n"
		   "Show the counters of the engine and of the daemon at "
		   "$UTCP_SOCKET: every\n"
		   "drop has a named counter (drop_*), and daemon_* counters "
		   "describe the\n"
		   "daemon itself. Only non-zero counters unless -a. PATTERNs "
		   "(shell globs,\n"
		   "e.g. 'drop_*') keep the counters whose names match one.\n"
		   "\n"
		   "Options:\n"
		   "  -a, --all        show zero counters too\n"
		   "  -d, --describe   say what each counter counts\n"
		   "  -h, --help       show this help\n");
}

static bool
matches(const char *name, char **pats, int npats)
{
	if (npats == 0)
		return true;
	for (int i = 0; i < npats; i++)
		if (fnmatch(pats[i], name, 0) == 0)
			return true;
	return false;
}

int
cmd_stat(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"all", no_argument, NULL, 'a'},
	    {"describe", no_argument, NULL, 'd'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *path = utcp_ipc_socket_path();
	struct utcp_req req;
	struct utcp_rep rep;
	bool all = false, describe = false;
	int c, fd, r = 0;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "+adh", longopts, NULL)) != -1) {
		switch (c) {
		case 'a':
			all = true;
			break;
		case 'd':
			describe = true;
			break;
		case 'h':
			stat_usage(stdout);
			return 0;
		default:
			fprintf(stderr,
				"utcp stat: unknown option '%s'\n"
				"Try `utcp stat --help`.\n",
				argv[optind - 1]);
			return EXIT_USAGE;
		}
	}
	fd = cli_ctl_open(path, NULL);
	if (fd < 0) {
		fprintf(stderr, "utcp stat: no utcpd answers at %s (%s)\n",
			path, strerror(-fd));
		return 1;
	}
	for (int32_t i = 0;; i++) {
		cli_req_init(&req, UTCP_OP_STATS);
		req.arg[0] = i;
		r = cli_ctl_call(fd, &req, &rep);
		if (r < 0)
			break;
		if (rep.err == ENOENT) /* past the last counter */
			break;
		if (rep.err != 0) {
			r = -rep.err;
			break;
		}
		rep.data[sizeof(rep.data) - 1] = '\0';
		const char *name = (const char *)rep.data;
		/* the daemon puts the description after the name's NUL */
		size_t nl = strlen(name);
		const char *desc = nl + 1 < rep.len && nl + 1 < sizeof(rep.data)
					   ? name + nl + 1
					   : "";
		if (!(all || rep.val != 0) ||
		    !matches(name, argv + optind, argc - optind))
			continue;
		if (describe && desc[0] != '\0')
			printf("%-32s %12" PRId64 "  %s\n", name, rep.val, desc);
		else
			printf("%-32s %" PRId64 "\n", name, rep.val);
	}
	close(fd);
	if (r < 0) {
		fprintf(stderr, "utcp stat: %s: %s\n", path, strerror(-r));
		return 1;
	}
	return fflush(stdout) == 0 ? 0 : 1;
}
