/*
 * run.c — `utcp run`: exec a command with libutcp.so preloaded, after
 * checking that a daemon answers, so a mistake shows as one clear line
 * here rather than as a connection error deep inside the program.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "pcap.h"


static void
run_usage(FILE *f)
{
	fprintf(f,
		"Usage: utcp run [OPTIONS] -- CMD [ARG]...\n"
		"\n"
		"Run CMD with libutcp.so preloaded: its TCP sockets (AF_INET "
		"and AF_INET6,\n"
		"SOCK_STREAM) are served by the utcpd at $UTCP_SOCKET "
		"(default\n" UTCP_DEFAULT_SOCKET
		"); every other socket stays with the "
		"kernel. utcp run\n"
		"fails at once if no daemon answers there. Inside `utcp "
		"sandbox`,\n"
		"UTCP_SOCKET is already set.\n"
		"\n"
		"Options:\n"
		"  --trace              print a timeline of CMD's sockets on "
		"stderr: each\n"
		"                       intercepted call with its result and "
		"duration, each\n"
		"                       state change with its cause, "
		"retransmissions, probes,\n"
		"                       RSTs and drops\n"
		"  --trace-file F       write the timeline to F instead "
		"(implies --trace)\n"
		"  --trace-format FMT   text (default) or json: one object "
		"per line\n"
		"                       (implies --trace)\n"
		"  --pcap FILE          write the packets of CMD's connections "
		"that cross the\n"
		"                       TUN to FILE (pcap, readable by tcpdump "
		"and tshark)\n"
		"  --pcap-max SIZE      stop capturing before FILE grows past "
		"SIZE bytes\n"
		"                       (k, M, G suffixes)\n"
		"  --busy-poll USEC     a blocking receive, connect or accept "
		"on an engine\n"
		"                       socket polls for up to USEC µs (0 to "
		"10000) before\n"
		"                       it sleeps: lower latency for CPU time "
		"(sets\n"
		"                       UTCP_BUSY_POLL; see also utcpd "
		"--busy-poll)\n"
		"  -h, --help           show this help\n"
		"\n"
		"The library is $UTCP_PRELOAD, else libutcp.so next to this "
		"program, else\n"
		"../lib/libutcp.so. A statically linked CMD cannot be "
		"intercepted: utcp run\n"
		"warns about it. With UTCP_FALLBACK=kernel a missing daemon is "
		"a warning and\n"
		"the program's TCP goes to the kernel.\n"
		"\n"
		"With --trace or --pcap, utcp run stays CMD's parent: it "
		"exports\n"
		"UTCP_TRACE_TAG so the daemon marks the sockets of CMD and its "
		"children, and\n"
		"after CMD exits it waits (up to 3 s) for their connections to "
		"finish\n"
		"closing, so the trace and the capture include the last "
		"segments.\n"
		"\n"
		"Exit status: CMD's; 125 when utcp run fails; 126/127 when CMD "
		"cannot be run.\n");
}

/* CMD's file as execvp would find it, or NULL. */
static char *
resolve_cmd(const char *name)
{
	const char *path = getenv("PATH");
	char buf[PATH_MAX];

	if (strchr(name, '/') != NULL)
		return strdup(name);
	if (path == NULL)
		path = "/usr/local/bin:/usr/bin:/bin";
	while (*path != '\0') {
		const char *colon = strchrnul(path, ':');
		size_t len = (size_t)(colon - path);
		struct stat sb;
		int n;

		if (len == 0)
			n = snprintf(buf, sizeof(buf), "./%s", name);
		else
			n = snprintf(buf, sizeof(buf), "%.*s/%s", (int)len,
				     path, name);
		if (n > 0 && (size_t)n < sizeof(buf) && stat(buf, &sb) == 0 &&
		    S_ISREG(sb.st_mode) && access(buf, X_OK) == 0)
			return strdup(buf);
		path = *colon == ':' ? colon + 1 : colon;
	}
	return NULL;
}

/* 1 when an executable has no PT_INTERP (static, or static-pie: the
 * dynamic loader never runs, so LD_PRELOAD is never read); 0 when it is
 * dynamic; -1 when it is not an ELF file we understand. */
static int
elf_is_static(int fd)
{
	Elf64_Ehdr eh;
	Elf64_Phdr ph;

	if (pread(fd, &eh, sizeof(eh), 0) != (ssize_t)sizeof(eh) ||
	    memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0)
		return -1;
	if (eh.e_ident[EI_CLASS] == ELFCLASS32) {
		Elf32_Ehdr e32;
		Elf32_Phdr p32;
		memcpy(&e32, &eh, sizeof(e32));
		if (e32.e_type != ET_EXEC && e32.e_type != ET_DYN)
			return -1;
		for (unsigned i = 0; i < e32.e_phnum; i++) {
			off_t off =
			    (off_t)e32.e_phoff + (off_t)i * e32.e_phentsize;
			if (pread(fd, &p32, sizeof(p32), off) !=
			    (ssize_t)sizeof(p32))
				return -1;
			if (p32.p_type == PT_INTERP)
				return 0;
		}
		return 1;
	}
	if (eh.e_ident[EI_CLASS] != ELFCLASS64 ||
	    (eh.e_type != ET_EXEC && eh.e_type != ET_DYN))
		return -1;
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		off_t off = (off_t)eh.e_phoff + (off_t)i * eh.e_phentsize;
		if (pread(fd, &ph, sizeof(ph), off) != (ssize_t)sizeof(ph))
			return -1;
		if (ph.p_type == PT_INTERP)
			return 0;
	}
	return 1;
}

/* The file that will really run: CMD itself, or for a "#!" script its
 * interpreter (through `env NAME` too). One level deep is enough for a
 * warning. Returns a malloc'd path or NULL. */
static char *
effective_binary(const char *file)
{
	char line[256], *p, *interp, *arg;
	ssize_t n;
	int fd = open(file, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return NULL;
	n = pread(fd, line, sizeof(line) - 1, 0);
	close(fd);
	if (n < 2 || line[0] != '#' || line[1] != '!')
		return strdup(file);
	line[n] = '\0';
	line[strcspn(line, "\n")] = '\0';
	p = line + 2;
	interp = strtok(p, " \t");
	if (interp == NULL)
		return NULL;
	arg = strtok(NULL, " \t");
	if (arg != NULL && strcmp(interp, "/usr/bin/env") == 0 && arg[0] != '-')
		return resolve_cmd(arg);
	return strdup(interp);
}

static void
warn_if_static(const char *name)
{
	char *file = resolve_cmd(name);
	char *bin = file != NULL ? effective_binary(file) : NULL;
	int fd;

	if (bin != NULL && (fd = open(bin, O_RDONLY | O_CLOEXEC)) >= 0) {
		if (elf_is_static(fd) == 1)
			fprintf(stderr,
				"utcp run: warning: %s is statically linked: "
				"the preload cannot intercept it, its TCP "
				"goes to the kernel\n",
				bin);
		close(fd);
	}
	free(bin);
	free(file);
}

/* LD_PRELOAD with lib first (once). */
static int
prepend_preload(const char *lib)
{
	const char *old = getenv("LD_PRELOAD");
	char *val;
	int r;

	if (old == NULL || old[0] == '\0')
		return setenv("LD_PRELOAD", lib, 1);
	/* already first: nothing to do */
	size_t len = strlen(lib);
	if (strncmp(old, lib, len) == 0 &&
	    (old[len] == '\0' || old[len] == ':' || old[len] == ' '))
		return 0;
	if (asprintf(&val, "%s:%s", lib, old) < 0)
		return -1;
	r = setenv("LD_PRELOAD", val, 1);
	free(val);
	return r;
}

int
cmd_run(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"trace", no_argument, NULL, 't'},
	    {"trace-file", required_argument, NULL, 'T'},
	    {"trace-format", required_argument, NULL, 'F'},
	    {"pcap", required_argument, NULL, 'p'},
	    {"pcap-max", required_argument, NULL, 'P'},
	    {"busy-poll", required_argument, NULL, 'b'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct run_trace rt = {0};
	const char *path, *fallback, *busy_poll = NULL;
	char *lib;
	int c, fd;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
		switch (c) {
		case 't':
			rt.trace = true;
			break;
		case 'T':
			rt.trace = true;
			rt.trace_file = optarg;
			break;
		case 'F':
			rt.trace = true;
			if (strcmp(optarg, "json") == 0) {
				rt.json = true;
			} else if (strcmp(optarg, "text") == 0) {
				rt.json = false;
			} else {
				fprintf(stderr,
					"utcp run: --trace-format is text or "
					"json, not '%s'\n",
					optarg);
				return EXIT_USAGE;
			}
			break;
		case 'p':
			rt.pcap_file = optarg;
			break;
		case 'P':
			if (utcp_parse_size(optarg, &rt.pcap_max) != 0) {
				fprintf(stderr,
					"utcp run: bad --pcap-max '%s' (a size "
					"in bytes, k, M or G)\n",
					optarg);
				return EXIT_USAGE;
			}
			break;
		case 'b': {
			unsigned long v;

			if (cli_parse_ulong(optarg, 0, 10000, &v) != 0) {
				fprintf(stderr,
					"utcp run: bad --busy-poll '%s' (0 to "
					"10000 microseconds)\n",
					optarg);
				return EXIT_USAGE;
			}
			busy_poll = optarg;
			break;
		}
		case 'h':
			run_usage(stdout);
			return 0;
		default:
			fprintf(stderr,
				"utcp run: unknown option or missing "
				"argument: '%s'\nTry `utcp run --help`.\n",
				argv[optind - 1]);
			return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "utcp run: no command given\n"
				"Try `utcp run --help`.\n");
		return EXIT_USAGE;
	}
	if (rt.pcap_max != 0 && rt.pcap_file == NULL) {
		fprintf(stderr, "utcp run: --pcap-max needs --pcap\n");
		return EXIT_USAGE;
	}

	lib = cli_find_companion("UTCP_PRELOAD", "libutcp.so",
				 "../lib/libutcp.so", R_OK);
	if (lib == NULL) {
		const char *env = getenv("UTCP_PRELOAD");
		if (env != NULL && env[0] != '\0')
			fprintf(stderr, "utcp run: UTCP_PRELOAD=%s: %s\n", env,
				strerror(errno));
		else
			fprintf(stderr,
				"utcp run: cannot find libutcp.so in %s or "
				"%s/../lib (set UTCP_PRELOAD)\n",
				cli_self_dir() ? cli_self_dir() : "?",
				cli_self_dir() ? cli_self_dir() : "?");
		return RUN_FAIL;
	}

	path = utcp_ipc_socket_path();
	fd = cli_ctl_open(path, NULL);
	if (fd < 0) {
		fallback = getenv("UTCP_FALLBACK");
		if ((rt.trace || rt.pcap_file != NULL)) {
			fprintf(stderr,
				"utcp run: no utcpd answers at %s (%s): "
				"nothing to trace or capture; start one "
				"(utcp sandbox) or set UTCP_SOCKET\n",
				path, strerror(-fd));
			free(lib);
			return RUN_FAIL;
		}
		if (fallback != NULL && strcmp(fallback, "kernel") == 0) {
			fprintf(stderr,
				"utcp run: warning: no utcpd answers at %s "
				"(%s); UTCP_FALLBACK=kernel: TCP goes to the "
				"kernel\n",
				path, strerror(-fd));
		} else {
			fprintf(stderr,
				"utcp run: no utcpd answers at %s (%s); start "
				"one (utcp sandbox) or set UTCP_SOCKET\n",
				path, strerror(-fd));
			free(lib);
			return RUN_FAIL;
		}
	} else {
		close(fd);
	}

	warn_if_static(argv[optind]);
	if ((busy_poll != NULL && setenv("UTCP_BUSY_POLL", busy_poll, 1) != 0) ||
	    prepend_preload(lib) != 0) {
		fprintf(stderr, "utcp run: setenv: %s\n", strerror(errno));
		free(lib);
		return RUN_FAIL;
	}
	free(lib);
	if (rt.trace || rt.pcap_file != NULL)
		return run_traced(&rt, path, argv + optind);
	execvp(argv[optind], argv + optind);
	int err = errno;
	fprintf(stderr, "utcp run: %s: %s\n", argv[optind], strerror(err));
	return err == ENOENT ? 127 : 126;
}
