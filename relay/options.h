/*-------------------------------------------------------------------------
 *
 * options.h
 *	  The effective configuration of distsys-relay, and how it is read.
 *
 * Every setting is one row of the option table in options.c; command-line
 * flags, environment variables and the config file are three spellings of
 * the same rows.
 *
 *-------------------------------------------------------------------------
 */
#ifndef RELAY_OPTIONS_H
#define RELAY_OPTIONS_H

#include <stdbool.h>
#include <stdio.h>

/* Exit codes of distsys-relay. */
#define RELAY_EXIT_OK		0
#define RELAY_EXIT_FAILURE	1	/* a run-time failure: database, broker */
#define RELAY_EXIT_USAGE	2	/* bad flag, value, variable or config file */

/*
 * The subcommands, as bits: an option-table row names the commands it
 * belongs to as a mask of these.
 */
typedef enum RelayCommand
{
	RELAY_CMD_PUBLISH = 1 << 0,	/* relay the outbox table to Kafka */
	RELAY_CMD_CONSUME = 1 << 1	/* apply Kafka messages through the inbox */
} RelayCommand;

#define RELAY_CMD_ALL	(RELAY_CMD_PUBLISH | RELAY_CMD_CONSUME)

/* One librdkafka property given with -X, DISTSYS_KAFKA or kafka.NAME. */
typedef struct KafkaProperty
{
	char	   *name;
	char	   *value;
	int			source;			/* where it was set; used by options.c only */
} KafkaProperty;

typedef struct KafkaPropertyList
{
	KafkaProperty *items;
	int			count;
	int			capacity;
} KafkaPropertyList;

typedef struct RelayOptions
{
	RelayCommand command;		/* subcommand; publish when none is given */
	char	   *db;				/* libpq conninfo, or NULL */
	char	   *brokers;		/* Kafka bootstrap servers, or NULL */
	char	   *config;			/* config file read, or NULL */
	KafkaPropertyList kafka;	/* librdkafka properties, later sources win */
	int			batch_size;		/* outbox rows per transaction */
	int			retry_backoff_ms;	/* first delay after a failed attempt */
	int			retry_backoff_max_ms;	/* cap of the doubling delay */
	int			dead_letter_after;	/* attempts before a row is dead-lettered */
	int			lanes;			/* hash lanes the outbox is split into */
	int			standbys;		/* standbys that must have a commit first */
	char	   *topics;			/* consume: comma-separated topics */
	char	   *group;			/* consume: consumer group, the inbox consumer */
	char	   *handler;		/* consume: schema.function applying a message */
	char	   *metrics_addr;	/* HOST:PORT of the metrics endpoint, or NULL */
	int			log_format;		/* a LogFormat */
	int			log_level;		/* a LogLevel */
	bool		print_config;	/* print the configuration and exit */
	bool		show_help;		/* print usage and exit */
	bool		show_version;	/* print the version and exit */
} RelayOptions;

extern bool options_parse(RelayOptions *opts, int argc, char **argv);
extern bool options_require(const RelayOptions *opts, const char *const *names);
extern void options_print_help(FILE *out, const RelayOptions *opts);
extern void options_print_config(FILE *out, const RelayOptions *opts);
extern const char *options_command_name(RelayCommand command);
extern void options_free(RelayOptions *opts);

#endif							/* RELAY_OPTIONS_H */
