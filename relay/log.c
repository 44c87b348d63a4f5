/*-------------------------------------------------------------------------
 *
 * log.c
 *	  One line per event, on stderr, as text or as JSON.
 *
 * Every line is written with a single write(2) so that lines from the
 * producer's delivery-report callback, librdkafka's own threads (its log
 * callback) and the main loop never interleave.  A message is cut at
 * LOG_LINE_MAX bytes.  Messages quote what others chose: Kafka message ids
 * and keys, topics, server errors.  Every message is therefore escaped
 * (strbuf_escaped) before it is written, so a newline or a terminal escape
 * sequence in such a value can neither start a forged line nor reach the
 * terminal, and a JSON line stays valid UTF-8.  The settings are written once at start-up, before
 * any other thread runs, and only read afterwards, so they need no lock.
 *
 *-------------------------------------------------------------------------
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

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

/*
 * log_parse_format: read "text" or "json" (any case) into *format; false
 * for anything else.  distsys-kafka-mock's --log-format; the relay reads
 * its own from its option table.
 */
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

/*
 * log_event: format one event and write it as one line on stderr.
 */
void
log_event(LogLevel level, const char *fmt,...)
{
	char		msg[LOG_LINE_MAX];
	char		stamp[32];
	struct timeval tv;
	va_list		ap;
	StrBuf		safe = {0},
				line = {0};

	if (level < log_min_level)
		return;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	strbuf_put(&safe, "", 0);	/* never NULL, even for an empty message */
	strbuf_escaped(&safe, msg, strlen(msg), true);

	gettimeofday(&tv, NULL);
	format_timestamp((int64_t) tv.tv_sec * 1000000 + tv.tv_usec, 3, stamp, sizeof(stamp));

	if (log_format == LOG_FORMAT_JSON)
	{
		strbuf_printf(&line, "{\"ts\":\"%s\",\"program\":\"%s\",\"level\":\"%s\",\"msg\":",
					  stamp, log_progname, level_names[level]);
		strbuf_json_string(&line, safe.data, safe.len);
		strbuf_puts(&line, "}\n");
	}
	else
		strbuf_printf(&line, "%s %s %s: %s\n", stamp, log_progname, level_names[level],
					  safe.data);

	if (write(STDERR_FILENO, line.data, line.len) < 0)
	{
		/* nowhere left to report a failing stderr */
	}
	strbuf_free(&safe);
	strbuf_free(&line);
}
