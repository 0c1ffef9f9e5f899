/* log.c — one line per message: wall time, level, text. */
#include "utcpd.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

int ulog_level = ULOG_WARN;
static FILE *ulog_file; /* NULL: stderr */

static const char *const level_names[] = { "error", "warn", "info", "debug" };

int
ulog_parse_level(const char *s)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
		if (strcasecmp(s, level_names[i]) == 0)
			return (int)i;
	/* Common spellings people type. */
	if (strcasecmp(s, "err") == 0)
		return ULOG_ERROR;
	if (strcasecmp(s, "warning") == 0)
		return ULOG_WARN;
	return -1;
}

const char *
ulog_level_name(int level)
{
	if (level < 0 || level > ULOG_DEBUG)
		return "?";
	return level_names[level];
}

int
ulog_open(const char *path)
{
	int fd;

	if (path == NULL || path[0] == '\0')
		return 0;
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	ulog_file = fdopen(fd, "a");
	if (ulog_file == NULL) {
		int e = errno;
		close(fd);
		return -e;
	}
	setvbuf(ulog_file, NULL, _IOLBF, 0);
	return 0;
}

void
ulog_close(void)
{
	if (ulog_file != NULL)
		fclose(ulog_file);
	ulog_file = NULL;
}

void
ulog(int level, const char *fmt, ...)
{
	FILE *f = ulog_file != NULL ? ulog_file : stderr;
	struct timespec ts;
	struct tm tm;
	char when[32];
	va_list ap;

	if (!ULOG_ON(level))
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	localtime_r(&ts.tv_sec, &tm);
	strftime(when, sizeof(when), "%H:%M:%S", &tm);
	/* One fprintf per part is fine: the daemon has one thread, and the
	 * stream is line buffered so a line leaves in one write. */
	flockfile(f);
	fprintf(f, "%s.%03ld utcpd[%ld] %s: ", when, ts.tv_nsec / 1000000,
		(long)getpid(), level_names[level]);
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	fputc('\n', f);
	funlockfile(f);
	fflush(f);
}
