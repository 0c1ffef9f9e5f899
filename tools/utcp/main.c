/*
 * utcp — the command-line front end of the userspace TCP engine.
 *
 *   utcp sandbox -- CMD…   a fresh network namespace with utcpd running
 *   utcp run -- CMD…       CMD with libutcp.so preloaded
 *   utcp stat              engine and daemon counters
 *   utcp ss                the engine's connections
 *   utcp trace             the daemon's events, live
 *   utcp diagram           the RFC 9293 state diagram, a trace's path on it
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
} commands[] = {
    {"sandbox", cmd_sandbox,
     "run CMD in a fresh network namespace with its own utcpd"},
    {"run", cmd_run, "run CMD with its TCP sockets served by utcpd"},
    {"stat", cmd_stat, "show the engine's and the daemon's counters"},
    {"ss", cmd_ss, "list the engine's TCP connections"},
    {"trace", cmd_trace, "follow the daemon's events (and packets) live"},
    {"diagram", cmd_diagram, "draw the TCP state diagram, a trace's path "
			     "highlighted"},
};

static void
usage(FILE *f)
{
	fprintf(f, "Usage: utcp COMMAND [OPTIONS] [-- CMD [ARG]...]\n"
		   "\n"
		   "utcp runs unmodified programs on a userspace TCP/IP "
		   "engine (utcpd).\n"
		   "\n"
		   "Commands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-9s %s\n", commands[i].name,
			commands[i].summary);
	fprintf(f, "\n"
		   "`utcp COMMAND --help` describes each one.\n"
		   "\n"
		   "Environment:\n"
		   "  UTCP_SOCKET    the daemon's control socket "
		   "(default " UTCP_DEFAULT_SOCKET ")\n"
		   "  UTCPD          the utcpd binary `utcp sandbox` starts\n"
		   "  UTCP_PRELOAD   the libutcp.so `utcp run` preloads\n");
}

int
main(int argc, char **argv)
{
	const char *name;

	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	name = argv[1];
	if (cli_is_help(name)) {
		usage(stdout);
		return 0;
	}
	if (strcmp(name, "help") == 0) {
		if (argc == 2) {
			usage(stdout);
			return 0;
		}
		/* `utcp help run` is `utcp run --help`. */
		char *help_argv[] = {argv[2], "--help", NULL};
		for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]);
		     i++)
			if (strcmp(argv[2], commands[i].name) == 0)
				return commands[i].fn(2, help_argv);
		fprintf(stderr, "utcp: unknown command '%s'\n", argv[2]);
		return EXIT_USAGE;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(name, commands[i].name) == 0)
			return commands[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "utcp: unknown command '%s' (try `utcp --help`)\n",
		name);
	return EXIT_USAGE;
}
