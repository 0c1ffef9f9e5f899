/*
 * diagram.c — `utcp diagram`: the RFC 9293 connection state diagram
 * (section 3.3.2, Figure 5) as Graphviz DOT, with the transitions a JSON
 * trace took drawn bold, coloured and counted. Transitions the figure does
 * not draw (an RST or a timeout into CLOSED, for instance: the RFC's text
 * has them, its figure does not) are added dashed when a trace takes them.
 *
 * In the DOT, and so in the SVG graphviz makes of it, each highlighted
 * edge has id "taken_<FROM>_<TO>" and class "taken"; no other edge has.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <bsd/string.h>

#include "cli.h"
#include "utcp.h"

static const char *const names[UTCP_NSTATES] = {
    [UTCP_CLOSED] = "CLOSED",	       [UTCP_LISTEN] = "LISTEN",
    [UTCP_SYN_SENT] = "SYN-SENT",      [UTCP_SYN_RECEIVED] = "SYN-RECEIVED",
    [UTCP_ESTABLISHED] = "ESTABLISHED", [UTCP_CLOSE_WAIT] = "CLOSE-WAIT",
    [UTCP_FIN_WAIT_1] = "FIN-WAIT-1",  [UTCP_CLOSING] = "CLOSING",
    [UTCP_LAST_ACK] = "LAST-ACK",      [UTCP_FIN_WAIT_2] = "FIN-WAIT-2",
    [UTCP_TIME_WAIT] = "TIME-WAIT",
};

/* RFC 9293 Figure 5, edge by edge: event / action. */
static const struct {
	int from, to;
	const char *label;
} rfc_edges[] = {
    {UTCP_CLOSED, UTCP_LISTEN, "passive OPEN\ncreate TCB"},
    {UTCP_CLOSED, UTCP_SYN_SENT, "active OPEN\ncreate TCB, snd SYN"},
    {UTCP_LISTEN, UTCP_CLOSED, "CLOSE\ndelete TCB"},
    {UTCP_LISTEN, UTCP_SYN_RECEIVED, "rcv SYN\nsnd SYN,ACK"},
    {UTCP_LISTEN, UTCP_SYN_SENT, "SEND\nsnd SYN"},
    {UTCP_SYN_SENT, UTCP_CLOSED, "CLOSE\ndelete TCB"},
    {UTCP_SYN_SENT, UTCP_SYN_RECEIVED, "rcv SYN\nsnd ACK"},
    {UTCP_SYN_SENT, UTCP_ESTABLISHED, "rcv SYN,ACK\nsnd ACK"},
    {UTCP_SYN_RECEIVED, UTCP_ESTABLISHED, "rcv ACK of SYN"},
    {UTCP_SYN_RECEIVED, UTCP_FIN_WAIT_1, "CLOSE\nsnd FIN"},
    {UTCP_ESTABLISHED, UTCP_FIN_WAIT_1, "CLOSE\nsnd FIN"},
    {UTCP_ESTABLISHED, UTCP_CLOSE_WAIT, "rcv FIN\nsnd ACK"},
    {UTCP_FIN_WAIT_1, UTCP_FIN_WAIT_2, "rcv ACK of FIN"},
    {UTCP_FIN_WAIT_1, UTCP_CLOSING, "rcv FIN\nsnd ACK"},
    {UTCP_CLOSE_WAIT, UTCP_LAST_ACK, "CLOSE\nsnd FIN"},
    {UTCP_FIN_WAIT_2, UTCP_TIME_WAIT, "rcv FIN\nsnd ACK"},
    {UTCP_CLOSING, UTCP_TIME_WAIT, "rcv ACK of FIN"},
    {UTCP_LAST_ACK, UTCP_CLOSED, "rcv ACK of FIN"},
    {UTCP_TIME_WAIT, UTCP_CLOSED, "Timeout=2MSL\ndelete TCB"},
};
#define N_RFC_EDGES (sizeof(rfc_edges) / sizeof(rfc_edges[0]))

struct taken {
	unsigned long count[UTCP_NSTATES][UTCP_NSTATES];
	char cause[UTCP_NSTATES][UTCP_NSTATES][64]; /* the first one seen */
	unsigned long total, lines, bad;
};

static void
diagram_usage(FILE *f)
{
	fprintf(f,
		"Usage: utcp diagram [--from TRACE.json] [-o FILE]\n"
		"\n"
		"Draw the RFC 9293 TCP state diagram. With --from, the "
		"transitions that\n"
		"trace took (a JSON trace: `utcp run --trace-format json`, "
		"`utcp trace\n"
		"--json`; - is stdin) are highlighted and counted on their "
		"edges;\n"
		"transitions the RFC's figure does not draw are added, "
		"dashed.\n"
		"\n"
		"Options:\n"
		"  --from FILE   the JSON trace\n"
		"  -o FILE       FILE.dot (Graphviz source), FILE.svg or "
		"FILE.png (rendered\n"
		"                by graphviz's dot; without it, the DOT is "
		"written next to\n"
		"                FILE and utcp diagram says so and fails); "
		"default: DOT on\n"
		"                stdout\n"
		"  -h, --help    show this help\n");
}

static int
state_by_name(const char *s)
{
	for (int i = 0; i < UTCP_NSTATES; i++)
		if (strcmp(s, names[i]) == 0)
			return i;
	return -1;
}

/* ---- a JSON reader just big enough for one flat object per line ---- */

/* Read a JSON string at *p (after its opening quote) into out. */
static int
json_string(const char **p, char *out, size_t len)
{
	const char *s = *p;
	size_t n = 0;

	while (*s != '"') {
		unsigned c = (unsigned char)*s++;
		if (c == '\0')
			return -1;
		if (c == '\\') {
			switch (*s++) {
			case '"': c = '"'; break;
			case '\\': c = '\\'; break;
			case '/': c = '/'; break;
			case 'b': c = '\b'; break;
			case 'f': c = '\f'; break;
			case 'n': c = '\n'; break;
			case 'r': c = '\r'; break;
			case 't': c = '\t'; break;
			case 'u': {
				char hex[5] = {0};
				for (int i = 0; i < 4; i++)
					if ((hex[i] = *s++) == '\0')
						return -1;
				c = (unsigned)strtoul(hex, NULL, 16);
				if (c > 0x7f)
					c = '?'; /* names and states are ASCII */
				break;
			}
			default:
				return -1;
			}
		}
		if (n + 1 < len)
			out[n++] = (char)c;
	}
	out[n] = '\0';
	*p = s + 1;
	return 0;
}

static const char *
skip_ws(const char *s)
{
	while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
		s++;
	return s;
}

/* The transition of one line, if it is a "state" event: 1 and from/to/
 * cause set; 0 for any other object; -1 when the line is not JSON we
 * understand. */
static int
parse_line(const char *line, int *from, int *to, char *cause, size_t clen)
{
	char key[32], val[128], kind[32] = "", f[32] = "", t[32] = "";
	const char *s = skip_ws(line);

	cause[0] = '\0';
	if (*s == '\0')
		return 0; /* a blank line */
	if (*s++ != '{')
		return -1;
	s = skip_ws(s);
	while (*s != '}') {
		if (*s++ != '"' || json_string(&s, key, sizeof(key)) < 0)
			return -1;
		s = skip_ws(s);
		if (*s++ != ':')
			return -1;
		s = skip_ws(s);
		if (*s == '"') {
			s++;
			if (json_string(&s, val, sizeof(val)) < 0)
				return -1;
		} else {
			/* a number, true, false or null */
			size_t n = strcspn(s, ",} \t\r\n");
			if (n == 0 || *s == '{' || *s == '[')
				return -1;
			snprintf(val, sizeof(val), "%.*s", (int)n, s);
			s += n;
		}
		if (strcmp(key, "kind") == 0)
			strlcpy(kind, val, sizeof(kind));
		else if (strcmp(key, "from") == 0)
			strlcpy(f, val, sizeof(f));
		else if (strcmp(key, "to") == 0)
			strlcpy(t, val, sizeof(t));
		else if (strcmp(key, "cause") == 0)
			strlcpy(cause, val, clen);
		s = skip_ws(s);
		if (*s == ',')
			s = skip_ws(s + 1);
		else if (*s != '}')
			return -1;
	}
	if (strcmp(kind, "state") != 0)
		return 0;
	*from = state_by_name(f);
	*to = state_by_name(t);
	return (*from >= 0 && *to >= 0) ? 1 : -1;
}

static int
read_trace(const char *path, struct taken *tk)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "re");
	char *line = NULL, cause[64];
	size_t cap = 0;
	int from, to;

	if (f == NULL) {
		fprintf(stderr, "utcp diagram: %s: %s\n", path,
			strerror(errno));
		return -1;
	}
	while (getline(&line, &cap, f) > 0) {
		tk->lines++;
		switch (parse_line(line, &from, &to, cause, sizeof(cause))) {
		case 1:
			if (tk->count[from][to]++ == 0)
				strlcpy(tk->cause[from][to], cause,
					sizeof(tk->cause[from][to]));
			tk->total++;
			break;
		case -1:
			tk->bad++;
			break;
		}
	}
	free(line);
	if (ferror(f)) {
		fprintf(stderr, "utcp diagram: reading %s: %s\n", path,
			strerror(errno));
		if (f != stdin)
			fclose(f);
		return -1;
	}
	if (f != stdin)
		fclose(f);
	if (tk->bad > 0)
		fprintf(stderr,
			"utcp diagram: warning: %lu of %lu lines of %s are "
			"not JSON trace objects (is it a text trace?)\n",
			tk->bad, tk->lines, path);
	return 0;
}

/* ---- DOT ---- */

/* A DOT string: quotes and backslashes escaped, newlines as \n. */
static void
dot_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '\n')
			fputs("\\n", f);
		else if (*s == '"' || *s == '\\')
			fprintf(f, "\\%c", *s);
		else
			fputc(*s, f);
	}
	fputc('"', f);
}

static bool
in_rfc(int from, int to)
{
	for (size_t i = 0; i < N_RFC_EDGES; i++)
		if (rfc_edges[i].from == from && rfc_edges[i].to == to)
			return true;
	return false;
}

static void
taken_edge(FILE *f, const struct taken *tk, int from, int to,
	   const char *label, bool dashed)
{
	char buf[160];

	snprintf(buf, sizeof(buf), "%s\n× %lu", label, tk->count[from][to]);
	fprintf(f, "  \"%s\" -> \"%s\" [id=\"taken_%s_%s\", class=\"taken\", "
		   "color=\"#d62728\", fontcolor=\"#d62728\", penwidth=3, "
		   "style=%s, label=",
		names[from], names[to], names[from], names[to],
		dashed ? "\"bold,dashed\"" : "bold");
	dot_str(f, buf);
	fputs("];\n", f);
}

static void
write_dot(FILE *f, const struct taken *tk, const char *source)
{
	bool visited[UTCP_NSTATES] = {0};
	char title[256];

	for (int a = 0; a < UTCP_NSTATES; a++)
		for (int b = 0; b < UTCP_NSTATES; b++)
			if (tk->count[a][b] > 0)
				visited[a] = visited[b] = true;
	if (source != NULL)
		snprintf(title, sizeof(title),
			 "TCP connection states (RFC 9293, 3.3.2)\n"
			 "%lu transitions taken in %s",
			 tk->total, source);
	else
		snprintf(title, sizeof(title),
			 "TCP connection states (RFC 9293, 3.3.2)");

	fputs("digraph tcp_states {\n", f);
	fputs("  graph [fontname=\"Helvetica\", labelloc=t, nodesep=0.7, "
	      "ranksep=0.55, label=", f);
	dot_str(f, title);
	fputs("];\n"
	      "  node [fontname=\"Helvetica\", shape=box, style=\"rounded,"
	      "filled\", fillcolor=white, color=\"#555555\"];\n"
	      "  edge [fontname=\"Helvetica\", fontsize=9, color=\"#aaaaaa\", "
	      "fontcolor=\"#888888\"];\n",
	      f);
	for (int i = 0; i < UTCP_NSTATES; i++)
		fprintf(f, "  \"%s\" [id=\"state_%s\"%s];\n", names[i],
			names[i],
			visited[i] ? ", fillcolor=\"#fde0dd\", "
				     "color=\"#d62728\", penwidth=2"
				   : "");
	/* The figure's layout: opening above, ESTABLISHED in the middle,
	 * the closing states below it. */
	fputs("  { rank=same; \"SYN-RECEIVED\"; \"SYN-SENT\"; }\n"
	      "  { rank=same; \"FIN-WAIT-1\"; \"CLOSE-WAIT\"; }\n"
	      "  { rank=same; \"FIN-WAIT-2\"; \"CLOSING\"; \"LAST-ACK\"; }\n",
	      f);
	for (size_t i = 0; i < N_RFC_EDGES; i++) {
		int a = rfc_edges[i].from, b = rfc_edges[i].to;
		/* Edges back up to CLOSED must not pull it down. */
		bool back = b == UTCP_CLOSED;
		if (tk->count[a][b] > 0) {
			taken_edge(f, tk, a, b, rfc_edges[i].label, false);
			continue;
		}
		fprintf(f, "  \"%s\" -> \"%s\" [label=", names[a], names[b]);
		dot_str(f, rfc_edges[i].label);
		fprintf(f, "%s];\n", back ? ", constraint=false" : "");
	}
	for (int a = 0; a < UTCP_NSTATES; a++)
		for (int b = 0; b < UTCP_NSTATES; b++) {
			if (tk->count[a][b] == 0 || in_rfc(a, b))
				continue;
			const char *c = tk->cause[a][b];
			taken_edge(f, tk, a, b, c[0] != '\0' ? c : "(not in "
								   "the figure)",
				   true);
		}
	fputs("}\n", f);
}

/* ---- rendering ---- */

static bool
have_dot(void)
{
	const char *path = getenv("PATH");
	char buf[4096];

	if (path == NULL)
		path = "/usr/local/bin:/usr/bin:/bin";
	while (*path != '\0') {
		const char *colon = strchrnul(path, ':');
		int n = snprintf(buf, sizeof(buf), "%.*s/dot",
				 (int)(colon - path), path);
		if (n > 0 && (size_t)n < sizeof(buf) && access(buf, X_OK) == 0)
			return true;
		path = *colon == ':' ? colon + 1 : colon;
	}
	return false;
}

/* dot -T<fmt> -o out, fed the DOT on its stdin. 0 or -1 (said). */
static int
render(const struct taken *tk, const char *source, const char *fmt,
       const char *out)
{
	int p[2], st;
	pid_t pid;
	FILE *f;

	if (pipe2(p, O_CLOEXEC) != 0) {
		fprintf(stderr, "utcp diagram: pipe: %s\n", strerror(errno));
		return -1;
	}
	pid = fork();
	if (pid < 0) {
		fprintf(stderr, "utcp diagram: fork: %s\n", strerror(errno));
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (pid == 0) {
		char t[16];
		snprintf(t, sizeof(t), "-T%s", fmt);
		if (dup2(p[0], 0) < 0)
			_exit(127);
		execlp("dot", "dot", t, "-o", out, (char *)NULL);
		fprintf(stderr, "utcp diagram: dot: %s\n", strerror(errno));
		_exit(127);
	}
	close(p[0]);
	f = fdopen(p[1], "w");
	if (f == NULL) {
		close(p[1]);
	} else {
		write_dot(f, tk, source);
		fclose(f);
	}
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, "utcp diagram: dot failed to render %s\n", out);
		return -1;
	}
	return 0;
}

int
cmd_diagram(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"from", required_argument, NULL, 'f'},
	    {"output", required_argument, NULL, 'o'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *from = NULL, *out = "-", *ext;
	struct taken *tk;
	int c, rc = 1;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "+f:o:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'f':
			from = optarg;
			break;
		case 'o':
			out = optarg;
			break;
		case 'h':
			diagram_usage(stdout);
			return 0;
		default:
			fprintf(stderr,
				"utcp diagram: unknown option or missing "
				"argument: '%s'\nTry `utcp diagram --help`.\n",
				argv[optind - 1]);
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr,
			"utcp diagram: unexpected argument '%s'\n"
			"Try `utcp diagram --help`.\n",
			argv[optind]);
		return EXIT_USAGE;
	}
	ext = strrchr(out, '.');
	if (strcmp(out, "-") != 0 &&
	    (ext == NULL || (strcmp(ext, ".dot") != 0 &&
			     strcmp(ext, ".gv") != 0 &&
			     strcmp(ext, ".svg") != 0 &&
			     strcmp(ext, ".png") != 0))) {
		fprintf(stderr,
			"utcp diagram: -o %s: the name must end in .dot, .svg "
			"or .png\n",
			out);
		return EXIT_USAGE;
	}
	tk = calloc(1, sizeof(*tk));
	if (tk == NULL)
		return 1;
	if (from != NULL && read_trace(from, tk) < 0)
		goto done;
	if (from != NULL && tk->total == 0)
		fprintf(stderr,
			"utcp diagram: warning: %s has no state transitions\n",
			from);

	if (strcmp(out, "-") == 0) {
		write_dot(stdout, tk, from);
		rc = fflush(stdout) == 0 ? 0 : 1;
	} else if (strcmp(ext, ".dot") == 0 || strcmp(ext, ".gv") == 0) {
		FILE *f = fopen(out, "we");
		if (f == NULL) {
			fprintf(stderr, "utcp diagram: %s: %s\n", out,
				strerror(errno));
			goto done;
		}
		write_dot(f, tk, from);
		if (fclose(f) != 0) {
			fprintf(stderr, "utcp diagram: %s: %s\n", out,
				strerror(errno));
			goto done;
		}
		rc = 0;
	} else if (have_dot()) {
		rc = render(tk, from, ext + 1, out) == 0 ? 0 : 1;
	} else {
		/* No graphviz: leave the source where the picture would
		 * be, and say how to get the picture. */
		char *dotf = NULL;
		if (asprintf(&dotf, "%.*s.dot", (int)(ext - out), out) < 0)
			goto done;
		FILE *f = fopen(dotf, "we");
		if (f != NULL) {
			write_dot(f, tk, from);
			if (fclose(f) == 0)
				fprintf(stderr,
					"utcp diagram: graphviz's dot is not "
					"installed: wrote %s instead of %s "
					"(apt-get install graphviz, or render "
					"it elsewhere)\n",
					dotf, out);
		} else {
			fprintf(stderr, "utcp diagram: %s: %s\n", dotf,
				strerror(errno));
		}
		free(dotf);
	}
done:
	free(tk);
	return rc;
}
