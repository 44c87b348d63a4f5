/*-------------------------------------------------------------------------
 *
 * control_channel.c
 *	  The control channel of distsys-kafka-mock and distsys-netem: command
 *	  lines read from a FIFO or from stdin.
 *
 * A FIFO is opened non-blocking for reading, so that start-up never waits
 * for a writer.  Each writer (say `echo broker-down 1 > FIFO`) ends with end
 * of file; the FIFO is then opened again and the old descriptor closed,
 * which on Linux clears the hang-up condition, so poll(2) sleeps until the
 * next writer instead of spinning.  The new descriptor is opened before the
 * old one is closed: a FIFO's buffer is discarded when nobody has it open,
 * so a quick next writer that opened, wrote and closed between our end of
 * file and a close-then-open would lose its command.  Stdin is read until
 * end of file and then left closed; the tool keeps running until it is
 * signalled.
 *
 * Only the main thread touches a ControlChannel.
 *
 *-------------------------------------------------------------------------
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "control_channel.h"
#include "log.h"

/*
 * control_open_fifo: open ch->path for non-blocking reads, then close the
 * descriptor it replaces, if any.  Returns false with errbuf filled (and
 * ch->fd unchanged) if it cannot be opened.
 */
static bool
control_open_fifo(ControlChannel *ch, char *errbuf, size_t errlen)
{
	int			fd = open(ch->path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);

	if (fd < 0)
	{
		snprintf(errbuf, errlen, "cannot open control FIFO \"%s\": %s",
				 ch->path, strerror(errno));
		return false;
	}
	if (ch->fd >= 0)
		close(ch->fd);
	ch->fd = fd;
	return true;
}

/*
 * control_open: start reading commands from path, "-" meaning stdin.  A
 * missing path is created as a FIFO (and removed again by control_close);
 * an existing one must already be a FIFO.  Returns false with errbuf filled
 * on failure.
 */
bool
control_open(ControlChannel *ch, const char *path, char *errbuf, size_t errlen)
{
	struct stat st;

	memset(ch, 0, sizeof(*ch));
	ch->fd = -1;
	if (strcmp(path, "-") == 0)
	{
		ch->fd = STDIN_FILENO;
		return true;
	}

	ch->path = path;
	if (mkfifo(path, 0600) == 0)
		ch->created = true;
	else if (errno != EEXIST)
	{
		snprintf(errbuf, errlen, "cannot create control FIFO \"%s\": %s",
				 path, strerror(errno));
		return false;
	}
	else if (stat(path, &st) != 0 || !S_ISFIFO(st.st_mode))
	{
		snprintf(errbuf, errlen,
				 "control path \"%s\" exists and is not a FIFO; remove it or choose another path",
				 path);
		return false;
	}
	return control_open_fifo(ch, errbuf, errlen);
}

/*
 * control_take_bytes: append n bytes to the line buffer and hand every
 * completed line to fn.  A line longer than CONTROL_LINE_MAX is reported and
 * dropped up to its newline.
 */
static void
control_take_bytes(ControlChannel *ch, const char *data, size_t n,
				   ControlLineFn fn, void *arg)
{
	for (size_t i = 0; i < n; i++)
	{
		char		c = data[i];

		if (c == '\n')
		{
			ch->buf[ch->len] = '\0';
			if (!ch->overlong)
				fn(ch->buf, arg);
			ch->len = 0;
			ch->overlong = false;
		}
		else if (ch->overlong)
			continue;
		else if (ch->len + 1 >= sizeof(ch->buf))
		{
			log_error("control line longer than %d bytes ignored",
					  CONTROL_LINE_MAX - 1);
			printf("error: control line longer than %d bytes ignored\n",
				   CONTROL_LINE_MAX - 1);
			fflush(stdout);
			ch->overlong = true;
			ch->len = 0;
		}
		else
			ch->buf[ch->len++] = c;
	}
}

/*
 * control_at_eof: the writer side is gone.  A last line without a newline
 * still counts.  A FIFO is reopened for the next writer; stdin is closed.
 * Returns false if the FIFO could not be reopened.
 */
static bool
control_at_eof(ControlChannel *ch, ControlLineFn fn, void *arg)
{
	char		errbuf[256];

	if (ch->len > 0 || ch->overlong)
		control_take_bytes(ch, "\n", 1, fn, arg);

	if (ch->path == NULL)
	{
		log_info("control input reached end of file; running until signalled");
		ch->fd = -1;
		return true;
	}
	if (!control_open_fifo(ch, errbuf, sizeof(errbuf)))
	{
		log_error("%s", errbuf);
		return false;
	}
	return true;
}

/*
 * control_read: read what is available on the channel (poll(2) said it is
 * readable) and run fn on each complete line.  Returns false only if the
 * channel broke and cannot be used again.
 */
bool
control_read(ControlChannel *ch, ControlLineFn fn, void *arg)
{
	char		data[4096];
	ssize_t		n;

	for (;;)
	{
		n = read(ch->fd, data, sizeof(data));
		if (n > 0)
			control_take_bytes(ch, data, (size_t) n, fn, arg);
		else if (n == 0)
			return control_at_eof(ch, fn, arg);
		else if (errno == EINTR)
			continue;
		else if (errno == EAGAIN || errno == EWOULDBLOCK)
			return true;
		else
		{
			log_error("cannot read control channel: %s", strerror(errno));
			return false;
		}
		/* stdin may be blocking: one read per wake-up is enough there */
		if (ch->path == NULL)
			return true;
	}
}

/*
 * control_close: stop reading, and remove the FIFO if we created it.
 */
void
control_close(ControlChannel *ch)
{
	if (ch->path != NULL && ch->fd >= 0)
		close(ch->fd);
	ch->fd = -1;
	if (ch->created)
		unlink(ch->path);
}
