/*-------------------------------------------------------------------------
 *
 * netem_cmd.c
 *	  The control commands of distsys-netem: parse one command line and
 *	  apply it to the links.
 *
 * As with distsys-kafka-mock, an applied command is confirmed twice:
 * "applied: CMD" in the log on stderr and "ok CMD" on stdout, printed
 * once the change is in effect (every command runs on the loop's only
 * thread, between two batches of events), so a test can wait for the
 * line before it relies on the change.  A rejected command gets
 * "error: CMD: REASON" and changes nothing.
 *
 *	delay LINK|all ONE_WAY_MS [JITTER_MS [uniform|normal]]
 *	partition LINK|all [up|down|both]
 *	heal LINK|all
 *	reset LINK|all
 *	link NAME LISTEN_PORT HOST:PORT
 *	stats
 *
 *-------------------------------------------------------------------------
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control_channel.h"
#include "log.h"
#include "netem.h"
#include "util.h"

#define NETEM_MAX_ARGS	6
#define NETEM_SPACE		" \t\r\f\v"

typedef bool (*NetemCommandFn) (Netem *n, char **argv, int argc,
								char *errbuf, size_t errlen);

typedef struct NetemCommand
{
	const char *name;
	int			min_args;		/* not counting the command name */
	int			max_args;
	NetemCommandFn fn;
	const char *usage;
} NetemCommand;

static bool cmd_delay(Netem *n, char **argv, int argc, char *errbuf, size_t errlen);
static bool cmd_partition(Netem *n, char **argv, int argc, char *errbuf, size_t errlen);
static bool cmd_heal(Netem *n, char **argv, int argc, char *errbuf, size_t errlen);
static bool cmd_reset(Netem *n, char **argv, int argc, char *errbuf, size_t errlen);
static bool cmd_link(Netem *n, char **argv, int argc, char *errbuf, size_t errlen);
static bool cmd_stats(Netem *n, char **argv, int argc, char *errbuf, size_t errlen);

static const NetemCommand commands[] = {
	{"delay", 2, 4, cmd_delay, "delay LINK|all ONE_WAY_MS [JITTER_MS [uniform|normal]]"},
	{"partition", 1, 2, cmd_partition, "partition LINK|all [up|down|both]"},
	{"heal", 1, 1, cmd_heal, "heal LINK|all"},
	{"reset", 1, 1, cmd_reset, "reset LINK|all"},
	{"link", 3, 3, cmd_link, "link NAME LISTEN_PORT HOST:PORT"},
	{"stats", 0, 0, cmd_stats, "stats"},
};

/*
 * netem_parse_ms: a delay in milliseconds, 0 to NETEM_MAX_DELAY_MS,
 * decimals allowed.
 */
bool
netem_parse_ms(const char *s, double *out)
{
	char	   *end;
	double		v;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || !(v >= 0 && v <= NETEM_MAX_DELAY_MS))
		return false;
	*out = v;
	return true;
}

/*
 * netem_parse_jitter: "uniform" or "normal".
 */
bool
netem_parse_jitter(const char *s, NetemJitter *out)
{
	if (strcmp(s, "uniform") == 0)
		*out = JITTER_UNIFORM;
	else if (strcmp(s, "normal") == 0)
		*out = JITTER_NORMAL;
	else
		return false;
	return true;
}

/*
 * pick_links: the links a LINK|all argument names, into out; returns how
 * many, or -1 with errbuf filled if there is no such link.
 */
static int
pick_links(Netem *n, const char *name, Link **out, char *errbuf, size_t errlen)
{
	Link	   *l;

	if (strcmp(name, "all") == 0)
	{
		memcpy(out, n->links, n->nlinks * sizeof(Link *));
		return n->nlinks;
	}
	l = netem_find_link(n, name);
	if (l == NULL)
	{
		snprintf(errbuf, errlen, "no link \"%s\"", name);
		return -1;
	}
	out[0] = l;
	return 1;
}

static bool
cmd_delay(Netem *n, char **argv, int argc, char *errbuf, size_t errlen)
{
	Link	   *links[NETEM_MAX_LINKS];
	double		delay,
				jitter = 0;
	NetemJitter kind = n->jitter_kind;
	int			count;

	if (!netem_parse_ms(argv[1], &delay) || (argc > 2 && !netem_parse_ms(argv[2], &jitter)))
	{
		snprintf(errbuf, errlen, "delays are milliseconds from 0 to %.0f", NETEM_MAX_DELAY_MS);
		return false;
	}
	if (argc > 3 && !netem_parse_jitter(argv[3], &kind))
	{
		snprintf(errbuf, errlen, "jitter is \"uniform\" or \"normal\", not \"%s\"", argv[3]);
		return false;
	}
	if ((count = pick_links(n, argv[0], links, errbuf, errlen)) < 0)
		return false;
	for (int i = 0; i < count; i++)
	{
		links[i]->delay_ms = delay;
		links[i]->jitter_ms = jitter;
		links[i]->jitter_kind = kind;
	}
	return true;
}

static bool
cmd_partition(Netem *n, char **argv, int argc, char *errbuf, size_t errlen)
{
	Link	   *links[NETEM_MAX_LINKS];
	int			dirs = NETEM_BOTH;
	int			count;

	if (argc > 1)
	{
		if (strcmp(argv[1], "up") == 0)
			dirs = NETEM_UP;
		else if (strcmp(argv[1], "down") == 0)
			dirs = NETEM_DOWN;
		else if (strcmp(argv[1], "both") != 0)
		{
			snprintf(errbuf, errlen, "direction is \"up\", \"down\" or \"both\", not \"%s\"", argv[1]);
			return false;
		}
	}
	if ((count = pick_links(n, argv[0], links, errbuf, errlen)) < 0)
		return false;
	for (int i = 0; i < count; i++)
		links[i]->held |= dirs;
	return true;
}

/* apply_to_links: run fn on the links a LINK|all argument names */
static bool
apply_to_links(Netem *n, const char *name, void (*fn) (Netem *, Link *),
			   char *errbuf, size_t errlen)
{
	Link	   *links[NETEM_MAX_LINKS];
	int			count = pick_links(n, name, links, errbuf, errlen);

	for (int i = 0; i < count; i++)
		fn(n, links[i]);
	return count >= 0;
}

static bool
cmd_heal(Netem *n, char **argv, int argc, char *errbuf, size_t errlen)
{
	return apply_to_links(n, argv[0], netem_heal, errbuf, errlen);
}

static bool
cmd_reset(Netem *n, char **argv, int argc, char *errbuf, size_t errlen)
{
	return apply_to_links(n, argv[0], netem_reset, errbuf, errlen);
}

static bool
cmd_link(Netem *n, char **argv, int argc, char *errbuf, size_t errlen)
{
	char	   *end;
	long		port = strtol(argv[1], &end, 10);
	Link	   *l;

	if (end == argv[1] || *end != '\0' || port < 0 || port > 65535)
	{
		snprintf(errbuf, errlen, "listen port \"%s\" is not 0 to 65535", argv[1]);
		return false;
	}
	l = netem_add_link(n, argv[0], (int) port, argv[2], errbuf, errlen);
	if (l == NULL)
		return false;
	printf("listening %s %d\n", l->name, l->listen_port);
	return true;
}

static const char *
held_name(int held)
{
	static const char *const names[] = {"none", "up", "down", "both"};

	return names[held & NETEM_BOTH];
}

static bool
cmd_stats(Netem *n, char **argv, int argc, char *errbuf, size_t errlen)
{
	for (int i = 0; i < n->nlinks; i++)
	{
		Link	   *l = n->links[i];

		printf("stats %s port=%d target=%s conns=%llu open=%llu up_bytes=%llu down_bytes=%llu delay_ms=%g jitter_ms=%g held=%s\n",
			   l->name, l->listen_port, l->target_desc,
			   (unsigned long long) l->accepted, (unsigned long long) l->open,
			   (unsigned long long) l->bytes[0], (unsigned long long) l->bytes[1],
			   l->delay_ms, l->jitter_ms, held_name(l->held));
	}
	return true;
}

/*
 * split_args: cut line (modified) into at most NETEM_MAX_ARGS words;
 * returns how many, or -1 if there are more.
 */
static int
split_args(char *line, char **argv)
{
	int			argc = 0;
	char	   *save = NULL;

	for (char *w = strtok_r(line, NETEM_SPACE, &save); w != NULL;
		 w = strtok_r(NULL, NETEM_SPACE, &save))
	{
		if (argc == NETEM_MAX_ARGS)
			return -1;
		argv[argc++] = w;
	}
	return argc;
}

/*
 * netem_command_run: apply one control line and report it.
 */
void
netem_command_run(Netem *n, const char *line)
{
	char		copy[CONTROL_LINE_MAX];
	char	   *argv[NETEM_MAX_ARGS];
	char		errbuf[NETEM_ERRMSG_MAX] = "";
	const NetemCommand *cmd = NULL;
	int			argc;
	bool		ok = false;

	snprintf(copy, sizeof(copy), "%s", line);
	argc = split_args(copy, argv);
	if (argc == 0)
		return;
	for (size_t i = 0; argc > 0 && i < lengthof(commands); i++)
		if (strcmp(argv[0], commands[i].name) == 0)
			cmd = &commands[i];
	if (cmd == NULL)
		snprintf(errbuf, sizeof(errbuf), "unknown command (try: delay, partition, heal, reset, link, stats)");
	else if (argc - 1 < cmd->min_args || argc - 1 > cmd->max_args)
		snprintf(errbuf, sizeof(errbuf), "usage: %s", cmd->usage);
	else
		ok = cmd->fn(n, argv + 1, argc - 1, errbuf, sizeof(errbuf));

	if (ok)
	{
		log_info("applied: %s", line);
		printf("ok %s\n", line);
	}
	else
	{
		log_error("%s: %s", line, errbuf);
		printf("error: %s: %s\n", line, errbuf);
	}
	fflush(stdout);
}
