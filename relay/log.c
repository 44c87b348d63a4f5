/*-------------------------------------------------------------------------
 *
 * log.c
 *	  One line per event, on stderr, as text or as JSON.
 *
 * Every line is written with a single write(2) so that lines from the
 * producer's delivery-report callback and the main loop never interleave.
 * The settings are written once at start-up, before any other thread runs,
 * and only read afterwards, so they need no lock.
 *
 *-------------------------------------------------------------------------
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define LOG_LINE_MAX 4096

static const char *log_progname = "distsys";
static LogFormat log_format = LOG_FORMAT_TEXT;
static LogLevel log_min_level = LOG_LEVEL_INFO;

static const char *const level_names[] = {"debug", "info", "warning", "error"};

/*
 * log_setup: set the program name, format and threshold of later lines.
 */
void
log_setup(const char *progname, LogFormat format, LogLevel min_level)
{
	log_progname = progname;
	log_format = format;
	log_min_level = min_level;
}

bool
log_parse_format(const char *s, LogFormat *format)
{
	if (strcasecmp(s, "text") == 0)
		*format = LOG_FORMAT_TEXT;
	else if (strcasecmp(s, "json") == 0)
		*format = LOG_FORMAT_JSON;
	else
		return false;
	return true;
}

bool
log_parse_level(const char *s, LogLevel *level)
{
	for (int i = 0; i <= LOG_LEVEL_ERROR; i++)
	{
		if (strcasecmp(s, level_names[i]) == 0)
		{
			*level = (LogLevel) i;
			return true;
		}
	}
	return false;
}

/*
 * json_escape: copy src into dst as the inside of a JSON string, truncating
 * rather than overflowing.  Returns the number of bytes written.
 */
static size_t
json_escape(char *dst, size_t dstlen, const char *src)
{
	size_t		n = 0;

	for (; *src && n + 7 < dstlen; src++)
	{
		unsigned char c = (unsigned char) *src;

		if (c == '"' || c == '\\')
		{
			dst[n++] = '\\';
			dst[n++] = c;
		}
		else if (c < 0x20)
			n += snprintf(dst + n, dstlen - n, "\\u%04x", c);
		else
			dst[n++] = c;
	}
	dst[n] = '\0';
	return n;
}

/*
 * log_event: format one event and write it as one line on stderr.
 */
void
log_event(LogLevel level, const char *fmt,...)
{
	char		msg[LOG_LINE_MAX];
	char		escaped[LOG_LINE_MAX];
	char		line[LOG_LINE_MAX + 128];
	char		stamp[32];
	struct timeval tv;
	struct tm	tm;
	va_list		ap;
	int			len;

	if (level < log_min_level)
		return;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	len = (int) strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(stamp + len, sizeof(stamp) - len, ".%03dZ", (int) (tv.tv_usec / 1000));

	if (log_format == LOG_FORMAT_JSON)
	{
		json_escape(escaped, sizeof(escaped), msg);
		len = snprintf(line, sizeof(line),
					   "{\"ts\":\"%s\",\"program\":\"%s\",\"level\":\"%s\",\"msg\":\"%s\"}\n",
					   stamp, log_progname, level_names[level], escaped);
	}
	else
		len = snprintf(line, sizeof(line), "%s %s %s: %s\n",
					   stamp, log_progname, level_names[level], msg);

	if (len > (int) sizeof(line) - 1)
	{
		len = sizeof(line) - 1;
		line[len - 1] = '\n';
	}
	if (write(STDERR_FILENO, line, len) < 0)
	{
		/* nowhere left to report a failing stderr */
	}
}
