/*
 * main.c — utcpd: options, the safety check, set-up and tear-down around
 * the event loop (loop.c).
 */
#include "utcpd.h"
#include "fault.h"
#include "pcap.h"

#include <arpa/inet.h>
#include <bsd/libutil.h>
#include <bsd/stdlib.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEF_TUN "utcp0"
#define DEF_ADDR "198.18.0.2"
#define DEF_PEER "198.18.0.1"
#define DEF_PREFIX 24
#define DEF_ADDR6 "fd75:7463:7000::2"
#define DEF_PEER6 "fd75:7463:7000::1"
#define DEF_PREFIX6 64
/* The TUN is a link to this host's kernel only: the largest MTU makes
 * 64 KiB segments both ways (bench/README.md, "Where the time goes"). */
#define DEF_MTU 65535

static void
usage(FILE *f)
{
	fprintf(f,
		"Usage: utcpd [OPTIONS]\n"
		"\n"
		"The utcp daemon: owns a TUN device and the userspace TCP engine,\n"
		"and serves programs running under libutcp.so through a control\n"
		"socket.\n"
		"\n"
		"Options:\n"
		"  --socket PATH      control socket (default: $UTCP_SOCKET, else\n"
		"                     %s; its directory is created)\n"
		"  --tun NAME         TUN device name (default %s)\n"
		"  --addr A           the engine's IPv4 address (default %s)\n"
		"  --peer A           the kernel's side of the TUN (default %s)\n"
		"  --prefix N         IPv4 prefix length of the TUN network\n"
		"                     (default %d)\n"
		"  --addr6 A          the engine's IPv6 address (default %s)\n"
		"  --peer6 A          the kernel's IPv6 side (default %s)\n"
		"  --prefix6 N        IPv6 prefix length (default %d)\n"
		"  --no-ipv6          IPv4 only\n"
		"  --mtu N            link MTU, 68 to 65535 (default %d)\n"
		"  --no-async         offer programs only the protocol with round\n"
		"                     trips (as daemons before socket/connect/\n"
		"                     accept went asynchronous): for testing\n"
		"  --busy-poll USEC   after work, poll for USEC microseconds more\n"
		"                     before sleeping (0 to 10000; default 0,\n"
		"                     off): fewer wakeups per request and per\n"
		"                     connection, for CPU time other tasks do\n"
		"                     not want (the daemon yields to them)\n"
		"  --no-offload       no virtio-net header on the TUN: the engine\n"
		"                     computes and checks every TCP checksum\n"
		"  --ready-fd N       write one byte to fd N and close it once the\n"
		"                     control socket listens\n"
		"  --log-level L      error, warn, info or debug (default: $UTCP_LOG,\n"
		"                     else warn)\n"
		"  --log-file F       append the log to F (default: $UTCP_LOG_FILE,\n"
		"                     else stderr)\n"
		"  --pidfile F        write the daemon's pid to F (locked)\n"
		"  --pcap FILE        write every packet that crosses the TUN, both\n"
		"                     directions, to FILE (pcap, raw IP: tcpdump -r,\n"
		"                     tshark -r, Wireshark)\n"
		"  --pcap-max SIZE    stop capturing before FILE grows past SIZE\n"
		"                     bytes (k, M, G suffixes; 0: no cap; default\n"
		"                     100M); said once in the log\n"
		"  --fault SPEC       break the link on purpose, deterministically:\n"
		"                     comma-separated seed=N (default 1), loss=P%%,\n"
		"                     dup=P%%, reorder=P%% (held until the next packet\n"
		"                     passes, or hold=MS, default 10), delay=MS,\n"
		"                     jitter=MS (uniform, at most delay), dir=in|out|\n"
		"                     both (in: kernel to engine; default both),\n"
		"                     limit=N packets queued (default 4096)\n"
		"  --host             allow configuring the machine's initial network\n"
		"                     namespace (default: refuse; use `utcp sandbox`)\n"
		"  -h, --help         show this help\n"
		"\n"
		"SIGTERM or SIGINT stop the daemon: connections are reset, the\n"
		"socket file removed and the TUN device closed.\n",
		UTCP_DEFAULT_SOCKET, DEF_TUN, DEF_ADDR, DEF_PEER, DEF_PREFIX,
		DEF_ADDR6, DEF_PEER6, DEF_PREFIX6, DEF_MTU);
}

static int
parse_uint(const char *s, unsigned lo, unsigned hi, unsigned *out)
{
	char *end;
	unsigned long v;

	if (s == NULL || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < lo || v > hi)
		return -1;
	*out = (unsigned)v;
	return 0;
}

static int
bad(const char *opt, const char *val, const char *want)
{
	fprintf(stderr, "utcpd: bad %s '%s' (%s)\nTry `utcpd --help`.\n", opt,
		val, want);
	return 2;
}

/* 0 ok, 1 error (said), 2 usage. *stop: --help was given. */
static int
parse_opts(int argc, char **argv, struct utcpd_opts *o, int *log_level,
	   const char **log_file, bool *stop)
{
	enum { O_SOCKET = 256, O_TUN, O_ADDR, O_PEER, O_PREFIX, O_ADDR6,
	       O_PEER6, O_PREFIX6, O_NOV6, O_MTU, O_READY, O_LOGLEVEL,
	       O_LOGFILE, O_PIDFILE, O_HOST, O_PCAP, O_PCAP_MAX, O_NOOFFLOAD, O_FAULT,
	       O_NOASYNC, O_BUSYPOLL };
	static const struct option lo[] = {
		{ "socket", required_argument, NULL, O_SOCKET },
		{ "tun", required_argument, NULL, O_TUN },
		{ "addr", required_argument, NULL, O_ADDR },
		{ "peer", required_argument, NULL, O_PEER },
		{ "prefix", required_argument, NULL, O_PREFIX },
		{ "addr6", required_argument, NULL, O_ADDR6 },
		{ "peer6", required_argument, NULL, O_PEER6 },
		{ "prefix6", required_argument, NULL, O_PREFIX6 },
		{ "no-ipv6", no_argument, NULL, O_NOV6 },
		{ "mtu", required_argument, NULL, O_MTU },
		{ "no-offload", no_argument, NULL, O_NOOFFLOAD },
		{ "no-async", no_argument, NULL, O_NOASYNC },
		{ "busy-poll", required_argument, NULL, O_BUSYPOLL },
		{ "ready-fd", required_argument, NULL, O_READY },
		{ "log-level", required_argument, NULL, O_LOGLEVEL },
		{ "log-file", required_argument, NULL, O_LOGFILE },
		{ "pidfile", required_argument, NULL, O_PIDFILE },
		{ "host", no_argument, NULL, O_HOST },
		{ "pcap", required_argument, NULL, O_PCAP },
		{ "pcap-max", required_argument, NULL, O_PCAP_MAX },
		{ "fault", required_argument, NULL, O_FAULT },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *env;
	unsigned v;
	int c;

	*stop = false;
	o->socket_path = utcp_ipc_socket_path();
	o->tun = DEF_TUN;
	inet_pton(AF_INET, DEF_ADDR, &o->addr);
	inet_pton(AF_INET, DEF_PEER, &o->peer);
	o->prefix = DEF_PREFIX;
	o->ipv6 = true;
	inet_pton(AF_INET6, DEF_ADDR6, &o->addr6);
	inet_pton(AF_INET6, DEF_PEER6, &o->peer6);
	o->prefix6 = DEF_PREFIX6;
	o->mtu = DEF_MTU;
	o->offload = true;
	o->ready_fd = -1;
	o->pcap_max = UTCPD_PCAP_MAX;
	*log_level = ULOG_WARN;
	if ((env = getenv("UTCP_LOG")) != NULL && env[0] != '\0') {
		int l = ulog_parse_level(env);
		if (l < 0)
			fprintf(stderr, "utcpd: ignoring UTCP_LOG='%s' (want "
				"error, warn, info or debug)\n", env);
		else
			*log_level = l;
	}
	env = getenv("UTCP_LOG_FILE");
	*log_file = env != NULL && env[0] != '\0' ? env : NULL;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case O_SOCKET:
			if (optarg[0] == '\0')
				return bad("--socket", optarg, "a path");
			o->socket_path = optarg;
			break;
		case O_TUN:
			if (optarg[0] == '\0' || strlen(optarg) >= IFNAMSIZ)
				return bad("--tun", optarg, "1 to 15 characters");
			o->tun = optarg;
			break;
		case O_ADDR:
			if (inet_pton(AF_INET, optarg, &o->addr) != 1)
				return bad("--addr", optarg, "an IPv4 address");
			break;
		case O_PEER:
			if (inet_pton(AF_INET, optarg, &o->peer) != 1)
				return bad("--peer", optarg, "an IPv4 address");
			break;
		case O_PREFIX:
			if (parse_uint(optarg, 1, 32, &o->prefix) != 0)
				return bad("--prefix", optarg, "1 to 32");
			break;
		case O_ADDR6:
			if (inet_pton(AF_INET6, optarg, &o->addr6) != 1)
				return bad("--addr6", optarg, "an IPv6 address");
			break;
		case O_PEER6:
			if (inet_pton(AF_INET6, optarg, &o->peer6) != 1)
				return bad("--peer6", optarg, "an IPv6 address");
			break;
		case O_PREFIX6:
			if (parse_uint(optarg, 1, 128, &o->prefix6) != 0)
				return bad("--prefix6", optarg, "1 to 128");
			break;
		case O_NOV6:
			o->ipv6 = false;
			break;
		case O_MTU:
			if (parse_uint(optarg, 68, 65535, &o->mtu) != 0)
				return bad("--mtu", optarg, "68 to 65535");
			break;
		case O_NOASYNC:
			o->no_async = true;
			break;
		case O_BUSYPOLL:
			if (parse_uint(optarg, 0, 10000, &o->busy_poll) != 0)
				return bad("--busy-poll", optarg,
					   "0 to 10000 microseconds");
			break;
		case O_NOOFFLOAD:
			o->offload = false;
			break;
		case O_READY:
			if (parse_uint(optarg, 0, INT32_MAX, &v) != 0)
				return bad("--ready-fd", optarg, "an fd number");
			o->ready_fd = (int)v;
			break;
		case O_LOGLEVEL:
			if ((*log_level = ulog_parse_level(optarg)) < 0)
				return bad("--log-level", optarg,
					   "error, warn, info or debug");
			break;
		case O_LOGFILE:
			*log_file = optarg;
			break;
		case O_PIDFILE:
			o->pidfile = optarg;
			break;
		case O_HOST:
			o->host = true;
			break;
		case O_PCAP:
			if (optarg[0] == '\0')
				return bad("--pcap", optarg, "a file");
			o->pcap = optarg;
			break;
		case O_PCAP_MAX:
			if (strcmp(optarg, "0") == 0)
				o->pcap_max = 0;
			else if (utcp_parse_size(optarg, &o->pcap_max) != 0)
				return bad("--pcap-max", optarg,
					   "a size: 100M, 512k, 0 for no cap");
			break;
		case O_FAULT: {
			struct fault_spec fs;
			char why[256];
			if (fault_parse(optarg, &fs, why, sizeof(why)) != 0) {
				fprintf(stderr, "utcpd: --fault '%s': %s\n"
					"Try `utcpd --help`.\n", optarg, why);
				return 2;
			}
			o->fault = optarg;
			break;
		}
		case 'h':
			usage(stdout);
			*stop = true;
			return 0;
		default:
			fprintf(stderr, "utcpd: unknown option or missing "
				"argument: '%s'\nTry `utcpd --help`.\n",
				argv[optind - 1]);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "utcpd: unexpected argument '%s'\n"
			"Try `utcpd --help`.\n", argv[optind]);
		return 2;
	}
	if (o->addr.s_addr == o->peer.s_addr) {
		fprintf(stderr, "utcpd: --addr and --peer must differ\n");
		return 2;
	}
	uint32_t mask = o->prefix == 32 ? ~0u : ~(~0u >> o->prefix);
	if ((ntohl(o->addr.s_addr) & mask) != (ntohl(o->peer.s_addr) & mask)) {
		fprintf(stderr, "utcpd: --addr is not inside --peer/--prefix: "
			"the kernel would have no route to the engine\n");
		return 2;
	}
	if (o->ipv6 && memcmp(&o->addr6, &o->peer6, sizeof(o->addr6)) == 0) {
		fprintf(stderr, "utcpd: --addr6 and --peer6 must differ\n");
		return 2;
	}
	if (o->ipv6 && o->mtu < 1280)
		o->ipv6 = false; /* RFC 8200: IPv6 needs a 1280-byte link */
	return 0;
}

/* Am I in the machine's initial network namespace? 1 yes, 0 no, -1 cannot
 * tell. */
static int
in_initial_netns(char *why, size_t len)
{
	struct stat self, init;
	char map[128];
	FILE *f;

	if (stat("/proc/self/ns/net", &self) != 0) {
		snprintf(why, len, "cannot read /proc/self/ns/net: %s",
			 strerror(errno));
		return -1;
	}
	if (stat("/proc/1/ns/net", &init) == 0)
		return self.st_dev == init.st_dev && self.st_ino == init.st_ino;
	snprintf(why, len, "cannot read /proc/1/ns/net to compare: %s",
		 strerror(errno));
	/* Not allowed to look at pid 1 (a user namespace, a non-dumpable
	 * init, an LSM). Other evidence, each sound on its own: */
	/* 1. Namespaces created at run time get inode numbers from
	 *    0xF0000000 up; kernels that give init_net a fixed one
	 *    (PROC_NET_INIT_INO) put it below. */
	if (self.st_ino < 0xF0000000u)
		return 1;
	/* 2. A user namespace of our own: the initial network namespace
	 *    belongs to the initial user namespace, so from here it could
	 *    not be configured anyway. */
	f = fopen("/proc/self/uid_map", "re");
	if (f != NULL && fgets(map, sizeof(map), f) != NULL) {
		unsigned long a, b, n;
		fclose(f);
		if (sscanf(map, "%lu %lu %lu", &a, &b, &n) == 3 &&
		    !(a == 0 && b == 0 && n == 4294967295ul))
			return 0;
	} else if (f != NULL) {
		fclose(f);
	}
	/* 3. An ancestor in another network namespace: someone (unshare -n,
	 *    `utcp sandbox`) made ours. */
	for (pid_t pid = getppid(); pid > 1;) {
		char path[64], buf[512];
		struct stat ns;
		FILE *st;
		long pp = 0;

		snprintf(path, sizeof(path), "/proc/%ld/ns/net", (long)pid);
		if (stat(path, &ns) == 0 &&
		    (ns.st_ino != self.st_ino || ns.st_dev != self.st_dev))
			return 0;
		snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
		st = fopen(path, "re");
		if (st == NULL)
			break;
		/* "pid (comm) state ppid": comm may hold spaces and ')'. */
		if (fgets(buf, sizeof(buf), st) != NULL) {
			char *rp = strrchr(buf, ')');
			if (rp == NULL || sscanf(rp + 1, " %*c %ld", &pp) != 1)
				pp = 0;
		}
		fclose(st);
		pid = (pid_t)pp;
	}
	return -1;
}

static int
safety_check(const struct utcpd_opts *o)
{
	char why[160] = "";
	int r = in_initial_netns(why, sizeof(why));

	if (r == 0)
		return 0;
	if (o->host) {
		log_warn("configuring %s in %s network namespace (--host)",
			 o->tun, r == 1 ? "the machine's initial" : "this");
		return 0;
	}
	if (r == 1)
		log_error("refusing to run in the machine's initial network "
			  "namespace: utcpd puts addresses on a TUN device. "
			  "Use `utcp sandbox` (or `unshare -n`), or pass --host "
			  "to configure this host on purpose.");
	else
		log_error("refusing to run: cannot tell whether this is the "
			  "machine's initial network namespace (%s). Use "
			  "`utcp sandbox`, or pass --host.", why);
	return -1;
}

static int
setup_signals(void)
{
	sigset_t set;

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &set, NULL) != 0)
		return -errno;
	int fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

/* Every engine socket costs the daemon one fd (two while connecting):
 * take what the hard limit allows. */
static void
raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return;
	if (rl.rlim_cur < rl.rlim_max) {
		rlim_t was = rl.rlim_cur;

		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
			log_warn("cannot raise the fd limit from %llu to %llu: "
				 "%s", (unsigned long long)was,
				 (unsigned long long)rl.rlim_max,
				 strerror(errno));
			return;
		}
	}
	/* About one fd per connection: this bounds how many programs'
	 * connections the daemon can hold. */
	log_info("fd limit %llu (the hard limit): up to about that many "
		 "connections", (unsigned long long)rl.rlim_cur);
}

static void
say_ready(int fd)
{
	char c = 'r';

	if (fd < 0)
		return;
	if (write(fd, &c, 1) != 1)
		log_warn("cannot write to --ready-fd %d: %s", fd,
			 strerror(errno));
	close(fd);
}

int
main(int argc, char **argv)
{
	struct utcpd_opts o;
	struct daemon d;
	struct utcp_config cfg;
	struct pidfh *pfh = NULL;
	const char *log_file;
	char tun_name[IFNAMSIZ];
	bool v6_ok = false, stop;
	int log_level, rc = 1, r;

	memset(&o, 0, sizeof(o));
	r = parse_opts(argc, argv, &o, &log_level, &log_file, &stop);
	if (r != 0 || stop)
		return r;
	ulog_level = log_level;
	if (log_file != NULL && (r = ulog_open(log_file)) < 0) {
		fprintf(stderr, "utcpd: cannot open log file %s: %s\n",
			log_file, strerror(-r));
		return 1;
	}
	if (o.ready_fd >= 0 && fcntl(o.ready_fd, F_SETFD, FD_CLOEXEC) != 0) {
		log_error("--ready-fd %d: %s", o.ready_fd, strerror(errno));
		return 1;
	}

	memset(&d, 0, sizeof(d));
	d.opt = &o;
	d.ep = d.tun = d.ctl = d.sig = d.spare_fd = -1;
	d.pid = getpid(); /* names every socketpair: asked once */
	TAILQ_INIT(&d.dirty);
	TAILQ_INIT(&d.linger);
	TAILQ_INIT(&d.reap);
	TAILQ_INIT(&d.clients);
	TAILQ_INIT(&d.dead_clients);

	if (safety_check(&o) != 0)
		goto out;
	if (o.pidfile != NULL) {
		pid_t other;
		pfh = pidfile_open(o.pidfile, 0644, &other);
		if (pfh == NULL) {
			if (errno == EEXIST)
				log_error("another utcpd (pid %ld) holds %s",
					  (long)other, o.pidfile);
			else
				log_error("cannot open pidfile %s: %s",
					  o.pidfile, strerror(errno));
			goto out;
		}
	}
	if ((d.sig = setup_signals()) < 0) {
		log_error("signals: %s", strerror(-d.sig));
		goto out;
	}
	raise_nofile();
	/* The engine frees a buffer as soon as it empties (an idle
	 * connection holds none), and a busy one empties and refills all
	 * the time: served from mmap, every refill would fault its pages in
	 * afresh (a quarter of the daemon's time in a bulk send). Keep such
	 * buffers in the heap, where a freed one is reused warm. */
	mallopt(M_MMAP_THRESHOLD, 16 << 20);
	mallopt(M_TRIM_THRESHOLD, 64 << 20);
	d.spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	d.iobuf = malloc(UTCPD_IOBUF);
	/* The largest packet, or GSO super-packet, and its virtio header. */
	d.tunbuf_len = 65536 + 64;
	d.tunbuf = malloc(d.tunbuf_len);
	d.capbuf = malloc(d.tunbuf_len);
	d.ep = epoll_create1(EPOLL_CLOEXEC);
	if (d.iobuf == NULL || d.tunbuf == NULL || d.capbuf == NULL ||
	    d.ep < 0) {
		log_error("start-up: %s", strerror(errno));
		goto out;
	}

	/* A second daemon must fail before it touches any device; the
	 * socket itself appears only once the link is up, so a script that
	 * waits for the file finds 198.18.0.1 configured. */
	if (ctl_check(o.socket_path) < 0)
		goto out;
	if (o.pcap != NULL && (r = pcapd_open(&d, o.pcap, o.pcap_max)) < 0) {
		log_error("--pcap %s: %s", o.pcap, strerror(-r));
		goto out;
	}
	if ((d.tun = tun_open(&o, tun_name)) < 0)
		goto out;
	if (tun_configure(&o, tun_name, &v6_ok) < 0)
		goto out;

	utcp_config_defaults(&cfg);
	cfg.local4.family = AF_INET;
	memcpy(cfg.local4.ip, &o.addr, 4);
	if (v6_ok) {
		cfg.local6.family = AF_INET6;
		memcpy(cfg.local6.ip, &o.addr6, 16);
	}
	cfg.mtu = o.mtu;
	arc4random_buf(cfg.isn_key, sizeof(cfg.isn_key));
	arc4random_buf(&cfg.seed, sizeof(cfg.seed));
	cfg.ctx = &d;
	cfg.output = tun_output;
	cfg.deliver = rec_deliver;
	if (o.offload) {
		cfg.output_iov = tun_output_iov;
		cfg.offload = UTCP_OFFLOAD_TX_CSUM;
	}
	cfg.event = events_cb;
	d.now = loop_clock();
	d.st = utcp_stack_new(&cfg);
	if (d.st == NULL) {
		log_error("cannot create the engine: out of memory");
		goto out;
	}

	if (o.fault != NULL && faultd_open(&d, o.fault) < 0)
		goto out;

	d.ep_tun.kind = EP_TUN;
	d.ep_sig.kind = EP_SIGNAL;
	uint32_t c1 = 0, c2 = 0;
	bool g1 = false, g2 = false;
	if ((r = ep_set(&d, d.tun, &d.ep_tun, EPOLLIN, &c1, &g1)) < 0 ||
	    (r = ep_set(&d, d.sig, &d.ep_sig, EPOLLIN, &c2, &g2)) < 0) {
		log_error("epoll: %s", strerror(-r));
		goto out;
	}
	if (ctl_listen(&d, o.socket_path) < 0)
		goto out;
	if (pfh != NULL)
		pidfile_write(pfh);

	char a[INET6_ADDRSTRLEN], p[INET6_ADDRSTRLEN];
	log_info("ready: %s, engine %s, kernel side %s/%u, mtu %u%s%s, "
		 "control %s", tun_name,
		 inet_ntop(AF_INET, &o.addr, a, sizeof(a)),
		 inet_ntop(AF_INET, &o.peer, p, sizeof(p)), o.prefix, o.mtu,
		 o.offload ? ", offload" : "", v6_ok ? ", IPv6 too" : "",
		 o.socket_path);
	say_ready(o.ready_fd);
	o.ready_fd = -1;

	rc = loop_run(&d) == 0 ? 0 : 1;

out:
	if (o.ready_fd >= 0)
		close(o.ready_fd); /* EOF without a byte: we failed */
	if (d.st != NULL) {
		d.now = loop_clock();
		faultd_close(&d); /* the tear-down's RSTs leave unfaulted */
		rec_teardown(&d);
		utcp_stack_free(d.st);
	}
	pcapd_close(&d); /* after the tear-down: its RSTs are captured */
	ctl_close_all(&d);
	if (d.sock_bound && unlink(d.sock_path) != 0 && errno != ENOENT)
		log_warn("cannot remove %s: %s", d.sock_path, strerror(errno));
	if (d.tun >= 0)
		close(d.tun);
	if (d.sig >= 0)
		close(d.sig);
	if (d.ep >= 0)
		close(d.ep);
	if (d.spare_fd >= 0)
		close(d.spare_fd);
	if (pfh != NULL)
		pidfile_remove(pfh);
	free(d.iobuf);
	free(d.tunbuf);
	free(d.capbuf);
	log_info("stopped");
	ulog_close();
	return rc;
}
