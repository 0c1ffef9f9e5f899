/*
 * cli.h — what the subcommands of the `utcp` tool share.
 *
 * Exit codes, as in most Unix tools: 0 success, 1 failure, 2 bad usage;
 * `sandbox` and `run` return their command's status (126/127 when it cannot
 * be executed, 128+N when a signal N killed it).
 */
#ifndef UTCP_CLI_H
#define UTCP_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "ipc.h"

#define EXIT_USAGE 2
#define RUN_FAIL 125 /* utcp run itself failed (cf. env(1)) */

int cmd_sandbox(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_stat(int argc, char **argv);
int cmd_ss(int argc, char **argv);
int cmd_trace(int argc, char **argv);
int cmd_diagram(int argc, char **argv);

/* `utcp run --trace/--pcap` (runtrace.c). */
struct run_trace {
	bool trace, json;
	const char *trace_file; /* NULL: stderr */
	const char *pcap_file;  /* NULL: no capture */
	uint64_t pcap_max;      /* 0: no cap */
};
/* Run cmd (LD_PRELOAD already set) as our child, tagged, and write its
 * trace and capture until it and its connections are done. Returns the
 * exit status for utcp run. */
int run_traced(const struct run_trace *rt, const char *sock_path,
	       char **cmd);

/* The directory of the running executable (from /proc/self/exe), or NULL. */
const char *cli_self_dir(void);

/* A companion file of this executable: $env when set (it must pass
 * access(mode)), else dirname(exe)/near, else dirname(exe)/far. Returns a
 * malloc'd absolute path, or NULL with errno set. */
char *cli_find_companion(const char *env, const char *near, const char *far,
			 int mode);

/* Connect to the daemon's control socket and say HELLO. Returns the
 * connected fd (close-on-exec, with a send/receive timeout so a wedged
 * daemon cannot hang the tool) or -errno; *daemon_pid gets the daemon's pid
 * when not NULL. */
int cli_ctl_open(const char *path, pid_t *daemon_pid);
/* One request, one reply. Returns 0 (the daemon's own answer is rep->err)
 * or -errno for a transport failure. */
int cli_ctl_call(int fd, struct utcp_req *req, struct utcp_rep *rep);
void cli_req_init(struct utcp_req *req, enum utcp_op op);

/* Parse a decimal number in [lo, hi]; 0, or -1 if it is not one. */
int cli_parse_ulong(const char *s, unsigned long lo, unsigned long hi,
		    unsigned long *out);

/* True when argv[i] is -h or --help. */
bool cli_is_help(const char *arg);

#endif
