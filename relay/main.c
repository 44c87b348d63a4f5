/*-------------------------------------------------------------------------
 *
 * main.c
 *	  Entry point of distsys-relay: read the options, answer --help,
 *	  --version and --print-config, set up logging and run the command.
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>

#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>

#include "consume.h"
#include "log.h"
#include "options.h"
#include "relay.h"

#define RELAY_VERSION "1.0.0"

/*
 * print_version: the version line, with the libraries linked at run time.
 */
static void
print_version(void)
{
	printf("distsys-relay %s (librdkafka %s, libpq %d)\n",
		   RELAY_VERSION, rd_kafka_version_str(), PQlibVersion());
}

/*
 * run_command: answer an action flag, or set up logging and run the
 * subcommand.  Returns the exit code.
 */
static int
run_command(const RelayOptions *opts)
{
	if (opts->show_help)
		options_print_help(stdout, opts);
	else if (opts->show_version)
		print_version();
	else if (opts->print_config)
		options_print_config(stdout, opts);
	else
	{
		log_setup("distsys-relay", (LogFormat) opts->log_format,
				  (LogLevel) opts->log_level);
		return opts->command == RELAY_CMD_CONSUME ? consume_run(opts)
			: relay_run(opts);
	}
	return RELAY_EXIT_OK;
}

int
main(int argc, char **argv)
{
	RelayOptions opts;
	int			rc;

	if (!options_parse(&opts, argc, argv))
		rc = RELAY_EXIT_USAGE;	/* freed too: a leak check at exit sees only losses */
	else
		rc = run_command(&opts);
	options_free(&opts);
	return rc;
}
