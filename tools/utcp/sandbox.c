/*
 * sandbox.c — `utcp sandbox`: a throw-away network namespace with a TUN
 * device driven by its own utcpd, and a command running inside it.
 *
 * Order of events:
 *   1. enter a fresh network namespace (as root: unshare(CLONE_NEWNET);
 *      otherwise a user namespace too, mapping only our own uid/gid);
 *   2. bring `lo` up;
 *   3. start utcpd with its control socket in a private temp dir and wait
 *      for it to write to --ready-fd (then check it answers HELLO);
 *   4. run CMD with UTCP_SOCKET set and forward our signals to it;
 *   5. when CMD exits: terminate whatever else still lives in the
 *      namespace, SIGTERM the daemon, wait for it, remove the temp dir.
 * The namespace then has no process left and the kernel frees it, TUN and
 * all.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <limits.h>
#include <linux/capability.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#define SB_FAIL 125 /* the sandbox itself failed (cf. env(1)) */
#define SB_TUN "utcp0"
#define SB_READY_FD 3 /* where the daemon finds its ready pipe */
#define SB_READY_TIMEOUT_MS 10000
#define SB_DAEMON_STOP_MS 5000 /* SIGTERM → SIGKILL */
#define SB_LEFTOVER_STOP_MS 2000
#define SB_LOG_TAIL 8192 /* bytes of the daemon's log shown on failure */

struct sb_opts {
	const char *addr, *peer, *prefix, *mtu;
	const char *addr6, *peer6;
	const char *daemon_log; /* NULL: private file, shown on failure */
	const char *fault;      /* --fault SPEC for the daemon, NULL: none */
	const char *busy_poll;  /* --busy-poll USEC for the daemon, or NULL */
	bool shell;
	char **cmd;
};

struct sb_state {
	char tmpdir[PATH_MAX];
	char sock[PATH_MAX];
	char log[PATH_MAX];
	bool log_is_private;
	pid_t daemon;
	bool daemon_reaped;
	bool daemon_reported; /* its failure was already shown */
	int daemon_status;
	bool unprivileged; /* inside a user namespace we made */
};

/* The pid our signal handler forwards to (CMD, once it exists). */
static volatile pid_t sb_forward_pid;

static void
sb_usage(FILE *f)
{
	fprintf(
	    f,
	    "Usage: utcp sandbox [OPTIONS] -- CMD [ARG]...\n"
	    "       utcp sandbox [OPTIONS] --shell\n"
	    "\n"
	    "Run CMD in a fresh network namespace where a private utcpd "
	    "drives a TUN\n"
	    "device: the engine is ADDR, the kernel's side of the TUN is "
	    "PEER. CMD runs\n"
	    "without the preload, with UTCP_SOCKET pointing at the daemon: "
	    "start\n"
	    "kernel-side servers on PEER and `utcp run` clients. When CMD "
	    "exits, processes\n"
	    "left in the namespace are terminated, the daemon is stopped and "
	    "the\n"
	    "namespace disappears with them.\n"
	    "\n"
	    "Options:\n"
	    "  --addr A         the engine's address (default 198.18.0.2)\n"
	    "  --peer A         the kernel's side of the TUN (default "
	    "198.18.0.1)\n"
	    "  --prefix N       prefix length of the TUN network (default "
	    "24)\n"
	    "  --addr6 A        the engine's IPv6 address (default "
	    "fd75:7463:7000::2)\n"
	    "  --peer6 A        the kernel's IPv6 side (default "
	    "fd75:7463:7000::1)\n"
	    "  --mtu N          the TUN device's MTU (default: the "
	    "daemon's)\n"
	    "  --fault SPEC     the daemon's seeded fault injector (utcpd "
	    "--help):\n"
	    "                   e.g. seed=7,reorder=5%%,delay=20,jitter=10\n"
	    "  --busy-poll USEC the daemon polls USEC µs after work before "
	    "it sleeps,\n"
	    "                   and CMD gets UTCP_BUSY_POLL=USEC, so that "
	    "programs under\n"
	    "                   `utcp run` poll as long before they wait "
	    "(default 0: off)\n"
	    "  --shell          start $SHELL (or /bin/sh) when no CMD is "
	    "given\n"
	    "  --daemon-log F   append utcpd's output to F (by default it "
	    "is shown\n"
	    "                   only if the daemon fails)\n"
	    "  -h, --help       show this help\n"
	    "\n"
	    "CMD gets UTCP_SOCKET, UTCP_SANDBOX=1, UTCP_SANDBOX_ADDR, "
	    "UTCP_SANDBOX_PEER,\n"
	    "UTCP_SANDBOX_ADDR6 and UTCP_SANDBOX_PEER6.\n"
	    "The daemon is $UTCPD, else utcpd next to this program, else "
	    "../sbin/utcpd.\n"
	    "Needs root, or unprivileged user namespaces.\n"
	    "\n"
	    "Exit status: CMD's (128+N when signal N killed it); 125 when "
	    "the sandbox\n"
	    "could not be set up, or when CMD succeeded but the daemon "
	    "failed.\n");
}

static int
sb_parse(int argc, char **argv, struct sb_opts *o)
{
	static const struct option longopts[] = {
	    {"addr", required_argument, NULL, 'a'},
	    {"peer", required_argument, NULL, 'p'},
	    {"addr6", required_argument, NULL, '6'},
	    {"peer6", required_argument, NULL, '7'},
	    {"prefix", required_argument, NULL, 'P'},
	    {"mtu", required_argument, NULL, 'm'},
	    {"shell", no_argument, NULL, 's'},
	    {"fault", required_argument, NULL, 'f'},
	    {"busy-poll", required_argument, NULL, 'b'},
	    {"daemon-log", required_argument, NULL, 'l'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	unsigned char buf[sizeof(struct in6_addr)];
	unsigned long v;
	int c;

	*o = (struct sb_opts){.addr = "198.18.0.2",
			      .peer = "198.18.0.1",
			      .prefix = "24",
			      .addr6 = "fd75:7463:7000::2",
			      .peer6 = "fd75:7463:7000::1"};
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
		switch (c) {
		case 'a':
		case 'p':
			if (inet_pton(AF_INET, optarg, buf) != 1) {
				fprintf(stderr,
					"utcp sandbox: '%s' is not an IPv4 "
					"address\n",
					optarg);
				return -1;
			}
			if (c == 'a')
				o->addr = optarg;
			else
				o->peer = optarg;
			break;
		case '6':
		case '7':
			if (inet_pton(AF_INET6, optarg, buf) != 1) {
				fprintf(stderr,
					"utcp sandbox: '%s' is not an IPv6 "
					"address\n",
					optarg);
				return -1;
			}
			if (c == '6')
				o->addr6 = optarg;
			else
				o->peer6 = optarg;
			break;
		case 'P':
			if (cli_parse_ulong(optarg, 1, 32, &v) != 0) {
				fprintf(stderr,
					"utcp sandbox: bad --prefix '%s'\n",
					optarg);
				return -1;
			}
			o->prefix = optarg;
			break;
		case 'm':
			/* 68: the smallest MTU IPv4 allows (RFC 791). */
			if (cli_parse_ulong(optarg, 68, 65535, &v) != 0) {
				fprintf(stderr,
					"utcp sandbox: bad --mtu '%s' (68 to "
					"65535)\n",
					optarg);
				return -1;
			}
			o->mtu = optarg;
			break;
		case 's':
			o->shell = true;
			break;
		case 'f': /* utcpd checks it, and says what is wrong */
			o->fault = optarg;
			break;
		case 'b':
			if (cli_parse_ulong(optarg, 0, 10000, &v) != 0) {
				fprintf(stderr,
					"utcp sandbox: bad --busy-poll '%s' (0 "
					"to 10000 microseconds)\n",
					optarg);
				return -1;
			}
			o->busy_poll = optarg;
			break;
		case 'l':
			o->daemon_log = optarg;
			break;
		case 'h':
			sb_usage(stdout);
			exit(0);
		default:
			fprintf(stderr, "utcp sandbox: unknown option '%s'\n",
				argv[optind - 1]);
			return -1;
		}
	}
	o->cmd = argv + optind;
	if (o->cmd[0] == NULL && !o->shell) {
		fprintf(stderr, "utcp sandbox: no command given\n");
		return -1;
	}
	if (o->cmd[0] != NULL && o->shell) {
		fprintf(stderr,
			"utcp sandbox: --shell and a command exclude each "
			"other\n");
		return -1;
	}
	return 0;
}

static int
write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n;
	int err;

	if (fd < 0)
		return -errno;
	n = write(fd, text, strlen(text));
	err = n < 0 ? -errno : ((size_t)n == strlen(text) ? 0 : -EIO);
	close(fd);
	return err;
}

/* A user namespace that maps only ourselves, plus a network namespace it
 * owns: what an unprivileged user may create. */
static int
enter_user_netns(void)
{
	uid_t uid = geteuid();
	gid_t gid = getegid();
	char map[64];
	int r;

	if (unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0)
		return -errno;
	/* An unprivileged gid_map needs setgroups denied first
	 * (user_namespaces(7)). */
	r = write_file("/proc/self/setgroups", "deny");
	if (r < 0 && r != -ENOENT)
		return r;
	snprintf(map, sizeof(map), "%u %u 1\n", (unsigned)uid, (unsigned)uid);
	if ((r = write_file("/proc/self/uid_map", map)) < 0)
		return r;
	snprintf(map, sizeof(map), "%u %u 1\n", (unsigned)gid, (unsigned)gid);
	if ((r = write_file("/proc/self/gid_map", map)) < 0)
		return r;
	/* Let CMD bind low ports on the kernel side, as root could; this
	 * sysctl belongs to our new namespace only. Best effort. */
	(void)write_file("/proc/sys/net/ipv4/ip_unprivileged_port_start", "0");
	return 0;
}

static int
enter_netns(struct sb_state *st)
{
	int r;

	if (geteuid() == 0) {
		if (unshare(CLONE_NEWNET) == 0)
			return 0;
		if (errno != EPERM)
			return -errno;
		/* root without CAP_SYS_ADMIN (a container): try as a user */
	}
	r = enter_user_netns();
	if (r == 0)
		st->unprivileged = true;
	return r;
}

static int
lo_up(void)
{
	struct ifreq ifr;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	int r = 0;

	if (fd < 0)
		return -errno;
	memset(&ifr, 0, sizeof(ifr));
	memcpy(ifr.ifr_name, "lo", 3);
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) != 0) {
		r = -errno;
		goto out;
	}
	ifr.ifr_flags |= IFF_UP;
	if (ioctl(fd, SIOCSIFFLAGS, &ifr) != 0)
		r = -errno;
out:
	close(fd);
	return r;
}

/* Keep CAP_NET_ADMIN across the daemon's execve when it does not run as
 * uid 0 (unprivileged sandbox): the TUN and its addresses need it. */
static int
keep_net_admin(void)
{
	struct __user_cap_header_struct h = {
	    .version = _LINUX_CAPABILITY_VERSION_3,
	};
	struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3];

	if (syscall(SYS_capget, &h, d) != 0)
		return -errno;
	d[CAP_TO_INDEX(CAP_NET_ADMIN)].inheritable |=
	    CAP_TO_MASK(CAP_NET_ADMIN);
	if (syscall(SYS_capset, &h, d) != 0)
		return -errno;
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_NET_ADMIN, 0, 0) !=
	    0)
		return -errno;
	return 0;
}

static void
reset_signals(void)
{
	static const int sigs[] = {SIGINT,  SIGQUIT, SIGTERM, SIGHUP,
				   SIGUSR1, SIGUSR2, SIGPIPE, SIGCHLD};
	sigset_t none;

	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		signal(sigs[i], SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

static long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void
sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* Print the last SB_LOG_TAIL bytes of the daemon's output to stderr. */
static void
show_daemon_log(const struct sb_state *st)
{
	char buf[SB_LOG_TAIL];
	char last = '\n';
	int fd;
	off_t size;
	ssize_t n;

	if (!st->log_is_private) {
		fprintf(stderr, "utcp sandbox: utcpd's output is in %s\n",
			st->log);
		return;
	}
	fd = open(st->log, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	size = lseek(fd, 0, SEEK_END);
	if (size <= 0) {
		fprintf(stderr, "utcp sandbox: utcpd wrote nothing to its "
				"stderr\n");
		close(fd);
		return;
	}
	lseek(fd, size > (off_t)sizeof(buf) ? size - (off_t)sizeof(buf) : 0,
	      SEEK_SET);
	fprintf(stderr, "utcp sandbox: utcpd's stderr%s:\n",
		size > (off_t)sizeof(buf) ? " (last part)" : "");
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		fwrite(buf, 1, (size_t)n, stderr);
		last = buf[n - 1];
	}
	if (last != '\n')
		fputc('\n', stderr);
	close(fd);
}

static void
describe_status(int status, char *buf, size_t len)
{
	if (WIFEXITED(status))
		snprintf(buf, len, "exited with status %d",
			 WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, len, "was killed by signal %d (%s)",
			 WTERMSIG(status), strsignal(WTERMSIG(status)));
	else
		snprintf(buf, len, "ended with wait status %#x", status);
}

static pid_t
start_daemon(struct sb_state *st, const struct sb_opts *o, const char *utcpd,
	     int ready_w, int log_fd)
{
	char fdbuf[16];
	const char *argv[32];
	int n = 0;
	pid_t parent = getpid();
	pid_t pid;

	snprintf(fdbuf, sizeof(fdbuf), "%d", SB_READY_FD);
	argv[n++] = utcpd;
	argv[n++] = "--socket";
	argv[n++] = st->sock;
	argv[n++] = "--tun";
	argv[n++] = SB_TUN;
	argv[n++] = "--addr";
	argv[n++] = o->addr;
	argv[n++] = "--peer";
	argv[n++] = o->peer;
	argv[n++] = "--prefix";
	argv[n++] = o->prefix;
	argv[n++] = "--addr6";
	argv[n++] = o->addr6;
	argv[n++] = "--peer6";
	argv[n++] = o->peer6;
	if (o->mtu != NULL) {
		argv[n++] = "--mtu";
		argv[n++] = o->mtu;
	}
	if (o->fault != NULL) {
		argv[n++] = "--fault";
		argv[n++] = o->fault;
	}
	if (o->busy_poll != NULL) {
		argv[n++] = "--busy-poll";
		argv[n++] = o->busy_poll;
	}
	argv[n++] = "--ready-fd";
	argv[n++] = fdbuf;
	argv[n] = NULL;

	pid = fork();
	if (pid != 0)
		return pid;

	/* child: its own process group, so a Ctrl-C meant for CMD does not
	 * stop the daemon under CMD's feet; we stop it ourselves. */
	setpgid(0, 0);
	/* If utcp dies (even by SIGKILL), the daemon follows. */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() != parent)
		_exit(SB_FAIL);
	reset_signals();
	int null = open("/dev/null", O_RDONLY);
	if (null < 0 || dup2(null, 0) < 0 || dup2(log_fd, 1) < 0 ||
	    dup2(log_fd, 2) < 0 || dup2(ready_w, SB_READY_FD) < 0)
		_exit(SB_FAIL);
	/* Nothing else of ours leaks into the daemon (bats' fd 3 included,
	 * which would otherwise keep a test runner waiting). */
	closefrom(SB_READY_FD + 1);
	if (st->unprivileged && getuid() != 0 && keep_net_admin() < 0) {
		fprintf(stderr,
			"utcp sandbox: cannot pass CAP_NET_ADMIN to utcpd: "
			"%s\n",
			strerror(errno));
		_exit(SB_FAIL);
	}
	execv(utcpd, (char *const *)argv);
	fprintf(stderr, "utcp sandbox: cannot execute %s: %s\n", utcpd,
		strerror(errno));
	_exit(SB_FAIL);
}

/* Wait until the daemon writes to its ready fd. 0, or -1 after saying
 * why not. */
static int
wait_ready(struct sb_state *st, int ready_r)
{
	long deadline, timeout_ms = SB_READY_TIMEOUT_MS;
	const char *env = getenv("UTCP_SANDBOX_READY_TIMEOUT");
	unsigned long v;
	char c;
	char why[96];

	if (env != NULL && cli_parse_ulong(env, 1, 3600, &v) == 0)
		timeout_ms = (long)v * 1000;
	deadline = now_ms() + timeout_ms;
	for (;;) {
		struct pollfd p = {.fd = ready_r, .events = POLLIN};
		long left = deadline - now_ms();
		int r;

		if (left <= 0) {
			fprintf(stderr,
				"utcp sandbox: utcpd did not become ready "
				"within %ld s\n",
				timeout_ms / 1000);
			show_daemon_log(st);
			return -1;
		}
		r = poll(&p, 1, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			continue;
		ssize_t n = read(ready_r, &c, 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n == 1)
			return 0;
		/* EOF: the daemon closed the pipe without a word — it died
		 * or gave up. Give it a moment to finish dying. */
		snprintf(why, sizeof(why),
			 "closed its ready fd without a word");
		for (int i = 0; i < 100; i++) {
			if (waitpid(st->daemon, &st->daemon_status, WNOHANG) ==
			    st->daemon) {
				st->daemon_reaped = true;
				describe_status(st->daemon_status, why,
						sizeof(why));
				break;
			}
			sleep_ms(10);
		}
		fprintf(stderr, "utcp sandbox: utcpd %s before it was ready\n",
			why);
		show_daemon_log(st);
		return -1;
	}
}

static void
on_signal(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	/* A terminal's Ctrl-C, Ctrl-\ or hangup went to the whole
	 * foreground process group, CMD included: don't send it twice. */
	if (si != NULL && si->si_code == SI_KERNEL)
		return;
	if (sb_forward_pid > 0)
		kill(sb_forward_pid, sig);
}

static void
install_forwarding(void)
{
	static const int sigs[] = {SIGINT, SIGQUIT, SIGTERM,
				   SIGHUP, SIGUSR1, SIGUSR2};
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_signal;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaction(sigs[i], &sa, NULL);
}

static pid_t
start_cmd(const struct sb_opts *o)
{
	char *shell_argv[2] = {NULL, NULL};
	char **argv = o->cmd;
	pid_t pid;

	if (o->shell) {
		const char *sh = getenv("SHELL");
		shell_argv[0] =
		    (char *)(sh != NULL && sh[0] != '\0' ? sh : "/bin/sh");
		argv = shell_argv;
	}
	pid = fork();
	if (pid != 0)
		return pid;
	reset_signals();
	execvp(argv[0], argv);
	int err = errno;
	fprintf(stderr, "utcp sandbox: %s: %s\n", argv[0], strerror(err));
	_exit(err == ENOENT ? 127 : 126);
}

/* Our network namespace's identity, to recognise processes inside it. */
static int
netns_id(pid_t pid, struct stat *sb)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)pid);
	return stat(path, sb) == 0 ? 0 : -1;
}

/* Signal every process in our namespace except us and the daemon;
 * returns how many there were. */
static int
signal_leftovers(const struct sb_state *st, int sig)
{
	struct stat self, other;
	struct dirent *de;
	DIR *d;
	int count = 0;

	if (netns_id(getpid(), &self) != 0)
		return 0;
	d = opendir("/proc");
	if (d == NULL)
		return 0;
	while ((de = readdir(d)) != NULL) {
		unsigned long v;
		if (cli_parse_ulong(de->d_name, 1, INT_MAX, &v) != 0)
			continue;
		pid_t pid = (pid_t)v;
		if (pid == getpid() || pid == st->daemon)
			continue;
		if (netns_id(pid, &other) != 0 || other.st_ino != self.st_ino ||
		    other.st_dev != self.st_dev)
			continue;
		if (kill(pid, sig) == 0)
			count++;
	}
	closedir(d);
	return count;
}

/* We are a child subreaper: orphans of CMD end up as our children. Reap
 * them (noting the daemon's status should it be among them). */
static void
reap_orphans(struct sb_state *st)
{
	int ws;
	pid_t p;

	while ((p = waitpid(-1, &ws, WNOHANG)) > 0) {
		if (p == st->daemon) {
			st->daemon_reaped = true;
			st->daemon_status = ws;
		}
	}
}

static void
stop_leftovers(struct sb_state *st)
{
	int n = signal_leftovers(st, SIGTERM);
	long deadline = now_ms() + SB_LEFTOVER_STOP_MS;

	if (n == 0)
		goto reap;
	fprintf(stderr,
		"utcp sandbox: terminating %d process%s left in the "
		"namespace\n",
		n, n == 1 ? "" : "es");
	for (;;) {
		sleep_ms(10);
		reap_orphans(st);
		/* Signal 0 only asks who is still there. */
		if (signal_leftovers(st, 0) == 0)
			goto reap;
		if (now_ms() >= deadline)
			break;
	}
	signal_leftovers(st, SIGKILL);
	sleep_ms(10);
reap:
	reap_orphans(st);
}

/* Stop the daemon; true when it ended well (0 after our SIGTERM). */
static bool
stop_daemon(struct sb_state *st)
{
	char why[96];
	bool killed = false;

	if (!st->daemon_reaped) {
		long deadline = now_ms() + SB_DAEMON_STOP_MS;
		kill(st->daemon, SIGTERM);
		for (;;) {
			pid_t r =
			    waitpid(st->daemon, &st->daemon_status, WNOHANG);
			if (r == st->daemon)
				break;
			if (r < 0 && errno != EINTR)
				return false;
			if (now_ms() >= deadline && !killed) {
				fprintf(stderr,
					"utcp sandbox: utcpd ignored SIGTERM "
					"for %d s; killing it\n",
					SB_DAEMON_STOP_MS / 1000);
				kill(st->daemon, SIGKILL);
				killed = true;
			}
			sleep_ms(5);
		}
		st->daemon_reaped = true;
	}
	if (st->daemon_reported)
		return false;
	/* A clean stop is exit 0 or death by our own SIGTERM. */
	if (!killed && ((WIFEXITED(st->daemon_status) &&
			 WEXITSTATUS(st->daemon_status) == 0) ||
			(WIFSIGNALED(st->daemon_status) &&
			 WTERMSIG(st->daemon_status) == SIGTERM)))
		return true;
	describe_status(st->daemon_status, why, sizeof(why));
	fprintf(stderr, "utcp sandbox: utcpd %s\n", why);
	show_daemon_log(st);
	return false;
}

static int
rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

static void
remove_tmpdir(const struct sb_state *st)
{
	if (st->tmpdir[0] != '\0')
		nftw(st->tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int
make_tmpdir(struct sb_state *st)
{
	const char *base = getenv("TMPDIR");
	struct sockaddr_un sa;

	/* The socket path must fit in sun_path: fall back to /tmp when
	 * $TMPDIR is long. */
	if (base == NULL || base[0] != '/' ||
	    strlen(base) + sizeof("/utcp-sandbox.XXXXXX/utcpd.sock") >
		sizeof(sa.sun_path))
		base = "/tmp";
	snprintf(st->tmpdir, sizeof(st->tmpdir), "%s/utcp-sandbox.XXXXXX",
		 base);
	if (mkdtemp(st->tmpdir) == NULL) {
		int err = errno;
		fprintf(stderr,
			"utcp sandbox: cannot create a directory in "
			"%s: %s\n",
			base, strerror(err));
		st->tmpdir[0] = '\0';
		return -err;
	}
	if (snprintf(st->sock, sizeof(st->sock), "%s/utcpd.sock", st->tmpdir) >=
	    (int)sizeof(st->sock))
		return -ENAMETOOLONG; /* cannot happen: checked above */
	return 0;
}

static int
exit_code(int status)
{
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return SB_FAIL;
}

int
cmd_sandbox(int argc, char **argv)
{
	struct sb_state st = {.daemon = -1};
	struct sb_opts o;
	sigset_t block, oldmask;
	char *utcpd = NULL;
	int ready[2] = {-1, -1}, log_fd = -1, hello;
	int rc = SB_FAIL;
	pid_t cmd, dpid = 0;
	bool daemon_ok;

	if (sb_parse(argc, argv, &o) != 0) {
		fprintf(stderr, "Try `utcp sandbox --help`.\n");
		return EXIT_USAGE;
	}
	utcpd = cli_find_companion("UTCPD", "utcpd", "../sbin/utcpd", X_OK);
	if (utcpd == NULL) {
		if (getenv("UTCPD") != NULL && getenv("UTCPD")[0] != '\0')
			fprintf(stderr, "utcp sandbox: UTCPD=%s: %s\n",
				getenv("UTCPD"), strerror(errno));
		else
			fprintf(stderr,
				"utcp sandbox: cannot find utcpd in %s or "
				"%s/../sbin (set UTCPD)\n",
				cli_self_dir() ? cli_self_dir() : "?",
				cli_self_dir() ? cli_self_dir() : "?");
		return SB_FAIL;
	}

	int r = enter_netns(&st);
	if (r < 0) {
		fprintf(stderr,
			"utcp sandbox: cannot create a network namespace: %s "
			"(run as root, or enable unprivileged user "
			"namespaces)\n",
			strerror(-r));
		goto out;
	}
	if ((r = lo_up()) < 0) {
		fprintf(stderr, "utcp sandbox: cannot bring lo up: %s\n",
			strerror(-r));
		goto out;
	}
	if (make_tmpdir(&st) < 0)
		goto out;
	if (o.daemon_log != NULL) {
		snprintf(st.log, sizeof(st.log), "%s", o.daemon_log);
	} else {
		snprintf(st.log, sizeof(st.log), "%s/utcpd.log", st.tmpdir);
		st.log_is_private = true;
	}
	log_fd = open(st.log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (log_fd < 0) {
		fprintf(stderr, "utcp sandbox: %s: %s\n", st.log,
			strerror(errno));
		goto out;
	}
	if (pipe2(ready, O_CLOEXEC) != 0) {
		fprintf(stderr, "utcp sandbox: pipe: %s\n", strerror(errno));
		goto out;
	}

	/* Signals stay blocked from here until CMD's pid is known, so none
	 * is lost in between; the children unblock them. */
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGQUIT);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGHUP);
	sigaddset(&block, SIGUSR1);
	sigaddset(&block, SIGUSR2);
	sigprocmask(SIG_BLOCK, &block, &oldmask);

	st.daemon = start_daemon(&st, &o, utcpd, ready[1], log_fd);
	if (st.daemon < 0) {
		fprintf(stderr, "utcp sandbox: fork: %s\n", strerror(errno));
		goto out_unblock;
	}
	close(ready[1]);
	ready[1] = -1;
	if (wait_ready(&st, ready[0]) != 0)
		goto out_daemon;
	hello = cli_ctl_open(st.sock, &dpid);
	if (hello < 0) {
		fprintf(stderr,
			"utcp sandbox: utcpd said it was ready but does not "
			"answer at %s: %s\n",
			st.sock, strerror(-hello));
		goto out_daemon;
	}
	close(hello);

	if (setenv("UTCP_SOCKET", st.sock, 1) != 0 ||
	    setenv("UTCP_SANDBOX", "1", 1) != 0 ||
	    setenv("UTCP_SANDBOX_ADDR", o.addr, 1) != 0 ||
	    setenv("UTCP_SANDBOX_PEER", o.peer, 1) != 0 ||
	    setenv("UTCP_SANDBOX_ADDR6", o.addr6, 1) != 0 ||
	    setenv("UTCP_SANDBOX_PEER6", o.peer6, 1) != 0 ||
	    (o.busy_poll != NULL &&
	     setenv("UTCP_BUSY_POLL", o.busy_poll, 1) != 0)) {
		fprintf(stderr, "utcp sandbox: setenv: %s\n", strerror(errno));
		goto out_daemon;
	}
	if (o.shell)
		fprintf(stderr,
			"utcp sandbox: engine %s, kernel %s on %s; "
			"UTCP_SOCKET=%s. Exit the shell to tear it down.\n",
			o.addr, o.peer, SB_TUN, st.sock);

	/* Orphans of CMD become our children, so we can reap them before
	 * we return: nothing is left behind, not even a zombie. */
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	install_forwarding();
	cmd = start_cmd(&o);
	if (cmd < 0) {
		fprintf(stderr, "utcp sandbox: fork: %s\n", strerror(errno));
		goto out_daemon;
	}
	sb_forward_pid = cmd;
	sigprocmask(SIG_SETMASK, &oldmask, NULL);

	for (;;) {
		int ws;
		pid_t p = waitpid(-1, &ws, 0);
		if (p < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p == cmd) {
			rc = exit_code(ws);
			break;
		}
		if (p == st.daemon && !st.daemon_reaped) {
			char why[96];
			st.daemon_reaped = true;
			st.daemon_reported = true;
			st.daemon_status = ws;
			describe_status(ws, why, sizeof(why));
			fprintf(stderr,
				"utcp sandbox: utcpd %s while the command "
				"was running\n",
				why);
			show_daemon_log(&st);
		}
	}
	sb_forward_pid = 0;
	stop_leftovers(&st);
	daemon_ok = stop_daemon(&st);
	/* A daemon that failed (a crash, a sanitizer report) fails the run
	 * even if CMD did not notice. */
	if (!daemon_ok && rc == 0)
		rc = SB_FAIL;
	goto out;

out_daemon:
	kill(st.daemon, SIGKILL);
	if (!st.daemon_reaped)
		waitpid(st.daemon, NULL, 0);
out_unblock:
	sigprocmask(SIG_SETMASK, &oldmask, NULL);
out:
	if (ready[0] >= 0)
		close(ready[0]);
	if (ready[1] >= 0)
		close(ready[1]);
	if (log_fd >= 0)
		close(log_fd);
	remove_tmpdir(&st);
	free(utcpd);
	return rc;
}
