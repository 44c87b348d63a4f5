/*-------------------------------------------------------------------------
 *
 * control_channel.h
 *	  Command lines for a test tool (distsys-kafka-mock, distsys-netem),
 *	  read from a FIFO or from stdin.
 *
 *-------------------------------------------------------------------------
 */
#ifndef RELAY_CONTROL_CHANNEL_H
#define RELAY_CONTROL_CHANNEL_H

#include <stdbool.h>
#include <stddef.h>

#define CONTROL_LINE_MAX	1024

/*
 * The control channel: a FIFO that is reopened after each writer closes it,
 * or stdin, which is read until end of file.  buf holds the start of a line
 * whose newline has not arrived yet.
 */
typedef struct ControlChannel
{
	const char *path;			/* FIFO path, or NULL for stdin */
	bool		created;		/* we made the FIFO, so we remove it */
	int			fd;				/* -1 once stdin has reached end of file */
	char		buf[CONTROL_LINE_MAX];
	size_t		len;
	bool		overlong;		/* dropping the rest of a too-long line */
} ControlChannel;

typedef void (*ControlLineFn) (const char *line, void *arg);

extern bool control_open(ControlChannel *ch, const char *path,
						 char *errbuf, size_t errlen);
extern bool control_read(ControlChannel *ch, ControlLineFn fn, void *arg);
extern void control_close(ControlChannel *ch);

#endif							/* RELAY_CONTROL_CHANNEL_H */
