/*
 * script.h — the parsed form of a packet script (tests/pkt/README has the
 * language). The parser knows nothing about the engine: symbols such as
 * SO_KEEPALIVE or ESTABLISHED are resolved to numbers here, and names it
 * does not know (a counter name) are kept as strings.
 */
#ifndef PKT_SCRIPT_H
#define PKT_SCRIPT_H

#include <stdbool.h>
#include <stdint.h>

#include "wire.h"

/* ---- times (µs, relative to script start or to the previous event) ---- */
enum time_kind { T_ABS, T_REL, T_ANY };
struct stime {
	enum time_kind kind;
	int64_t start;   /* µs */
	int64_t end;     /* == start unless a range was given */
	bool range;      /* a~b: the event may happen anywhere in [a, b] */
	bool blocking;   /* a...b: a call starts at a and returns at b */
};

/* ---- expressions in call arguments and results ---- */
enum expr_kind {
	X_INT,      /* 42, SO_KEEPALIVE, O_RDWR|O_NONBLOCK */
	X_ELLIPSIS, /* ... */
	X_SYM,      /* a name the parser does not know (e.g. a counter) */
	X_LIST,     /* [a, b] */
	X_STRUCT,   /* {name=expr, ...} */
	X_ADDR,     /* 192.0.2.1:8080 */
	X_FLOW,     /* @40001 */
};
#define MAX_ITEMS 8
struct expr {
	enum expr_kind kind;
	int64_t ival;
	char sym[48];
	uint8_t ip[4];
	uint16_t port;
	int n;
	struct expr *items[MAX_ITEMS];
	char names[MAX_ITEMS][24]; /* field names of a struct */
};

/* ---- a segment line ---- */
struct seg_spec {
	int port;        /* @P: remote port of the flow; 0 = default flow */
	uint8_t flags;
	uint32_t start, end;
	bool has_ack;
	uint32_t ack;
	bool has_win;
	uint32_t win;
	bool has_opts; /* <...> given (even empty) */
	struct tcp_opt opts[MAX_OPTS];
	int nopts;
	bool ts_val_any[MAX_OPTS]; /* outbound TS val not checked */
	struct wire_damage dmg; /* badcsum, badipcsum, frag, proto N ... */
	bool has_dst, has_src;  /* dst/src A.B.C.D instead of the fixed ones */
	uint8_t dst[4], src[4];
	bool has_urp;
	uint32_t urp;
	bool optional; /* ">?": matched if already sent, else skipped */
};

/* ---- a call line ---- */
#define MAX_ARGS 6
struct call_spec {
	char name[32];
	struct expr *args[MAX_ARGS];
	int nargs;
	struct expr *result; /* NULL: not checked ("quiet()") */
	int err;             /* expected errno when the result is -1 */
};

/* ---- directives: %name args ---- */
struct directive {
	char name[32];
	char arg[96];
};

enum event_kind { EV_IN, EV_OUT, EV_CALL, EV_DIRECTIVE };

struct event {
	enum event_kind kind;
	int line;
	struct stime time;
	union {
		struct seg_spec seg;
		struct call_spec call;
		struct directive dir;
	} u;
	struct event *next;
};

struct script {
	const char *path;
	struct event *head;
	int nevents;
};

/* Parse a file. Returns 0, or -1 with "file:line: message" in err. */
int script_parse(const char *path, struct script *sc, char *err, size_t errlen);
void script_free(struct script *sc);

/* Symbol tables, also used by the runner to print results. */
bool sym_lookup(const char *name, int64_t *val);
const char *errno_name(int err); /* "ECONNRESET" or NULL */

#endif
