/*-------------------------------------------------------------------------
 *
 * util.c
 *	  Small helpers shared by distsys-relay's modules and
 *	  distsys-kafka-mock: a growable string (StrBuf), the one JSON string
 *	  escaper, the one escaper of untrusted bytes (log lines, dead
 *	  letters), a strict UTF-8 check, the one ISO 8601 timestamp formatter,
 *	  one_line for libpq's multi-line messages, and a file replaced whole
 *	  (write_file_atomically).
 *
 * Nothing here keeps state: every function works on what it is given, so
 * any thread may call it (log.c does, from librdkafka's threads).  A
 * failed allocation aborts: none of the callers could go on without the
 * string.
 *
 *-------------------------------------------------------------------------
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

/*
 * strbuf_reserve: room for n more bytes and the NUL.
 */
static void
strbuf_reserve(StrBuf *b, size_t n)
{
	size_t		need = b->len + n + 1;

	if (need <= b->cap)
		return;
	b->cap = need < 256 ? 256 : need * 2;
	b->data = realloc(b->data, b->cap);
	if (b->data == NULL)
		abort();
}

/*
 * strbuf_put: append the n bytes at s.
 */
void
strbuf_put(StrBuf *b, const char *s, size_t n)
{
	strbuf_reserve(b, n);
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
}

/*
 * strbuf_puts: append the string s.
 */
void
strbuf_puts(StrBuf *b, const char *s)
{
	strbuf_put(b, s, strlen(s));
}

/*
 * strbuf_printf: append the printf-formatted text, whatever its length.
 */
void
strbuf_printf(StrBuf *b, const char *fmt,...)
{
	va_list		ap;
	int			n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	strbuf_reserve(b, (size_t) n);
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t) n + 1, fmt, ap);
	va_end(ap);
	b->len += n;
}

/*
 * strbuf_json_string: append s (n bytes, UTF-8 assumed) as a JSON string
 * in double quotes: quotes, backslashes and control characters escaped,
 * every other byte as it is.
 */
void
strbuf_json_string(StrBuf *b, const char *s, size_t n)
{
	size_t		plain = 0;		/* start of the bytes not yet copied */

	strbuf_put(b, "\"", 1);
	for (size_t i = 0; i < n; i++)
	{
		unsigned char c = (unsigned char) s[i];

		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		strbuf_put(b, s + plain, i - plain);
		if (c < 0x20)
			strbuf_printf(b, "\\u%04x", c);
		else
			strbuf_printf(b, "\\%c", c);
		plain = i + 1;
	}
	strbuf_put(b, s + plain, n - plain);
	strbuf_put(b, "\"", 1);
}

/*
 * utf8_char_len: the length of the well-formed UTF-8 sequence at s (n
 * bytes left), 0 when it is not one: overlong forms, surrogates and code
 * points above U+10FFFF are refused, as PostgreSQL refuses them.  *cp is
 * its code point.
 */
static int
utf8_char_len(const unsigned char *s, size_t n, uint32_t *cp)
{
	int			len;
	uint32_t	c;

	if (s[0] < 0x80)
		len = 1, c = s[0];
	else if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2, c = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		len = 3, c = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		len = 4, c = s[0] & 0x07;
	else
		return 0;
	if ((size_t) len > n)
		return 0;
	for (int i = 1; i < len; i++)
	{
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = c << 6 | (s[i] & 0x3f);
	}
	if ((len == 3 && (c < 0x800 || (c >= 0xd800 && c <= 0xdfff))) ||
		(len == 4 && (c < 0x10000 || c > 0x10ffff)))
		return 0;
	*cp = c;
	return len;
}

/*
 * utf8_is_text: whether the n bytes at s can be a PostgreSQL text value
 * sent as UTF-8: well-formed UTF-8 without a NUL byte.  Kafka keys and
 * header values are bytes; only those that pass are handed to SQL as text.
 */
bool
utf8_is_text(const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *) s;

	for (size_t i = 0; i < n;)
	{
		uint32_t	cp;
		int			len = utf8_char_len(u + i, n - i, &cp);

		if (len == 0 || cp == 0)
			return false;
		i += len;
	}
	return true;
}

/*
 * escape_char: whether a terminal or a log viewer could read the code
 * point as something else than a visible character: C0 and C1 controls,
 * DEL, the Unicode line and paragraph separators, bidirectional overrides
 * and isolates.
 */
static bool
escape_char(uint32_t cp)
{
	return cp < 0x20 || (cp >= 0x7f && cp < 0xa0) || cp == 0x2028 || cp == 0x2029 ||
		(cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
}

/*
 * strbuf_escaped: append the n bytes at s so that they read as one line of
 * plain characters whatever they hold: a backslash as \\, and as \xNN
 * each byte of a control character (escape_char), of a sequence that is
 * not well-formed UTF-8 and, unless keep_utf8, of every character outside
 * printable ASCII.  The original bytes can be told back from the result.
 */
void
strbuf_escaped(StrBuf *b, const char *s, size_t n, bool keep_utf8)
{
	const unsigned char *u = (const unsigned char *) s;

	for (size_t i = 0; i < n;)
	{
		uint32_t	cp = 0;
		int			len = utf8_char_len(u + i, n - i, &cp);

		if (len == 0)
			len = 1, cp = 0;	/* a stray byte: escaped, as a NUL is */
		if (cp == '\\')
			strbuf_put(b, "\\\\", 2);
		else if (cp != 0 && !escape_char(cp) && (len == 1 || keep_utf8))
			strbuf_put(b, s + i, len);
		else
			for (int j = 0; j < len; j++)
				strbuf_printf(b, "\\x%02x", u[i + j]);
		i += len;
	}
}

/*
 * strbuf_free: release the text; b is empty again.
 */
void
strbuf_free(StrBuf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

/*
 * format_timestamp: us (epoch microseconds, not negative) as ISO 8601 UTC
 * with digits (3 or 6) of fractional seconds, e.g.
 * 2026-11-30T12:33:18.123Z or 2026-11-30T12:33:18.123456Z.
 */
void
format_timestamp(int64_t us, int digits, char *buf, size_t size)
{
	time_t		secs = (time_t) (us / 1000000);
	int			frac = (int) (us % 1000000);
	struct tm	tm;
	size_t		n;

	if (us < 0 || gmtime_r(&secs, &tm) == NULL)
	{
		buf[0] = '\0';			/* not a time this format can show */
		return;
	}
	n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
	if (digits == 3)
		snprintf(buf + n, size - n, ".%03dZ", frac / 1000);
	else
		snprintf(buf + n, size - n, ".%06dZ", frac);
}

/*
 * one_line: turn a multi-line message (libpq's, with DETAIL and HINT
 * lines) into one line, in place: every run of white space becomes one
 * space, none at either end.  Returns msg.
 */
char *
one_line(char *msg)
{
	char	   *out = msg;
	bool		space = false;

	for (const char *c = msg; *c; c++)
	{
		if (*c == '\n' || *c == '\t' || *c == ' ')
			space = out != msg;
		else
		{
			if (space)
				*out++ = ' ';
			*out++ = *c;
			space = false;
		}
	}
	*out = '\0';
	return msg;
}

/*
 * write_file_atomically: make path hold text, so that a reader sees either
 * no file (or the old one) or the whole text: write a temporary file next to
 * it, sync it, rename it into place.  Returns false with errbuf filled.
 */
bool
write_file_atomically(const char *path, const char *text,
					  char *errbuf, size_t errlen)
{
	char		tmp[PATH_MAX];
	FILE	   *f;
	bool		ok;
	int			save_errno;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int) getpid()) >= (int) sizeof(tmp))
	{
		snprintf(errbuf, errlen, "path \"%s\" is too long", path);
		return false;
	}
	f = fopen(tmp, "w");
	if (f == NULL)
	{
		snprintf(errbuf, errlen, "cannot create \"%s\": %s", tmp, strerror(errno));
		return false;
	}
	ok = fputs(text, f) >= 0 && fflush(f) == 0 && fsync(fileno(f)) == 0;
	ok = (fclose(f) == 0) && ok;
	if (ok && rename(tmp, path) == 0)
		return true;
	save_errno = errno;
	unlink(tmp);
	snprintf(errbuf, errlen, "cannot write \"%s\": %s", path, strerror(save_errno));
	return false;
}
