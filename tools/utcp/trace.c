/*
 * trace.c — `utcp trace`: attach to the running daemon and follow its
 * events (and, with --pcap, its packets) live until interrupted.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "cli.h"
#include "trace.h"

static void
trace_usage(FILE *f)
{
	fprintf(f,
		"Usage: utcp trace [OPTIONS]\n"
		"\n"
		"Follow the daemon at $UTCP_SOCKET live: state changes with "
		"their cause,\n"
		"retransmissions, keepalive and zero-window probes, RSTs sent "
		"and received,\n"
		"drops with their counter's name, and the calls of programs "
		"run with\n"
		"`utcp run --trace`. Runs until interrupted (Ctrl-C, SIGTERM) "
		"or the daemon\n"
		"stops.\n"
		"\n"
		"Options:\n"
		"  -p, --pid PID        only the sockets of process PID\n"
		"      --tag TAG        only the sockets of one traced run "
		"(its UTCP_TRACE_TAG)\n"
		"  -j, --json           one JSON object per line (default: "
		"text)\n"
		"  -o, --output FILE    write the events to FILE instead of "
		"stdout\n"
		"      --pcap FILE      also write the packets that cross the "
		"TUN to FILE\n"
		"                       (pcap; with --pid or --tag, only those "
		"connections')\n"
		"      --pcap-max SIZE  stop capturing before FILE grows past "
		"SIZE bytes\n"
		"  -h, --help           show this help\n");
}

int
cmd_trace(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"pid", required_argument, NULL, 'p'},
	    {"tag", required_argument, NULL, 'g'},
	    {"json", no_argument, NULL, 'j'},
	    {"output", required_argument, NULL, 'o'},
	    {"pcap", required_argument, NULL, 'P'},
	    {"pcap-max", required_argument, NULL, 'M'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct trace t = {.prog = "utcp trace", .fd = -1};
	struct utcp_pcap pcap = {0};
	const char *output = NULL, *pcap_file = NULL;
	unsigned long pid = 0, tag = 0;
	uint64_t pcap_max = 0;
	sigset_t mask;
	int c, sfd = -1, rc = 1, r;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "+p:jo:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'p':
			if (cli_parse_ulong(optarg, 1, INT32_MAX, &pid) != 0) {
				fprintf(stderr, "utcp trace: bad --pid '%s'\n",
					optarg);
				return EXIT_USAGE;
			}
			break;
		case 'g':
			if (cli_parse_ulong(optarg, 1, INT32_MAX, &tag) != 0) {
				fprintf(stderr, "utcp trace: bad --tag '%s'\n",
					optarg);
				return EXIT_USAGE;
			}
			break;
		case 'j':
			t.json = true;
			break;
		case 'o':
			output = optarg;
			break;
		case 'P':
			pcap_file = optarg;
			break;
		case 'M':
			if (utcp_parse_size(optarg, &pcap_max) != 0) {
				fprintf(stderr,
					"utcp trace: bad --pcap-max '%s'\n",
					optarg);
				return EXIT_USAGE;
			}
			break;
		case 'h':
			trace_usage(stdout);
			return 0;
		default:
			fprintf(stderr,
				"utcp trace: unknown option or missing "
				"argument: '%s'\nTry `utcp trace --help`.\n",
				argv[optind - 1]);
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr,
			"utcp trace: unexpected argument '%s'\n"
			"Try `utcp trace --help`.\n",
			argv[optind]);
		return EXIT_USAGE;
	}
	if (pcap_max != 0 && pcap_file == NULL) {
		fprintf(stderr, "utcp trace: --pcap-max needs --pcap\n");
		return EXIT_USAGE;
	}
	if (pcap_file != NULL && strcmp(pcap_file, "-") == 0 &&
	    output == NULL) {
		/* the events and the capture cannot share stdout */
		output = "/dev/stderr";
	}

	t.out = output != NULL ? fopen(output, "we") : stdout;
	if (t.out == NULL) {
		fprintf(stderr, "utcp trace: %s: %s\n", output,
			strerror(errno));
		return 1;
	}
	t.color = !t.json && trace_want_color(t.out);
	if (pcap_file != NULL) {
		if ((r = utcp_pcap_open(&pcap, pcap_file, pcap_max)) < 0) {
			fprintf(stderr, "utcp trace: %s: %s\n", pcap_file,
				strerror(-r));
			goto out;
		}
		t.pcap = &pcap;
	}

	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGPIPE);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) != 0 ||
	    (sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK)) < 0) {
		fprintf(stderr, "utcp trace: signalfd: %s\n", strerror(errno));
		goto out;
	}
	if (trace_open(&t, utcp_ipc_socket_path(), (pid_t)pid, (uint32_t)tag,
		       pcap_file != NULL ? UTCP_TRACE_PACKETS : 0) < 0)
		goto out;
	/* Scripts wait for this line before they start what they trace. */
	fprintf(stderr, "utcp trace: following %s%s\n",
		utcp_ipc_socket_path(),
		pid ? " (one process)" : tag ? " (one run)" : "");

	for (;;) {
		struct pollfd p[2] = {{.fd = sfd, .events = POLLIN},
				      {.fd = t.fd, .events = POLLIN}};
		struct signalfd_siginfo si;

		if (poll(p, 2, -1) < 0 && errno != EINTR)
			break;
		if (trace_drain(&t) < 0) {
			fprintf(stderr, "utcp trace: the daemon closed the "
					"stream (stopped?)\n");
			break;
		}
		if (t.write_err < 0)
			break; /* a closed pipe, a full disk */
		if (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
			if (si.ssi_signo == SIGPIPE)
				break;
			trace_sync(&t, 1000);
			break;
		}
	}
	trace_finish(&t);
	rc = t.write_err < 0 && t.write_err != -EPIPE ? 1 : 0;
	if (t.write_err < 0 && t.write_err != -EPIPE)
		fprintf(stderr, "utcp trace: writing: %s\n",
			strerror(-t.write_err));
out:
	if (t.out != NULL && t.out != stdout)
		fclose(t.out);
	else if (t.out == stdout)
		fflush(stdout);
	if (t.pcap != NULL) {
		if (pcap.skipped > 0)
			fprintf(stderr,
				"utcp trace: %s reached --pcap-max: %llu "
				"packets were not written\n",
				pcap_file, (unsigned long long)pcap.skipped);
		if ((r = utcp_pcap_close(&pcap)) < 0) {
			fprintf(stderr, "utcp trace: %s: %s\n", pcap_file,
				strerror(-r));
			rc = 1;
		}
	}
	trace_close(&t);
	if (sfd >= 0)
		close(sfd);
	return rc;
}
