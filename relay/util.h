/*-------------------------------------------------------------------------
 *
 * util.h
 *	  Small helpers shared by distsys-relay's modules and
 *	  distsys-kafka-mock: a growable string, JSON string escaping, escaping
 *	  of untrusted bytes, a UTF-8 check, ISO 8601 timestamps, one-line
 *	  messages, a file replaced whole.
 *
 *-------------------------------------------------------------------------
 */
#ifndef RELAY_UTIL_H
#define RELAY_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define lengthof(array) (sizeof(array) / sizeof((array)[0]))

/* A NUL-terminated string that grows as it is written; {0} is empty. */
typedef struct StrBuf
{
	char	   *data;			/* NULL until the first write */
	size_t		len;			/* bytes before the NUL */
	size_t		cap;
} StrBuf;

extern void strbuf_put(StrBuf *b, const char *s, size_t n);
extern void strbuf_puts(StrBuf *b, const char *s);
extern void strbuf_printf(StrBuf *b, const char *fmt,...)
			__attribute__((format(printf, 2, 3)));
extern void strbuf_json_string(StrBuf *b, const char *s, size_t n);
extern void strbuf_escaped(StrBuf *b, const char *s, size_t n, bool keep_utf8);
extern void strbuf_free(StrBuf *b);

extern void format_timestamp(int64_t us, int digits, char *buf, size_t size);
extern char *one_line(char *msg);
extern bool utf8_is_text(const char *s, size_t n);
extern bool write_file_atomically(const char *path, const char *text,
								  char *errbuf, size_t errlen);

#endif							/* RELAY_UTIL_H */
