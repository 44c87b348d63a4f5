/*-------------------------------------------------------------------------
 *
 * options.c
 *	  The option table of distsys-relay, and the one parser that reads
 *	  command-line flags, environment variables and the config file into it.
 *
 * Every setting is one row of opt_table: long flag (also the config-file
 * key), optional short flag, environment variable, type, range or choices,
 * default, the field of RelayOptions it fills, and a line of help.  --help
 * and --print-config are generated from the same rows, so a new setting is
 * one new row and nothing else.  A row also says which subcommands it
 * belongs to, as a mask of RelayCommand bits; a later subcommand adds its
 * own rows.
 *
 * Precedence is built-in defaults < config file < environment < command
 * line.  The sources are read in the order defaults, command line,
 * environment, config file (the command line and the environment name the
 * config file), and each value records the source that set it: a value is
 * stored only if no source of higher precedence has set it already.  Every
 * value is still parsed and checked, so a bad value is reported even where
 * it is overridden.  librdkafka properties are merged per property name by
 * the same rule.
 *
 * Errors are one line on stderr naming the flag, the environment variable
 * or file:line, and what was expected; the caller exits with
 * RELAY_EXIT_USAGE.  All of this runs once at start-up, in one thread.
 *
 *-------------------------------------------------------------------------
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>

#include "distsys_protocol.h"
#include "log.h"
#include "options.h"
#include "util.h"

#define PROGNAME "distsys-relay"
#define OFF(field) offsetof(RelayOptions, field)
#define OPT_VAL_BASE 256		/* getopt_long val of row 0; above any char */

typedef enum OptType
{
	OPT_STRING,
	OPT_CONNINFO,				/* libpq conninfo; passwords masked on print */
	OPT_INT,					/* int in [min, max] */
	OPT_DURATION,				/* int milliseconds in [min, max]; units */
	OPT_ENUM,					/* int, one of choices */
	OPT_BOOL,					/* bool; a flag without value on the CLI */
	OPT_KAFKA					/* adds one librdkafka property NAME=VALUE */
} OptType;

/* Where a value came from, in increasing order of precedence. */
typedef enum OptSource
{
	SRC_DEFAULT,
	SRC_FILE,
	SRC_ENV,
	SRC_CLI
} OptSource;

#define OPT_NO_FILE		0x01	/* not a config-file key */
#define OPT_ACTION		0x02	/* an action, not printed by --print-config */

typedef struct OptChoice
{
	const char *name;
	int			value;
} OptChoice;

typedef struct OptDef
{
	const char *name;			/* long flag without "--"; config-file key */
	char		short_name;		/* short flag, or '\0' */
	const char *env;			/* environment variable, or NULL */
	OptType		type;
	unsigned	commands;		/* RelayCommand bits the row belongs to */
	unsigned	flags;			/* OPT_NO_FILE, OPT_ACTION */
	int			min;			/* OPT_INT, OPT_DURATION (ms) */
	int			max;
	const OptChoice *choices;	/* OPT_ENUM, ended by a NULL name */
	const char *defval;			/* default, parsed like any value; or NULL */
	size_t		offset;			/* field of RelayOptions */
	const char *metavar;		/* the value's name in --help */
	const char *help;
} OptDef;

typedef struct OptCommand
{
	const char *name;
	RelayCommand command;
	const char *help;
} OptCommand;

static const OptCommand opt_commands[] = {
	{"publish", RELAY_CMD_PUBLISH, "relay the outbox table to Kafka (the default)"},
	{"consume", RELAY_CMD_CONSUME, "apply Kafka messages once each through the inbox"},
};

static const OptChoice log_format_choices[] = {
	{"text", LOG_FORMAT_TEXT}, {"json", LOG_FORMAT_JSON}, {NULL, 0}
};

static const OptChoice log_level_choices[] = {
	{"debug", LOG_LEVEL_DEBUG}, {"info", LOG_LEVEL_INFO},
	{"warning", LOG_LEVEL_WARNING}, {"error", LOG_LEVEL_ERROR}, {NULL, 0}
};

static const OptDef opt_table[] = {
	{
		.name = "db", .env = "DISTSYS_DB", .type = OPT_CONNINFO,
		.commands = RELAY_CMD_ALL, .offset = OFF(db), .metavar = "CONNINFO",
		.help = "libpq connection string of the database holding the outbox"
	},
	{
		.name = "brokers", .env = "DISTSYS_BROKERS", .type = OPT_STRING,
		.commands = RELAY_CMD_ALL, .offset = OFF(brokers),
		.metavar = "HOST:PORT,...", .help = "Kafka bootstrap servers"
	},
	{
		.name = "config", .env = "DISTSYS_CONFIG", .type = OPT_STRING,
		.commands = RELAY_CMD_ALL, .flags = OPT_NO_FILE, .offset = OFF(config),
		.metavar = "FILE", .help = "read settings from FILE (see below)"
	},
	{
		.name = "kafka", .short_name = 'X', .env = "DISTSYS_KAFKA",
		.type = OPT_KAFKA, .commands = RELAY_CMD_ALL, .offset = OFF(kafka),
		.metavar = "NAME=VALUE",
		.help = "set a librdkafka property; repeatable"
	},
	{
		.name = "batch-size", .env = "DISTSYS_BATCH_SIZE", .type = OPT_INT,
		.commands = RELAY_CMD_ALL, .min = 1, .max = 100000,
		.defval = "1000", .offset = OFF(batch_size), .metavar = "N",
		.help = "outbox rows read, or messages applied, per transaction"
	},
	{
		.name = "retry-backoff", .env = "DISTSYS_RETRY_BACKOFF",
		.type = OPT_DURATION, .commands = RELAY_CMD_ALL, .min = 1,
		.max = 10 * 60 * 1000, .defval = "100ms",
		.offset = OFF(retry_backoff_ms), .metavar = "DURATION",
		.help = "delay after a failed attempt, doubled on each retry"
	},
	{
		.name = "retry-backoff-max", .env = "DISTSYS_RETRY_BACKOFF_MAX",
		.type = OPT_DURATION, .commands = RELAY_CMD_ALL, .min = 1,
		.max = 60 * 60 * 1000, .defval = "10s",
		.offset = OFF(retry_backoff_max_ms), .metavar = "DURATION",
		.help = "longest delay between two attempts"
	},
	{
		.name = "dead-letter-after", .env = "DISTSYS_DEAD_LETTER_AFTER",
		.type = OPT_INT, .commands = RELAY_CMD_ALL, .min = 1, .max = 1000000,
		.defval = "10", .offset = OFF(dead_letter_after), .metavar = "N",
		.help = "failed attempts after which a message is dead-lettered"
	},
	{
		.name = "lanes", .env = "DISTSYS_LANES", .type = OPT_INT,
		.commands = RELAY_CMD_PUBLISH, .min = 1, .max = DISTSYS_OUTBOX_LANES, .defval = "16",
		.offset = OFF(lanes), .metavar = "N",
		.help = "hash lanes the outbox is split into; one key stays in one lane"
	},
	{
		.name = "standbys", .env = "DISTSYS_STANDBYS", .type = OPT_INT,
		.commands = RELAY_CMD_ALL, .min = 0, .max = 64, .defval = "0",
		.offset = OFF(standbys), .metavar = "N",
		.help = "publish a row, or commit an offset, only once N physical standbys flushed the commit"
	},
	{
		.name = "topic", .env = "DISTSYS_TOPIC", .type = OPT_STRING,
		.commands = RELAY_CMD_CONSUME, .offset = OFF(topics),
		.metavar = "TOPIC[,TOPIC...]", .help = "topics to consume"
	},
	{
		.name = "group", .env = "DISTSYS_GROUP", .type = OPT_STRING,
		.commands = RELAY_CMD_CONSUME, .offset = OFF(group), .metavar = "GROUP",
		.help = "Kafka consumer group; also the inbox consumer name"
	},
	{
		.name = "handler", .env = "DISTSYS_HANDLER", .type = OPT_STRING,
		.commands = RELAY_CMD_CONSUME, .offset = OFF(handler),
		.metavar = "SCHEMA.FUNCTION",
		.help = "function(topic text, key text, payload jsonb|bytea, headers jsonb) applying a message"
	},
	{
		.name = "metrics-addr", .env = "DISTSYS_METRICS_ADDR", .type = OPT_STRING,
		.commands = RELAY_CMD_ALL, .offset = OFF(metrics_addr),
		.metavar = "HOST:PORT", .help = "serve metrics on HOST:PORT (empty: off)"
	},
	{
		.name = "log-format", .env = "DISTSYS_LOG_FORMAT", .type = OPT_ENUM,
		.commands = RELAY_CMD_ALL, .choices = log_format_choices,
		.defval = "text", .offset = OFF(log_format), .metavar = "FORMAT",
		.help = "format of log lines on stderr"
	},
	{
		.name = "log-level", .env = "DISTSYS_LOG_LEVEL", .type = OPT_ENUM,
		.commands = RELAY_CMD_ALL, .choices = log_level_choices,
		.defval = "info", .offset = OFF(log_level), .metavar = "LEVEL",
		.help = "lowest level of the lines logged"
	},
	{
		.name = "print-config", .type = OPT_BOOL, .commands = RELAY_CMD_ALL,
		.flags = OPT_NO_FILE | OPT_ACTION, .offset = OFF(print_config),
		.help = "print the effective configuration and exit"
	},
	{
		.name = "help", .short_name = 'h', .type = OPT_BOOL,
		.commands = RELAY_CMD_ALL, .flags = OPT_NO_FILE | OPT_ACTION,
		.offset = OFF(show_help), .help = "print this help and exit"
	},
	{
		.name = "version", .short_name = 'V', .type = OPT_BOOL,
		.commands = RELAY_CMD_ALL, .flags = OPT_NO_FILE | OPT_ACTION,
		.offset = OFF(show_version), .help = "print the version and exit"
	},
};

/* Where one value was read: the flag as typed, a variable, or file:line. */
typedef struct OptOrigin
{
	OptSource	source;
	const char *name;			/* "--lanes", "-X", "DISTSYS_LANES", "lanes" */
	const char *file;			/* SRC_FILE only */
	int			line;
} OptOrigin;

typedef struct OptParser
{
	RelayOptions *opts;
	OptSource	set_by[lengthof(opt_table)];	/* source of each value */
} OptParser;

static const struct
{
	const char *unit;
	int			ms;
}			duration_units[] = {
	{"h", 60 * 60 * 1000}, {"min", 60 * 1000}, {"s", 1000}, {"ms", 1}
};

static const char help_footer[] =
"\n"
"Settings are taken from, in increasing precedence: built-in defaults, the\n"
"config file, environment variables, the command line.  Empty environment\n"
"variables are ignored.\n"
"\n"
"The config file has \"key = value\" lines; a key is a long option name\n"
"without \"--\", and \"kafka.NAME = VALUE\" sets a librdkafka property as -X\n"
"does.  Lines starting with \"#\" and blank lines are ignored; a value may be\n"
"put in double quotes.  DISTSYS_KAFKA holds librdkafka properties as\n"
"NAME=VALUE pairs separated by \";\".  A duration is an integer with unit\n"
"ms, s, min or h; a bare number is milliseconds.\n"
"\n"
"Exit status: 0 done, 1 run-time failure, 2 bad option or configuration.\n";

/*
 * opt_error: print one error line on stderr, prefixed by the program name
 * and, for a config-file value, by file:line.
 */
static void
opt_error(const OptOrigin *at, const char *fmt,...)
	__attribute__((format(printf, 2, 3)));

static void
opt_error(const OptOrigin *at, const char *fmt,...)
{
	va_list		ap;

	fprintf(stderr, "%s: ", PROGNAME);
	if (at != NULL && at->file != NULL)
		fprintf(stderr, "%s:%d: ", at->file, at->line);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/*
 * xstrdup: strdup that exits on out-of-memory; start-up has no way to
 * carry on without its settings.
 */
static char *
xstrdup(const char *s)
{
	char	   *copy = strdup(s);

	if (copy == NULL)
	{
		opt_error(NULL, "out of memory");
		exit(RELAY_EXIT_FAILURE);
	}
	return copy;
}

/*
 * xrealloc: realloc that exits on out-of-memory, as xstrdup.
 */
static void *
xrealloc(void *ptr, size_t size)
{
	void	   *p = realloc(ptr, size);

	if (p == NULL)
	{
		opt_error(NULL, "out of memory");
		exit(RELAY_EXIT_FAILURE);
	}
	return p;
}

/*
 * trim: strip leading and trailing white space in place; returns the start.
 */
static char *
trim(char *s)
{
	char	   *end;

	while (isspace((unsigned char) *s))
		s++;
	end = s + strlen(s);
	while (end > s && isspace((unsigned char) end[-1]))
		end--;
	*end = '\0';
	return s;
}

/*
 * format_duration: write ms in the largest unit that divides it evenly.
 */
static void
format_duration(int ms, char *buf, size_t len)
{
	size_t		i;

	for (i = 0; i < lengthof(duration_units); i++)
	{
		if (ms != 0 && ms % duration_units[i].ms == 0)
			break;
	}
	if (i == lengthof(duration_units))
		i = lengthof(duration_units) - 1;
	snprintf(buf, len, "%d%s", ms / duration_units[i].ms,
			 duration_units[i].unit);
}

/*
 * describe_expected: write what a value of def must look like, as the end
 * of "expected ...".  With examples, durations get sample spellings too.
 */
static void
describe_expected(const OptDef *def, bool examples, char *buf, size_t len)
{
	char		lo[32];
	char		hi[32];
	size_t		n = 0;

	switch (def->type)
	{
		case OPT_INT:
			snprintf(buf, len, "an integer from %d to %d", def->min, def->max);
			break;
		case OPT_DURATION:
			format_duration(def->min, lo, sizeof(lo));
			format_duration(def->max, hi, sizeof(hi));
			snprintf(buf, len, "a duration from %s to %s%s", lo, hi,
					 examples ? ", such as 250ms, 2s or 1min" : "");
			break;
		case OPT_ENUM:
			n = snprintf(buf, len, "one of");
			for (const OptChoice *c = def->choices; c->name && n < len; c++)
				n += snprintf(buf + n, len - n, "%s %s",
							  c == def->choices ? "" : ",", c->name);
			break;
		case OPT_BOOL:
			snprintf(buf, len, "true or false");
			break;
		case OPT_KAFKA:
			snprintf(buf, len, "a librdkafka property as NAME=VALUE");
			break;
		case OPT_CONNINFO:
			snprintf(buf, len, "a libpq connection string");
			break;
		case OPT_STRING:
			snprintf(buf, len, "%s", def->metavar);
			break;
	}
}

/*
 * report_invalid: the one error line for a value that does not parse.
 * detail, when not empty, is the reason given by libpq or librdkafka.
 * A conninfo is not echoed: it may hold a password.
 */
static void
report_invalid(const OptDef *def, const char *text, const OptOrigin *at,
			   const char *detail)
{
	char		expected[256];

	if (detail[0] == '\0')
	{
		describe_expected(def, true, expected, sizeof(expected));
		opt_error(at, "invalid value \"%s\" for %s: expected %s",
				  text, at->name, expected);
	}
	else if (def->type == OPT_CONNINFO)
		opt_error(at, "invalid value for %s: %s", at->name, detail);
	else
		opt_error(at, "invalid value \"%s\" for %s: %s",
				  text, at->name, detail);
}

/*
 * claim: true if a value from source may replace the current one of def,
 * which then counts as set by source.
 */
static bool
claim(OptParser *p, const OptDef *def, OptSource source)
{
	size_t		i = def - opt_table;

	if (source < p->set_by[i])
		return false;
	p->set_by[i] = source;
	return true;
}

/*
 * parse_int: read a whole decimal integer within [def->min, def->max].
 */
static bool
parse_int(const OptDef *def, const char *text, int *out)
{
	char	   *end;
	long		v;

	errno = 0;
	v = strtol(text, &end, 10);
	if (end == text || *end != '\0' || errno == ERANGE ||
		v < def->min || v > def->max)
		return false;
	*out = (int) v;
	return true;
}

/*
 * parse_duration: read an integer with an optional unit (ms, s, min, h;
 * none means ms) as milliseconds within [def->min, def->max].
 */
static bool
parse_duration(const OptDef *def, const char *text, int *out)
{
	char	   *end;
	long long	v;
	int			scale = 0;

	if (!isdigit((unsigned char) *text))
		return false;
	errno = 0;
	v = strtoll(text, &end, 10);
	while (*end == ' ')
		end++;
	for (size_t i = 0; i < lengthof(duration_units); i++)
	{
		if (strcmp(end, duration_units[i].unit) == 0)
			scale = duration_units[i].ms;
	}
	if (*end == '\0')
		scale = 1;
	if (scale == 0 || errno == ERANGE || v > def->max / scale ||
		v * scale < def->min)
		return false;
	*out = (int) (v * scale);
	return true;
}

/*
 * parse_enum: find text (any case) among def->choices.
 */
static bool
parse_enum(const OptDef *def, const char *text, int *out)
{
	for (const OptChoice *c = def->choices; c->name != NULL; c++)
	{
		if (strcasecmp(text, c->name) == 0)
		{
			*out = c->value;
			return true;
		}
	}
	return false;
}

/*
 * parse_bool: read true/false, on/off, yes/no or 1/0.
 */
static bool
parse_bool(const char *text, int *out)
{
	static const char *const yes[] = {"true", "on", "yes", "1"};
	static const char *const no[] = {"false", "off", "no", "0"};

	for (size_t i = 0; i < lengthof(yes); i++)
	{
		if (strcasecmp(text, yes[i]) == 0 || strcasecmp(text, no[i]) == 0)
		{
			*out = strcasecmp(text, yes[i]) == 0;
			return true;
		}
	}
	return false;
}

/*
 * number_set: parse an int, duration, enum or bool value and store it
 * unless a source of higher precedence has set it.
 */
static bool
number_set(OptParser *p, const OptDef *def, const char *text,
		   OptSource source)
{
	char	   *field = (char *) p->opts + def->offset;
	int			value = 0;
	bool		ok;

	if (def->type == OPT_INT)
		ok = parse_int(def, text, &value);
	else if (def->type == OPT_DURATION)
		ok = parse_duration(def, text, &value);
	else if (def->type == OPT_ENUM)
		ok = parse_enum(def, text, &value);
	else
		ok = parse_bool(text, &value);

	if (ok && claim(p, def, source))
	{
		if (def->type == OPT_BOOL)
			*(bool *) field = value != 0;
		else
			*(int *) field = value;
	}
	return ok;
}

/*
 * string_set: store a string, checking a conninfo with libpq first.  On
 * a bad conninfo, libpq's reason goes to detail.
 */
static bool
string_set(OptParser *p, const OptDef *def, const char *text,
		   OptSource source, char *detail, size_t len)
{
	char	  **field = (char **) ((char *) p->opts + def->offset);

	if (def->type == OPT_CONNINFO)
	{
		char	   *errmsg = NULL;
		PQconninfoOption *parsed = PQconninfoParse(text, &errmsg);

		if (parsed == NULL)
		{
			snprintf(detail, len, "%s", errmsg ? trim(errmsg) : "out of memory");
			PQfreemem(errmsg);
			return false;
		}
		PQconninfoFree(parsed);
	}
	if (claim(p, def, source))
	{
		free(*field);
		*field = xstrdup(text);
	}
	return true;
}

/*
 * kafka_check: ask librdkafka whether it knows the property and accepts
 * the value, on a throw-away configuration.  The broker list has its own
 * option, so bootstrap.servers is refused here.
 */
static bool
kafka_check(const char *name, const char *value, char *detail, size_t len)
{
	rd_kafka_conf_t *conf;
	rd_kafka_conf_res_t res;

	if (strcmp(name, "bootstrap.servers") == 0 ||
		strcmp(name, "metadata.broker.list") == 0)
	{
		snprintf(detail, len, "set the broker list with --brokers");
		return false;
	}
	conf = rd_kafka_conf_new();
	res = rd_kafka_conf_set(conf, name, value, detail, len);
	rd_kafka_conf_destroy(conf);
	return res == RD_KAFKA_CONF_OK;
}

/*
 * kafka_put: add name=value to the list, or replace the value of the same
 * name unless that came from a source of higher precedence.
 */
static void
kafka_put(KafkaPropertyList *list, const char *name, const char *value,
		  OptSource source)
{
	KafkaProperty *prop = NULL;

	for (int i = 0; i < list->count && prop == NULL; i++)
	{
		if (strcmp(list->items[i].name, name) == 0)
			prop = &list->items[i];
	}
	if (prop == NULL)
	{
		if (list->count == list->capacity)
		{
			list->capacity = list->capacity ? list->capacity * 2 : 8;
			list->items = xrealloc(list->items,
								   list->capacity * sizeof(KafkaProperty));
		}
		prop = &list->items[list->count++];
		prop->name = xstrdup(name);
		prop->value = NULL;
		prop->source = SRC_DEFAULT;
	}
	if ((int) source < prop->source)
		return;
	free(prop->value);
	prop->value = xstrdup(value);
	prop->source = source;
}

/*
 * kafka_set: split NAME=VALUE, check it with librdkafka and merge it into
 * the property list.
 */
static bool
kafka_set(OptParser *p, const char *text, OptSource source,
		  char *detail, size_t len)
{
	char	   *name = xstrdup(text);
	char	   *eq = strchr(name, '=');
	bool		ok = false;

	if (eq != NULL && eq != name)
	{
		*eq = '\0';
		ok = kafka_check(name, eq + 1, detail, len);
		if (ok)
			kafka_put(&p->opts->kafka, name, eq + 1, source);
	}
	free(name);
	return ok;
}

/*
 * opt_set: parse text as a value of def read at origin, and store it
 * unless a source of higher precedence has set it.  Returns false after
 * reporting a bad value.
 */
static bool
opt_set(OptParser *p, const OptDef *def, const char *text,
		const OptOrigin *at)
{
	char		detail[512];
	bool		ok;

	detail[0] = '\0';
	if (def->type == OPT_KAFKA)
		ok = kafka_set(p, text, at->source, detail, sizeof(detail));
	else if (def->type == OPT_STRING || def->type == OPT_CONNINFO)
		ok = string_set(p, def, text, at->source, detail, sizeof(detail));
	else
		ok = number_set(p, def, text, at->source);
	if (!ok)
		report_invalid(def, text, at, detail);
	return ok;
}

/*
 * set_defaults: give every row its built-in default, through the same
 * parser as any other value.
 */
static bool
set_defaults(OptParser *p)
{
	OptOrigin	at = {SRC_DEFAULT, NULL, NULL, 0};

	for (size_t i = 0; i < lengthof(opt_table); i++)
	{
		at.name = opt_table[i].name;
		if (opt_table[i].defval != NULL &&
			!opt_set(p, &opt_table[i], opt_table[i].defval, &at))
			return false;
	}
	return true;
}

/*
 * find_long: the row whose long name is the first len bytes of name.
 */
static const OptDef *
find_long(const char *name, size_t len)
{
	for (size_t i = 0; i < lengthof(opt_table); i++)
	{
		if (strncmp(opt_table[i].name, name, len) == 0 &&
			opt_table[i].name[len] == '\0')
			return &opt_table[i];
	}
	return NULL;
}

/*
 * find_short: the row with short flag c.
 */
static const OptDef *
find_short(char c)
{
	for (size_t i = 0; i < lengthof(opt_table); i++)
	{
		if (c != '\0' && opt_table[i].short_name == c)
			return &opt_table[i];
	}
	return NULL;
}

/*
 * command_list: the names of all subcommands, for an error message.
 */
static const char *
command_list(void)
{
	static char buf[256];
	size_t		n = 0;

	for (size_t i = 0; i < lengthof(opt_commands) && n < sizeof(buf); i++)
		n += snprintf(buf + n, sizeof(buf) - n, "%s%s",
					  i == 0 ? "" : " or ", opt_commands[i].name);
	return buf;
}

/*
 * parse_command: the subcommand named by the first word, if it is not a
 * flag.  Sets *first to the index of the first flag.
 */
static bool
parse_command(RelayOptions *opts, int argc, char **argv, int *first)
{
	*first = 1;
	opts->command = opt_commands[0].command;
	if (argc < 2 || argv[1][0] == '-')
		return true;
	*first = 2;
	for (size_t i = 0; i < lengthof(opt_commands); i++)
	{
		if (strcmp(argv[1], opt_commands[i].name) == 0)
		{
			opts->command = opt_commands[i].command;
			return true;
		}
	}
	opt_error(NULL, "unknown command \"%s\": expected %s; see %s --help",
			  argv[1], command_list(), PROGNAME);
	return false;
}

/*
 * build_getopt: getopt_long's view of opt_table.  Every row is a long
 * option whose val is OPT_VAL_BASE + its index; a row with a short flag
 * also appears in shortopts, with ':' when it takes a value.  shortopts
 * starts with "+:": stop at the first argument that is not a flag (a
 * command must come first), and tell a missing value (':') from an
 * unknown flag ('?').
 */
static void
build_getopt(struct option *longopts, char *shortopts)
{
	size_t		n = 0;

	shortopts[n++] = '+';
	shortopts[n++] = ':';
	for (size_t i = 0; i < lengthof(opt_table); i++)
	{
		const OptDef *def = &opt_table[i];

		longopts[i] = (struct option) {
			.name = def->name,
			.has_arg = def->type == OPT_BOOL ? no_argument : required_argument,
			.val = OPT_VAL_BASE + (int) i
		};
		if (def->short_name != '\0')
		{
			shortopts[n++] = def->short_name;
			if (def->type != OPT_BOOL)
				shortopts[n++] = ':';
		}
	}
	longopts[lengthof(opt_table)] = (struct option) {0};
	shortopts[n] = '\0';
}

/*
 * flag_row: the row of the flag getopt_long answered val for, read from
 * argument arg, and the flag as typed (for messages).  getopt_long also
 * takes an unambiguous prefix of a long name; that is refused here as
 * unknown, so that a new option never changes what an old command line
 * means.  Reports and returns NULL for an unknown flag or one of another
 * command.
 */
static const OptDef *
flag_row(const RelayOptions *opts, int val, const char *arg, char *flag, size_t flaglen)
{
	const OptDef *def;

	if (val >= OPT_VAL_BASE)
	{
		size_t		len = strcspn(arg + 2, "=");

		snprintf(flag, flaglen, "--%.*s", (int) len, arg + 2);
		def = find_long(arg + 2, len);
	}
	else
	{
		snprintf(flag, flaglen, "-%c", val);
		def = find_short((char) val);
	}
	if (def == NULL)
		opt_error(NULL, "unknown option \"%s\"; see %s --help", flag, PROGNAME);
	else if (!(def->commands & opts->command))
		opt_error(NULL, "option %s is not available for the %s command",
				  flag, options_command_name(opts->command));
	return def && (def->commands & opts->command) ? def : NULL;
}

/*
 * parse_flag: act on one answer c of getopt_long, read from argument arg:
 * a flag to set, a missing value (':') or an error ('?').
 */
static bool
parse_flag(OptParser *p, int c, const char *arg)
{
	const OptDef *def;
	char		flag[128];
	char		expected[256];
	OptOrigin	at = {SRC_CLI, flag, NULL, 0};

	if (c == '?' && optopt == 0)
	{
		/* an unknown (or ambiguous) long flag */
		snprintf(flag, sizeof(flag), "%.*s", (int) strcspn(arg, "="), arg);
		opt_error(NULL, "unknown option \"%s\"; see %s --help", flag, PROGNAME);
		return false;
	}
	if ((def = flag_row(p->opts, c == '?' || c == ':' ? optopt : c, arg,
						flag, sizeof(flag))) == NULL)
		return false;
	if (c == '?')
	{
		/* a known flag: a long flag without value, given one */
		opt_error(NULL, "option %s takes no value", flag);
		return false;
	}
	if (c == ':')
	{
		describe_expected(def, false, expected, sizeof(expected));
		opt_error(NULL, "option %s needs a value: expected %s", flag, expected);
		return false;
	}
	return opt_set(p, def, def->type == OPT_BOOL ? "true" : optarg, &at);
}

/*
 * parse_command_line: read every flag after the subcommand with
 * getopt_long; an argument left over is an error.
 */
static bool
parse_command_line(OptParser *p, int argc, char **argv, int first)
{
	struct option longopts[lengthof(opt_table) + 1];
	char		shortopts[2 + 2 * lengthof(opt_table) + 1];
	int			nargs = argc - first + 1;
	char	  **args = argv + first - 1;	/* args[0] stands for the program */

	build_getopt(longopts, shortopts);
	opterr = 0;					/* our messages, not getopt's */
	optind = 1;
	for (;;)
	{
		int			at = optind;	/* the argument the next flag is in */
		int			c = getopt_long(nargs, args, shortopts, longopts, NULL);

		if (c == -1)
			break;
		if (!parse_flag(p, c, args[at]))
			return false;
	}
	if (optind < nargs)
	{
		opt_error(NULL, "unexpected argument \"%s\": a command must come "
				  "before all options", args[optind]);
		return false;
	}
	return true;
}

/*
 * kafka_env_set: read a ";"-separated list of NAME=VALUE properties.
 */
static bool
kafka_env_set(OptParser *p, const OptDef *def, const char *text,
			  const OptOrigin *at)
{
	char	   *copy = xstrdup(text);
	char	   *save = NULL;
	bool		ok = true;

	for (char *item = strtok_r(copy, ";", &save); item != NULL && ok;
		 item = strtok_r(NULL, ";", &save))
	{
		item = trim(item);
		if (*item != '\0')
			ok = opt_set(p, def, item, at);
	}
	free(copy);
	return ok;
}

/*
 * parse_environment: read the variable of each row of the command.  An
 * empty variable counts as unset.
 */
static bool
parse_environment(OptParser *p)
{
	for (size_t i = 0; i < lengthof(opt_table); i++)
	{
		const OptDef *def = &opt_table[i];
		OptOrigin	at = {SRC_ENV, def->env, NULL, 0};
		const char *text;

		if (def->env == NULL || !(def->commands & p->opts->command))
			continue;
		text = getenv(def->env);
		if (text == NULL || *text == '\0')
			continue;
		if (def->type == OPT_KAFKA ? !kafka_env_set(p, def, text, &at)
			: !opt_set(p, def, text, &at))
			return false;
	}
	return true;
}

/*
 * unquote: strip one pair of double quotes around s, in place.
 */
static char *
unquote(char *s)
{
	size_t		len = strlen(s);

	if (len >= 2 && s[0] == '"' && s[len - 1] == '"')
	{
		s[len - 1] = '\0';
		return s + 1;
	}
	return s;
}

/*
 * set_file_kafka: a "kafka.NAME = VALUE" line of the config file.
 */
static bool
set_file_kafka(OptParser *p, const char *name, const char *value,
			   const OptOrigin *at)
{
	size_t		len = strlen(name) + strlen(value) + 2;
	char	   *text = xrealloc(NULL, len);
	bool		ok;

	snprintf(text, len, "%s=%s", name, value);
	ok = opt_set(p, find_long("kafka", strlen("kafka")), text, at);
	free(text);
	return ok;
}

/*
 * parse_config_line: one line of the config file.  Keys of rows of another
 * subcommand are accepted and ignored, so one file can serve all commands.
 */
static bool
parse_config_line(OptParser *p, char *line, OptOrigin *at)
{
	char	   *key = trim(line);
	char	   *eq = strchr(key, '=');
	const OptDef *def;

	if (*key == '\0' || *key == '#')
		return true;
	if (eq == NULL)
	{
		opt_error(at, "expected \"key = value\", found \"%s\"", key);
		return false;
	}
	*eq = '\0';
	at->name = key = trim(key);
	if (strncmp(key, "kafka.", 6) == 0)
		return set_file_kafka(p, key + 6, unquote(trim(eq + 1)), at);
	def = find_long(key, strlen(key));
	if (def == NULL || (def->flags & OPT_NO_FILE))
	{
		opt_error(at, def ? "key \"%s\" cannot be set in a config file"
				  : "unknown key \"%s\"", key);
		return false;
	}
	if (!(def->commands & p->opts->command))
		return true;
	return opt_set(p, def, unquote(trim(eq + 1)), at);
}

/*
 * parse_config_file: read every line of the config file at path.
 */
static bool
parse_config_file(OptParser *p, const char *path)
{
	OptOrigin	at = {SRC_FILE, NULL, path, 0};
	char	   *line = NULL;
	size_t		cap = 0;
	bool		ok = true;
	FILE	   *f = fopen(path, "r");

	if (f == NULL)
	{
		opt_error(NULL, "could not open config file \"%s\": %s",
				  path, strerror(errno));
		return false;
	}
	while (ok && getline(&line, &cap, f) >= 0)
	{
		at.line++;
		ok = parse_config_line(p, line, &at);
	}
	if (ok && ferror(f))
	{
		opt_error(NULL, "could not read config file \"%s\": %s",
				  path, strerror(errno));
		ok = false;
	}
	free(line);
	fclose(f);
	return ok;
}

/*
 * check_consistency: rules between options, checked once all are read.
 */
static bool
check_consistency(const RelayOptions *opts)
{
	char		lo[32];
	char		hi[32];

	if (opts->retry_backoff_ms > opts->retry_backoff_max_ms)
	{
		format_duration(opts->retry_backoff_ms, lo, sizeof(lo));
		format_duration(opts->retry_backoff_max_ms, hi, sizeof(hi));
		opt_error(NULL, "--retry-backoff (%s) must not be greater than "
				  "--retry-backoff-max (%s)", lo, hi);
		return false;
	}
	return true;
}

/*
 * options_parse: fill opts from defaults, argv, the environment and the
 * config file.  Returns false after printing one error line; the caller
 * exits with RELAY_EXIT_USAGE.  With --help or --version only the command
 * line is read, so a broken environment cannot hide the help.
 */
bool
options_parse(RelayOptions *opts, int argc, char **argv)
{
	OptParser	p;
	int			first;

	memset(opts, 0, sizeof(*opts));
	memset(&p, 0, sizeof(p));
	p.opts = opts;
	if (!parse_command(opts, argc, argv, &first) || !set_defaults(&p) ||
		!parse_command_line(&p, argc, argv, first))
		return false;
	if (opts->show_help || opts->show_version)
		return true;
	if (!parse_environment(&p))
		return false;
	if (opts->config != NULL && opts->config[0] != '\0' &&
		!parse_config_file(&p, opts->config))
		return false;
	return check_consistency(opts);
}

/*
 * options_require: whether every setting in names (long names of string
 * rows, NULL-terminated) has a non-empty value.  False after one log line
 * naming the first that has none and the three ways to give it; the
 * caller exits with RELAY_EXIT_USAGE.
 */
bool
options_require(const RelayOptions *opts, const char *const *names)
{
	char		scope[64] = "";

	/* the default command's messages do not name it */
	if (opts->command != opt_commands[0].command)
		snprintf(scope, sizeof(scope), " for the %s command",
				 options_command_name(opts->command));
	for (; *names != NULL; names++)
	{
		const OptDef *def = find_long(*names, strlen(*names));
		const char *value = *(char *const *) ((const char *) opts + def->offset);

		if (value != NULL && value[0] != '\0')
			continue;
		log_error("--%s is required%s: give --%s, set %s or put %s in the config file",
				  def->name, scope, def->name, def->env, def->name);
		return false;
	}
	return true;
}

/*
 * options_command_name: the name of a subcommand.
 */
const char *
options_command_name(RelayCommand command)
{
	for (size_t i = 0; i < lengthof(opt_commands); i++)
	{
		if (opt_commands[i].command == command)
			return opt_commands[i].name;
	}
	return "?";
}

/*
 * print_option_help: the lines of --help for one row: flags and help, then
 * the accepted values, the default and the environment variable.
 */
static void
print_option_help(FILE *out, const OptDef *def)
{
	char		flags[64];
	char		notes[384] = "";
	int			n = 0;

	if (def->short_name)
		n = snprintf(flags, sizeof(flags), "-%c, ", def->short_name);
	snprintf(flags + n, sizeof(flags) - n, "--%s%s%s", def->name,
			 def->metavar ? " " : "", def->metavar ? def->metavar : "");
	fprintf(out, "  %-30s %s\n", flags, def->help);
	if (def->type == OPT_INT || def->type == OPT_DURATION ||
		def->type == OPT_ENUM)
		describe_expected(def, false, notes, sizeof(notes));
	n = strlen(notes);
	if (def->defval != NULL)
		n += snprintf(notes + n, sizeof(notes) - n, "%sdefault %s",
					  n ? "; " : "", def->defval);
	if (def->env != NULL)
		n += snprintf(notes + n, sizeof(notes) - n, "%senv %s",
					  n ? "; " : "", def->env);
	if (n > 0)
		fprintf(out, "  %-30s (%s)\n", "", notes);
}

/*
 * options_print_help: usage of the selected command, generated from the
 * option table.
 */
void
options_print_help(FILE *out, const RelayOptions *opts)
{
	fprintf(out, "%s relays a transactional outbox table to Kafka, and applies\n"
			"Kafka messages exactly once through an inbox.\n\n"
			"Usage:\n  %s [COMMAND] [OPTION]...\n\nCommands:\n",
			PROGNAME, PROGNAME);
	for (size_t i = 0; i < lengthof(opt_commands); i++)
		fprintf(out, "  %-30s %s\n", opt_commands[i].name, opt_commands[i].help);
	fprintf(out, "\nOptions of the %s command:\n",
			options_command_name(opts->command));
	for (size_t i = 0; i < lengthof(opt_table); i++)
	{
		if (opt_table[i].commands & opts->command)
			print_option_help(out, &opt_table[i]);
	}
	fputs(help_footer, out);
}

/*
 * print_conninfo: a conninfo as keyword=value pairs, with every value
 * libpq flags as secret (password, sslpassword) masked.
 */
static void
print_conninfo(FILE *out, const char *conninfo)
{
	PQconninfoOption *parsed = PQconninfoParse(conninfo, NULL);
	const char *sep = "";

	for (PQconninfoOption *o = parsed; o && o->keyword; o++)
	{
		if (o->val == NULL)
			continue;
		fprintf(out, "%s%s=", sep, o->keyword);
		if (strchr(o->dispchar, '*') != NULL)
			fputs("********", out);
		else if (o->val[0] == '\0' || strpbrk(o->val, " \t'\\") != NULL)
		{
			fputc('\'', out);
			for (const char *c = o->val; *c; c++)
				fprintf(out, "%s%c", *c == '\'' || *c == '\\' ? "\\" : "", *c);
			fputc('\'', out);
		}
		else
			fputs(o->val, out);
		sep = " ";
	}
	PQconninfoFree(parsed);
}

/*
 * kafka_secret: whether a librdkafka property holds a secret that
 * --print-config must not show (passwords, client secrets, private keys).
 */
static bool
kafka_secret(const char *name)
{
	return strstr(name, "password") != NULL ||
		strstr(name, "secret") != NULL ||
		strstr(name, "key.pem") != NULL;
}

/*
 * print_value: the value of one row, as --print-config shows it.
 */
static void
print_value(FILE *out, const OptDef *def, const RelayOptions *opts)
{
	const char *field = (const char *) opts + def->offset;
	const char *const *str = (const char *const *) field;
	char		buf[32];

	switch (def->type)
	{
		case OPT_STRING:
			fputs(*str ? *str : "", out);
			break;
		case OPT_CONNINFO:
			print_conninfo(out, *str ? *str : "");
			break;
		case OPT_INT:
			fprintf(out, "%d", *(const int *) field);
			break;
		case OPT_DURATION:
			format_duration(*(const int *) field, buf, sizeof(buf));
			fputs(buf, out);
			break;
		case OPT_ENUM:
			for (const OptChoice *c = def->choices; c->name; c++)
				if (c->value == *(const int *) field)
					fputs(c->name, out);
			break;
		case OPT_BOOL:
			fputs(*(const bool *) field ? "true" : "false", out);
			break;
		case OPT_KAFKA:
			break;
	}
}

/*
 * options_print_config: the effective settings of the command, one
 * "name = value" line each, in the config-file syntax.
 */
void
options_print_config(FILE *out, const RelayOptions *opts)
{
	for (size_t i = 0; i < lengthof(opt_table); i++)
	{
		const OptDef *def = &opt_table[i];

		if ((def->flags & OPT_ACTION) || !(def->commands & opts->command))
			continue;
		if (def->type == OPT_KAFKA)
		{
			for (int k = 0; k < opts->kafka.count; k++)
				fprintf(out, "kafka.%s = %s\n", opts->kafka.items[k].name,
						kafka_secret(opts->kafka.items[k].name) ? "********"
						: opts->kafka.items[k].value);
			continue;
		}
		fprintf(out, "%s = ", def->name);
		print_value(out, def, opts);
		fputc('\n', out);
	}
}

/*
 * options_free: release the strings and lists of opts.
 */
void
options_free(RelayOptions *opts)
{
	for (size_t i = 0; i < lengthof(opt_table); i++)
	{
		const OptDef *def = &opt_table[i];

		if (def->type == OPT_STRING || def->type == OPT_CONNINFO)
			free(*(char **) ((char *) opts + def->offset));
	}
	for (int k = 0; k < opts->kafka.count; k++)
	{
		free(opts->kafka.items[k].name);
		free(opts->kafka.items[k].value);
	}
	free(opts->kafka.items);
	memset(opts, 0, sizeof(*opts));
}
