/*
 * ipc.h — the control protocol between libutcp.so (and the utcp tool) and
 * the utcpd daemon.
 *
 * Transport: AF_UNIX SOCK_SEQPACKET to the daemon's control socket
 * ($UTCP_SOCKET, default UTCP_DEFAULT_SOCKET). The daemon accepts a peer only
 * if SO_PEERCRED shows the daemon's uid or root. Each message is exactly one
 * struct utcp_req (client → daemon) or one struct utcp_rep (daemon → client);
 * a file descriptor travels beside it as SCM_RIGHTS where an op says so.
 * One request, one reply, in order, on one connection; the preload keeps one
 * connection per thread so a blocked thread never holds up another.
 *
 * Data never crosses this socket. Every engine socket is an AF_UNIX
 * SOCK_STREAM socketpair: the program holds one end (that IS its socket fd),
 * the daemon the other. The daemon binds its end to the abstract name
 * "\0utcp/<daemon pid>/<sock id>", so getpeername() on the program's end
 * tells any process image which engine socket an fd is (after exec, dup,
 * SCM_RIGHTS): see utcp_ipc_parse_peer().
 *
 * Connection protocol (the program's end must give POLLOUT exactly when the
 * TCP connection is established, like a kernel socket):
 *   1. The preload sets SO_SNDBUF on its end to UTCP_CONNECT_SNDBUF and
 *      writes UTCP_FILLER_LEN filler bytes into it (so no POLLOUT), then
 *      sends UTCP_OP_CONNECT with the program's end attached (SCM_RIGHTS)
 *      and the original SO_SNDBUF in arg[1] (the value to hand to
 *      setsockopt: half what getsockopt reported, as the kernel doubles
 *      it), filler length in arg[0]. The preload sends this once per
 *      socket; a repeated connect() is answered by the preload itself.
 *   2. The daemon starts the handshake and replies err = EINPROGRESS (or an
 *      immediate errno). It keeps the attached fd until the outcome.
 *   3. On ESTABLISHED, or on failure, the daemon reads and discards exactly
 *      the filler from its end, restores SO_SNDBUF on the kept fd and closes
 *      it: POLLOUT appears. On failure it first records the error
 *      (SO_ERROR) and shuts its end down, so the program sees
 *      POLLOUT|POLLIN|POLLHUP and never POLLOUT alone.
 *   4. A blocking connect() in the preload polls for POLLOUT (SO_SNDTIMEO,
 *      EINTR as the kernel): POLLOUT without POLLHUP is success, with no
 *      further question; otherwise it asks for SO_ERROR.
 *
 * Listening sockets: the program's end of a listener becomes readable when
 * a connection waits: the daemon writes one token byte per connection put on
 * the accept queue. accept() reads one token (blocking or not, as the fd
 * is), then sends UTCP_OP_ACCEPT and gets the new socket's end as SCM_RIGHTS.
 *
 * End of stream and errors: FIN from the peer → the daemon shuts down writing
 * on its end (the program reads EOF). RST/timeout → the daemon records the
 * error and shuts down both directions; the preload turns the EOF/EPIPE it
 * then sees into the recorded errno (UTCP_OP_GETSOCKOPT SO_ERROR).
 * The program's close() of its last reference shows as HUP on the daemon's
 * end: the daemon then closes the engine socket (graceful, or RST if unread
 * data remained — the daemon's read sees ECONNRESET — or SO_LINGER {1,0}).
 */
#ifndef UTCP_IPC_H
#define UTCP_IPC_H

#include <netinet/in.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#define UTCP_IPC_VERSION 1
#define UTCP_DEFAULT_SOCKET "/run/utcp/utcpd.sock"
#define UTCP_ABSTRACT_PREFIX "utcp/"
#define UTCP_FILLER_LEN 4096
#define UTCP_CONNECT_SNDBUF 1 /* the kernel rounds it up to its minimum */
#define UTCP_OPT_MAX 256      /* largest option value carried */

enum utcp_op {
	UTCP_OP_HELLO = 1,   /* reply: val = daemon pid, sock_id = version */
	UTCP_OP_SOCKET,      /* arg[0] family, arg[1] SOCK_NONBLOCK|SOCK_CLOEXEC
			        reply: sock_id, program end as SCM_RIGHTS */
	UTCP_OP_BIND,        /* addr */
	UTCP_OP_LISTEN,      /* arg[0] backlog */
	UTCP_OP_CONNECT,     /* addr; SCM_RIGHTS program end; arg[0] filler
				length, arg[1] SO_SNDBUF to restore.
				reply err: 0, EINPROGRESS or errno */
	UTCP_OP_ACCEPT,      /* arg[0] SOCK_NONBLOCK|SOCK_CLOEXEC; reply: new
				sock_id, peer in addr, fd as SCM_RIGHTS;
				err EAGAIN when the queue is empty */
	UTCP_OP_GETSOCKNAME, /* reply: addr */
	UTCP_OP_GETPEERNAME, /* reply: addr, or err ENOTCONN */
	UTCP_OP_SETSOCKOPT,  /* arg[0] level, arg[1] name, data[0..len) */
	UTCP_OP_GETSOCKOPT,  /* arg[0] level, arg[1] name, arg[2] optlen;
				reply: data[0..len) */
	UTCP_OP_SHUTDOWN,    /* arg[0] how; the daemon answers ENOTCONN for
				an unconnected socket, else 0 (the preload
				also shuts its end down) */
	UTCP_OP_IOCTL,       /* arg[0] request (SIOCOUTQ …); reply val */
	/* tools */
	UTCP_OP_STATS,       /* arg[0] = index; reply: data = counter name
				(NUL-terminated), val = value; err ENOENT
				past the last. Engine counters (utcp_stat_name)
				then the daemon's own ("daemon_sockets" …) */
	UTCP_OP_LIST,        /* reply: the arg[0]-th socket's struct
				utcp_ipc_conn; rep.len = its size. It rides in
				data[] when it fits, else as a second message
				of exactly rep.len bytes right after the reply;
				err ENOENT past the end */
	UTCP_OP_TRACE,       /* this connection becomes an event stream:
				one struct utcp_ipc_event per message;
				arg[0] = pid filter (0: all);
				arg[1] = trace tag filter (0: all);
				arg[2] = UTCP_TRACE_* flags. See "Tracing"
				below */
	/* tracing (appended; see "Tracing" below) */
	UTCP_OP_CALL,        /* NO REPLY. One call of a traced program
				(the preload sends it only when
				UTCP_TRACE_TAG is set): sock_id, arg[0] fd,
				arg[1] result (clamped to int32), arg[2]
				errno (0: success), arg[3] duration in µs;
				data = "name\0args\0" */
	UTCP_OP_TRACE_SYNC,  /* NO REPLY; only on a trace stream: the
				daemon puts a UTCP_IPC_SYNC message with
				arg = arg[0] into the stream, after
				everything sent before it (dropped, like an
				event, when the stream is full: ask again) */
	/* sockets without round trips (appended; see "Asynchronous
	 * operations" below; only with UTCP_CAP_ASYNC) */
	UTCP_OP_LEASE,       /* reply: sock_id = first id, val = count: ids
				this connection may give its own sockets */
	UTCP_OP_ADOPT,       /* NO REPLY. sock_id = a leased id, arg[0]
				family; the daemon's end as SCM_RIGHTS,
				already bound to its name */
	UTCP_OP_ACCEPTED,    /* NO REPLY. sock_id = a socket the program
				took from a pushing listener (below) */
};

/*
 * Asynchronous operations (UTCP_CAP_ASYNC).
 *
 * A round trip to the daemon costs two wakeups (tens of µs here), as much
 * as a whole connection over a veth: socket(), connect() and accept() do
 * without one.
 *
 *   socket(): the preload takes an id from its connection's lease
 *     (UTCP_OP_LEASE, one round trip per UTCP_LEASE_IDS sockets), makes the
 *     socketpair itself, binds the daemon's end to "\0utcp/<daemon pid>/<id>"
 *     and sends it with UTCP_OP_ADOPT. If the daemon cannot adopt it (no
 *     memory, no fd left, an id outside the lease, a wrong name), it closes
 *     the end: the program sees a hung-up socket, and every request about
 *     the id is answered EBADF, which the preload reports as ENOBUFS.
 *   connect(): UTCP_OP_CONNECT with arg[2] = UTCP_CONNECT_NOREPLY. An
 *     immediate failure takes the same path as a refused handshake (ipc.h
 *     step 3: the error is recorded, the end hung up): the program learns
 *     it from POLLHUP and SO_ERROR. The preload still answers EINVAL,
 *     EAFNOSUPPORT and the like itself, before sending.
 *   Order: requests on one connection are handled in the order sent. A
 *     request that names an id the daemon does not know yet first makes the
 *     daemon handle what every other connection has already queued, so an
 *     fd made in one thread and used in another at once is found.
 */
#define UTCP_LEASE_IDS 64
#define UTCP_CONNECT_NOREPLY 0x1 /* CONNECT arg[2] */

/*
 *   accept(): a listener made with UTCP_OP_LISTEN arg[1] =
 *     UTCP_LISTEN_PUSH carries, instead of token bytes, one struct
 *     utcp_accept_msg per connection with the new socket's program end
 *     attached (SCM_RIGHTS; the kernel never merges two such messages in
 *     one read). accept() receives one, sets the fd's flags, and tells the
 *     daemon with UTCP_OP_ACCEPTED. The daemon counts the connections in
 *     flight against the backlog until then (utcp_listen_hold), and
 *     resets one whose end is released unaccepted (the program closed the
 *     listener), as Linux does.
 */
#define UTCP_LISTEN_PUSH 0x1 /* LISTEN arg[1] */
#define UTCP_ACCEPT_MAGIC 0x75414343u /* "uACC" */

struct utcp_accept_msg {
	uint32_t magic;   /* UTCP_ACCEPT_MAGIC */
	uint32_t sock_id; /* the new socket */
	uint32_t addrlen; /* the peer's address */
	uint32_t pad;
	struct sockaddr_storage addr;
};

/*
 * Tracing (`utcp trace`, `utcp run --trace/--pcap`).
 *
 * A trace tag marks the sockets of one traced run: `utcp run --trace`
 * exports UTCP_TRACE_TAG=<its pid>, the preload sends it in HELLO (arg[2];
 * arg[0] = UTCP_IPC_VERSION, arg[1] = pid) and the daemon stamps every
 * socket made by that connection, every connection accepted through it,
 * and the embryos of its listeners, with it. The environment carries the
 * tag across fork and exec, so a whole process tree is one run.
 *
 * A trace stream (UTCP_OP_TRACE) carries struct utcp_ipc_event messages
 * and, with UTCP_TRACE_PACKETS, struct utcp_ipc_packet messages, in the
 * order the daemon saw them. Both begin with the same four fields; `type`
 * tells them apart. The daemon never waits for a subscriber: what does not
 * fit in the socket is dropped and counted (`lost` in later messages, and
 * in the UTCP_IPC_SYNC answer).
 */
#define UTCP_TRACE_PACKETS 0x1 /* also every packet of the matching
				  connections that crosses the TUN */

/* A daemon that does all of the above says so in its HELLO reply:
 * rep.len = 4, data[0..4) = uint32 capability bits. An older one sends
 * len 0; the preload then sends no UTCP_OP_CALL (it would get a reply it
 * does not wait for). */
#define UTCP_CAP_TRACE 0x1
#define UTCP_CAP_ASYNC 0x2 /* "Asynchronous operations" above */

enum {
	UTCP_IPC_CALL = -1,   /* type of a call event */
	UTCP_IPC_PACKET = -2, /* a struct utcp_ipc_packet */
	UTCP_IPC_SYNC = -3,   /* the answer to UTCP_OP_TRACE_SYNC */
};

struct utcp_req {
	uint16_t version;
	uint16_t op;
	uint32_t sock_id;
	int32_t arg[4];
	struct sockaddr_storage addr;
	uint32_t addrlen;
	uint32_t len;
	uint8_t data[UTCP_OPT_MAX];
};

struct utcp_rep {
	int32_t err; /* 0 or a positive errno */
	uint32_t sock_id;
	int64_t val;
	struct sockaddr_storage addr;
	uint32_t addrlen;
	uint32_t len;
	uint8_t data[UTCP_OPT_MAX];
};

/* One row of `utcp ss`. */
struct utcp_ipc_conn {
	uint32_t sock_id;
	int32_t pid;          /* process that created it (SO_PEERCRED) */
	char comm[16];
	struct sockaddr_storage local, remote;
	int32_t state;        /* enum utcp_state */
	uint32_t recv_q, send_q;
	uint8_t info[256];    /* struct utcp_info, copied (engine/utcp.h) */
};

/* One line of `utcp trace`: a state change, probe, RST, drop, or a call
 * reported by the preload. text is human-readable and NUL-terminated. */
struct utcp_ipc_event {
	uint64_t t_us;        /* daemon clock */
	uint32_t sock_id;
	int32_t pid;
	int32_t type;         /* enum utcp_event_type, or -1 for a call */
	int32_t old_state, new_state;
	char text[200];
	/* appended for tracing; text stays a complete summary */
	uint32_t tag;         /* the socket's trace tag, 0: none */
	int32_t err;          /* positive errno: error event, failed call */
	uint32_t arg;         /* keepalive/zero-window probe count; drop:
				 enum utcp_stat; sync: the cookie */
	uint32_t seq;         /* retransmit, RST: sequence number */
	int64_t result;       /* call: what it returned */
	uint32_t dur_us;      /* call: how long it took */
	int32_t fd;           /* call: the program's fd, -1 if none */
	uint64_t lost;        /* messages this subscriber lost so far */
	char comm[16];        /* the owner's command */
	char name[16];        /* call: "connect"; text = its arguments */
	char cause[64];       /* state, RST, error, retransmit: why */
	char local[56], remote[56]; /* "198.18.0.2:40000", "[::1]:80", "" */
};

/* One packet on a trace stream with UTCP_TRACE_PACKETS: this header, then
 * len bytes of the IP packet, in one message. */
struct utcp_ipc_packet {
	uint64_t t_us;        /* CLOCK_MONOTONIC when it crossed the TUN */
	uint32_t sock_id;     /* 0 when no traced socket owns it */
	int32_t pid;
	int32_t type;         /* UTCP_IPC_PACKET */
	uint32_t tag;
	uint32_t len;
	uint8_t dir;          /* UTCP_PKT_IN: kernel → engine; _OUT */
	uint8_t pad[3];
	uint64_t lost;
};
enum { UTCP_PKT_IN = 0, UTCP_PKT_OUT = 1 };
#define UTCP_IPC_PACKET_MAX (sizeof(struct utcp_ipc_packet) + 65536)

/* The fields a trace reader looks at before it knows the kind. */
#define UTCP_IPC_SAME(f)                                                     \
	_Static_assert(__builtin_offsetof(struct utcp_ipc_event, f) ==       \
			       __builtin_offsetof(struct utcp_ipc_packet, f), \
		       "trace messages must share " #f)
UTCP_IPC_SAME(t_us);
UTCP_IPC_SAME(sock_id);
UTCP_IPC_SAME(pid);
UTCP_IPC_SAME(type);
#undef UTCP_IPC_SAME

/* --- helpers shared by the preload, the daemon and the tool --- */

/* The control socket path: $UTCP_SOCKET or UTCP_DEFAULT_SOCKET. */
const char *utcp_ipc_socket_path(void);

/* Send one message with an optional fd (-1 for none). Retries EINTR.
 * Returns 0 or -errno. */
int utcp_ipc_send(int sock, const void *msg, size_t len, int fd);
/* Receive one message of exactly `len` bytes and an optional fd (*fd = -1
 * if none; the fd is received close-on-exec when cloexec). Returns 0,
 * -ECONNRESET on EOF, -EPROTO on a short message, -EMFILE when the message
 * is whole but its fd could not be received (msg is valid, *fd = -1), or
 * -errno. */
int utcp_ipc_recv(int sock, void *msg, size_t len, int *fd, int cloexec);

/* Parse "\0utcp/<pid>/<id>" from a sockaddr_un; 0 and fills pid/id, or -1. */
struct sockaddr_un;
int utcp_ipc_parse_peer(const struct sockaddr_un *sa, socklen_t len,
			pid_t *pid, uint32_t *id);
/* Build that name; returns the address length for bind(). */
socklen_t utcp_ipc_make_name(struct sockaddr_un *sa, pid_t pid, uint32_t id);

#endif
