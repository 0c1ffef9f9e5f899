/*
 * runtrace.c — `utcp run --trace/--pcap`: CMD runs as our child, tagged
 * (UTCP_TRACE_TAG=<our pid>, which the preload hands to the daemon), and
 * we follow the daemon's trace stream for that tag.
 *
 * Order matters at both ends. We subscribe before CMD exists, so its
 * first socket() is in the trace. After CMD exits its connections may
 * still be closing (the daemon sends the FIN once it sees the program's
 * end close; TIME-WAIT or LAST-ACK follow): we keep reading until every
 * socket we saw is closed, in TIME-WAIT or freed (at most LINGER_MS), then
 * put a sync marker through the stream, so the last segments and events
 * the daemon produced are in the output too.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "trace.h"

#define LINGER_MS 3000 /* after CMD: how long its connections may take */
#define SYNC_MS 1000

static int
open_outputs(const struct run_trace *rt, struct trace *t,
	     struct utcp_pcap *pcap)
{
	int r;

	if (rt->trace) {
		if (rt->trace_file != NULL) {
			t->out = fopen(rt->trace_file, "we");
			if (t->out == NULL) {
				fprintf(stderr, "utcp run: %s: %s\n",
					rt->trace_file, strerror(errno));
				return -1;
			}
		} else {
			/* Our own buffered stream on stderr: one write per
			 * batch, not per line. */
			int fd = fcntl(2, F_DUPFD_CLOEXEC, 3);
			if (fd < 0 || (t->out = fdopen(fd, "w")) == NULL) {
				fprintf(stderr, "utcp run: stderr: %s\n",
					strerror(errno));
				if (fd >= 0)
					close(fd);
				return -1;
			}
		}
		t->json = rt->json;
		t->color = !rt->json && trace_want_color(t->out);
	}
	if (rt->pcap_file != NULL) {
		if ((r = utcp_pcap_open(pcap, rt->pcap_file, rt->pcap_max)) < 0) {
			fprintf(stderr, "utcp run: %s: %s\n", rt->pcap_file,
				strerror(-r));
			return -1;
		}
		t->pcap = pcap;
	}
	return 0;
}

static int
close_outputs(const struct run_trace *rt, struct trace *t,
	      struct utcp_pcap *pcap)
{
	int bad = 0, r;

	if (t->out != NULL && fclose(t->out) != 0) {
		fprintf(stderr, "utcp run: %s: %s\n",
			rt->trace_file ? rt->trace_file : "stderr",
			strerror(errno));
		bad = 1;
	}
	t->out = NULL;
	if (t->pcap != NULL) {
		if (pcap->skipped > 0)
			fprintf(stderr,
				"utcp run: %s reached --pcap-max: %llu "
				"packets were not written\n",
				rt->pcap_file,
				(unsigned long long)pcap->skipped);
		if ((r = utcp_pcap_close(pcap)) < 0) {
			fprintf(stderr, "utcp run: %s: %s\n", rt->pcap_file,
				strerror(-r));
			bad = 1;
		}
	}
	t->pcap = NULL;
	return bad;
}

static int
exit_status(int st)
{
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	if (WIFSIGNALED(st))
		return 128 + WTERMSIG(st);
	return RUN_FAIL;
}

int
run_traced(const struct run_trace *rt, const char *sock_path, char **cmd)
{
	struct trace t = {.prog = "utcp run", .fd = -1};
	struct utcp_pcap pcap = {0};
	sigset_t mask, old;
	char tag[16];
	int sfd = -1, status = 0, rc = RUN_FAIL, werr;
	bool exited = false;
	uint64_t deadline = 0;
	pid_t child;

	if (open_outputs(rt, &t, &pcap) < 0)
		goto out;
	if (trace_open(&t, sock_path, 0, (uint32_t)getpid(),
		       rt->pcap_file != NULL ? UTCP_TRACE_PACKETS : 0) < 0)
		goto out;
	snprintf(tag, sizeof(tag), "%ld", (long)getpid());
	if (setenv("UTCP_TRACE_TAG", tag, 1) != 0) {
		fprintf(stderr, "utcp run: setenv: %s\n", strerror(errno));
		goto out;
	}

	/* Signals through a signalfd: CMD's exit wakes the loop, and the
	 * ones meant for the run go on to CMD. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGQUIT);
	if (sigprocmask(SIG_BLOCK, &mask, &old) != 0 ||
	    (sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK)) < 0) {
		fprintf(stderr, "utcp run: signalfd: %s\n", strerror(errno));
		goto out;
	}
	fflush(NULL);
	child = fork();
	if (child < 0) {
		fprintf(stderr, "utcp run: fork: %s\n", strerror(errno));
		goto out;
	}
	if (child == 0) {
		sigprocmask(SIG_SETMASK, &old, NULL);
		execvp(cmd[0], cmd);
		int err = errno;
		fprintf(stderr, "utcp run: %s: %s\n", cmd[0], strerror(err));
		_exit(err == ENOENT ? 127 : 126);
	}

	for (;;) {
		struct pollfd p[2] = {{.fd = sfd, .events = POLLIN},
				      {.fd = t.fd, .events = POLLIN}};
		int timeout = -1;

		if (exited) {
			uint64_t now = trace_mono_us();
			if (now >= deadline || trace_quiet(&t) || t.eof)
				break;
			timeout = (int)((deadline - now + 999) / 1000);
		}
		if (poll(p, t.eof ? 1 : 2, timeout) < 0 && errno != EINTR) {
			fprintf(stderr, "utcp run: poll: %s\n",
				strerror(errno));
			break;
		}
		trace_drain(&t);
		struct signalfd_siginfo si;
		while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
			if (si.ssi_signo != SIGCHLD) {
				/* A terminal's signal reached CMD too (same
				 * process group); one sent to us alone
				 * (kill) is passed on. */
				if (si.ssi_code == SI_USER ||
				    si.ssi_code == SI_QUEUE)
					kill(child, (int)si.ssi_signo);
				continue;
			}
		}
		if (!exited && waitpid(child, &status, WNOHANG) == child) {
			exited = true;
			deadline = trace_mono_us() + LINGER_MS * 1000u;
			/* The program's last words reach the daemon on
			 * their own connections: one round through the
			 * stream lets them arrive. */
			trace_sync(&t, SYNC_MS);
		}
	}
	/* Everything the daemon did up to now, then done. */
	trace_sync(&t, SYNC_MS);
	trace_sync(&t, SYNC_MS);
	trace_finish(&t);
	rc = exit_status(status);
	if (!exited) {
		/* poll failed with CMD still running: wait for it. */
		while (waitpid(child, &status, 0) < 0 && errno == EINTR)
			;
		rc = exit_status(status);
	}
out:
	werr = t.write_err;
	if (close_outputs(rt, &t, &pcap) != 0 || werr < 0) {
		if (werr < 0)
			fprintf(stderr, "utcp run: writing the trace: %s\n",
				strerror(-werr));
		if (rc == 0)
			rc = RUN_FAIL;
	}
	trace_close(&t);
	if (sfd >= 0)
		close(sfd);
	return rc;
}
