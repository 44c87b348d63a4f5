/*-------------------------------------------------------------------------
 *
 * kafka_mock.c
 *	  distsys-kafka-mock: a Kafka test broker for the tests and the demo.
 *
 * It runs librdkafka's mock cluster (rdkafka_mock.h), a real Kafka-protocol
 * broker set listening on 127.0.0.1 only, so kcat and distsys-relay can use
 * it in place of a Kafka cluster.  On start it prints the bootstrap list as
 * the first line on stdout (and writes it to --bootstrap-file); then it
 * applies control commands (kafka_mock_cmd.c) read from the control channel
 * (kafka_mock_channel.c) until SIGTERM or SIGINT.
 *
 * Threads: the main thread parses options, runs the poll(2) loop over the
 * signal self-pipe and the control channel, and alone writes stdout.  The
 * mock cluster has its own thread inside librdkafka, which owns all broker
 * state; the main thread changes it only through rd_kafka_mock_*() calls,
 * which are thread-safe.  librdkafka's threads may call mock_rdkafka_log(),
 * which is safe because log_event() writes each line with one write(2).  A
 * signal handler, on whichever thread takes the signal, only writes one
 * byte to the self-pipe.
 *
 *-------------------------------------------------------------------------
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kafka_mock.h"
#include "log.h"
#include "util.h"

#ifndef DISTSYS_VERSION
#define DISTSYS_VERSION "1.0"
#endif

#define MOCK_DEFAULT_PARTITIONS 4	/* what the mock gives auto-created topics */
#define MOCK_MAX_TOPICS			64
#define MOCK_LOOPBACK_PREFIX	"127.0.0.1:"

typedef struct MockTopic
{
	char	   *spec;			/* NAME[:PARTITIONS[:RF]], as given */
	char	   *name;
	long		partitions;
	long		replication;
} MockTopic;

typedef struct MockOptions
{
	int			brokers;
	const char *bootstrap_file;
	const char *control_path;
	MockTopic	topics[MOCK_MAX_TOPICS];
	int			ntopics;
	LogFormat	log_format;
} MockOptions;

static const struct option mock_long_options[] = {
	{"brokers", required_argument, NULL, 'b'},
	{"bootstrap-file", required_argument, NULL, 'f'},
	{"control", required_argument, NULL, 'c'},
	{"topic", required_argument, NULL, 't'},
	{"log-format", required_argument, NULL, 'l'},
	{"help", no_argument, NULL, 'h'},
	{"version", no_argument, NULL, 'V'},
	{NULL, 0, NULL, 0}
};

static const char mock_usage_text[] =
"distsys-kafka-mock runs a Kafka-protocol test cluster on 127.0.0.1.\n"
"\n"
"Usage: distsys-kafka-mock [OPTION]...\n"
"\n"
"Options:\n"
"  --brokers N                 number of brokers, 1..9 (default 1)\n"
"  --bootstrap-file PATH       also write the bootstrap list to PATH\n"
"                              (atomically, once listening; removed at exit)\n"
"  --control PATH              read control commands from the FIFO PATH\n"
"                              (created if missing); \"-\" reads stdin\n"
"  --topic NAME[:PARTS[:RF]]   create a topic at start (repeatable;\n"
"                              default 4 partitions, like auto-created ones)\n"
"  --log-format text|json      format of the log lines on stderr\n"
"  -h, --help                  show this help and exit\n"
"  -V, --version               show the version and exit\n"
"\n"
"The first line on stdout is the bootstrap list.  Control commands, one a\n"
"line, each confirmed by \"ok COMMAND\" on stdout (or \"error: ...\"):\n"
"  produce-errors N ERR              next N Produce requests fail with ERR\n"
"                                    (replaces pending ones; N = 0 clears)\n"
"  request-errors APIKEY N ERR       the same for any request type\n"
"  broker-down ID|all                disconnect the broker, refuse connections\n"
"  broker-up ID|all                  accept connections again\n"
"  broker-rtt ID|all MS              delay each response by MS\n"
"  create-topic NAME PARTS [RF]      create a topic\n"
"  partition-leader TOPIC PART ID    move a partition's leader (-1: none)\n"
"ERR is a librdkafka error name, e.g. NOT_ENOUGH_REPLICAS.\n"
"Stops on SIGTERM or SIGINT and exits 0.\n";

static int	signal_pipe[2] = {-1, -1};

/*
 * mock_usage_error: report a bad command line in one line and exit 2.
 */
static void
__attribute__((format(printf, 1, 2), noreturn))
mock_usage_error(const char *fmt,...)
{
	va_list		ap;

	fprintf(stderr, "%s: ", MOCK_PROGNAME);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "; see --help\n");
	exit(2);
}

/*
 * mock_startup_failed: report a start-up failure in the log and exit 1.
 */
static void
__attribute__((format(printf, 1, 2), noreturn))
mock_startup_failed(const char *fmt,...)
{
	char		msg[MOCK_ERRMSG_MAX * 2];
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_error("%s", msg);
	exit(1);
}

/*
 * mock_parse_topic: split t->spec, "NAME[:PARTITIONS[:RF]]", into the other
 * fields of t, and check them against a cluster of the given size.  Exits 2
 * if they are wrong, before any broker starts.
 */
static void
mock_parse_topic(MockTopic *t, int brokers)
{
	char		errbuf[MOCK_ERRMSG_MAX];
	char	   *parts;
	char	   *rf = NULL;

	t->name = strdup(t->spec);
	if (t->name == NULL)
		mock_usage_error("out of memory");
	t->partitions = MOCK_DEFAULT_PARTITIONS;
	t->replication = brokers < 3 ? brokers : 3;
	parts = strchr(t->name, ':');
	if (parts != NULL)
	{
		*parts++ = '\0';
		rf = strchr(parts, ':');
		if (rf != NULL)
			*rf++ = '\0';
		if (!mock_parse_long(parts, 1, INT_MAX, &t->partitions))
			mock_usage_error("--topic %s: partition count \"%s\" is not a positive number",
							 t->spec, parts);
	}
	if (rf != NULL && !mock_parse_long(rf, 1, INT_MAX, &t->replication))
		mock_usage_error("--topic %s: replication factor \"%s\" is not a positive number",
						 t->spec, rf);
	if (!mock_check_topic(t->name, t->partitions, t->replication, brokers,
						  errbuf, sizeof(errbuf)))
		mock_usage_error("--topic %s: %s", t->spec, errbuf);
}

/*
 * mock_parse_option: store one option from getopt_long() in opts, or exit
 * 0 (help, version) or 2 (bad value).
 */
static void
mock_parse_option(int c, MockOptions *opts)
{
	long		v;

	switch (c)
	{
		case 'b':
			if (!mock_parse_long(optarg, 1, MOCK_MAX_BROKERS, &v))
				mock_usage_error("--brokers \"%s\" is not a number 1..%d",
								 optarg, MOCK_MAX_BROKERS);
			opts->brokers = (int) v;
			break;
		case 'f':
			if (*optarg == '\0')
				mock_usage_error("--bootstrap-file needs a path");
			opts->bootstrap_file = optarg;
			break;
		case 'c':
			if (*optarg == '\0')
				mock_usage_error("--control needs a path, or \"-\" for stdin");
			opts->control_path = optarg;
			break;
		case 't':
			if (opts->ntopics == MOCK_MAX_TOPICS)
				mock_usage_error("more than %d --topic options", MOCK_MAX_TOPICS);
			opts->topics[opts->ntopics++].spec = optarg;
			break;
		case 'l':
			if (!log_parse_format(optarg, &opts->log_format))
				mock_usage_error("--log-format \"%s\" is not text or json", optarg);
			break;
		case 'h':
			fputs(mock_usage_text, stdout);
			exit(0);
		case 'V':
			printf("%s (distsys) %s, librdkafka %s\n",
				   MOCK_PROGNAME, DISTSYS_VERSION, rd_kafka_version_str());
			exit(0);
	}
}

/*
 * mock_parse_options: fill opts from the command line, exiting 2 with one
 * line on stderr if it is wrong.
 */
static void
mock_parse_options(int argc, char **argv, MockOptions *opts)
{
	int			c;

	memset(opts, 0, sizeof(*opts));
	opts->brokers = 1;
	opts->log_format = LOG_FORMAT_TEXT;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":hV", mock_long_options, NULL)) != -1)
	{
		if (c == '?' && optopt != 0)
			mock_usage_error("unknown option \"-%c\"", optopt);
		else if (c == '?')
			mock_usage_error("unknown option \"%s\"", argv[optind - 1]);
		else if (c == ':')
			mock_usage_error("option \"%s\" needs a value", argv[optind - 1]);
		mock_parse_option(c, opts);
	}
	if (optind < argc)
		mock_usage_error("unexpected argument \"%s\"", argv[optind]);
	for (int i = 0; i < opts->ntopics; i++)
		mock_parse_topic(&opts->topics[i], opts->brokers);
}

/*
 * mock_signal_handler: wake the main loop.  Only async-signal-safe calls.
 */
static void
mock_signal_handler(int signo)
{
	int			save_errno = errno;
	unsigned char b = (unsigned char) signo;

	if (write(signal_pipe[1], &b, 1) < 0)
	{
		/* the pipe is full, so the main loop is waking up already */
	}
	errno = save_errno;
}

/*
 * mock_install_signals: route SIGTERM and SIGINT to the self-pipe, and
 * ignore SIGPIPE so a reader closing stdout cannot kill the broker.
 */
static void
mock_install_signals(void)
{
	struct sigaction sa;

	if (pipe(signal_pipe) != 0)
		mock_startup_failed("cannot create signal pipe: %s", strerror(errno));
	for (int i = 0; i < 2; i++)
	{
		fcntl(signal_pipe[i], F_SETFL, O_NONBLOCK);
		fcntl(signal_pipe[i], F_SETFD, FD_CLOEXEC);
	}

	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	sa.sa_handler = mock_signal_handler;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
}

/*
 * mock_rdkafka_log: librdkafka's log callback; may run on any of its
 * threads.  Maps syslog levels onto ours; notices (such as the warning
 * that this handle has no bootstrap.servers, which it never needs) count
 * as debug.
 */
static void
mock_rdkafka_log(const rd_kafka_t *rk, int level, const char *fac,
				 const char *buf)
{
	LogLevel	ours;

	if (level <= 3)
		ours = LOG_LEVEL_ERROR;
	else if (level == 4)
		ours = LOG_LEVEL_WARNING;
	else
		ours = LOG_LEVEL_DEBUG;
	log_event(ours, "librdkafka %s: %s", fac, buf);
}

/*
 * mock_bootstraps_loopback: whether every entry of the comma-separated
 * bootstrap list is on 127.0.0.1.  librdkafka binds INADDR_LOOPBACK today;
 * this keeps a later version from quietly exposing the test broker.
 */
static bool
mock_bootstraps_loopback(const char *bootstraps)
{
	const char *p = bootstraps;

	for (;;)
	{
		if (strncmp(p, MOCK_LOOPBACK_PREFIX, strlen(MOCK_LOOPBACK_PREFIX)) != 0)
			return false;
		p = strchr(p, ',');
		if (p == NULL)
			return true;
		p++;
	}
}

/*
 * mock_start_cluster: create the handle that owns the mock cluster, then the
 * cluster with its listening brokers.  Exits 1 on failure.
 */
static void
mock_start_cluster(int brokers, MockCluster *mc)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	char		errstr[512];

	rd_kafka_conf_set_log_cb(conf, mock_rdkafka_log);
	if (rd_kafka_conf_set(conf, "client.id", MOCK_PROGNAME,
						  errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK)
		mock_startup_failed("cannot configure librdkafka: %s", errstr);

	mc->broker_cnt = brokers;
	mc->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	if (mc->rk == NULL)
		mock_startup_failed("cannot create librdkafka handle: %s", errstr);

	mc->mcluster = rd_kafka_mock_cluster_new(mc->rk, brokers);
	if (mc->mcluster == NULL)
		mock_startup_failed("cannot start a mock cluster of %d broker(s); see the librdkafka lines above",
							brokers);
	if (!mock_bootstraps_loopback(rd_kafka_mock_cluster_bootstraps(mc->mcluster)))
		mock_startup_failed("mock cluster listens on %s, not on 127.0.0.1 only; refusing to run",
							rd_kafka_mock_cluster_bootstraps(mc->mcluster));
}

/*
 * mock_create_topics: create the --topic topics, checked already.  Only a
 * topic named twice can fail here; that is a bad command line: exit 2.
 */
static void
mock_create_topics(const MockOptions *opts, MockCluster *mc)
{
	char		errbuf[MOCK_ERRMSG_MAX];

	for (int i = 0; i < opts->ntopics; i++)
	{
		const MockTopic *t = &opts->topics[i];

		if (!mock_create_topic(mc, t->name, t->partitions, t->replication,
							   errbuf, sizeof(errbuf)))
			mock_usage_error("--topic %s: %s", t->spec, errbuf);
		log_info("created topic %s with %ld partition(s)",
				 t->name, t->partitions);
	}
}

/*
 * mock_on_control_line: control channel callback; runs one command.
 */
static void
mock_on_control_line(const char *line, void *arg)
{
	mock_command_run((MockCluster *) arg, line);
}

/*
 * mock_run: wait for control lines and signals until SIGTERM or SIGINT.
 * Returns the exit status: 0 when signalled, 1 if the control channel broke
 * (a test driving it could otherwise wait forever).
 */
static int
mock_run(MockCluster *mc, ControlChannel *ch)
{
	struct pollfd pfd[2];
	unsigned char signo;

	for (;;)
	{
		int			nfds = 1;

		pfd[0].fd = signal_pipe[0];
		pfd[0].events = POLLIN;
		if (ch != NULL && ch->fd >= 0)
		{
			pfd[1].fd = ch->fd;
			pfd[1].events = POLLIN;
			nfds = 2;
		}
		if (poll(pfd, nfds, -1) < 0)
		{
			if (errno == EINTR)
				continue;
			log_error("poll failed: %s", strerror(errno));
			return 1;
		}
		if (pfd[0].revents != 0 && read(signal_pipe[0], &signo, 1) == 1)
		{
			log_info("received %s; shutting down", strsignal(signo));
			return 0;
		}
		if (nfds == 2 && pfd[1].revents != 0 &&
			!control_read(ch, mock_on_control_line, mc))
			return 1;
	}
}

/*
 * main: start the cluster, announce it, serve control commands until
 * signalled, then tear everything down.
 *
 * The control FIFO is created before the bootstrap list is announced: a
 * script that waits for the list and then writes a command must find the
 * FIFO there, or its redirection would create a plain file instead.
 */
int
main(int argc, char **argv)
{
	MockOptions opts;
	MockCluster mc;
	ControlChannel ch;
	char		errbuf[MOCK_ERRMSG_MAX];
	const char *bootstraps;
	int			status;

	mock_parse_options(argc, argv, &opts);
	log_setup(MOCK_PROGNAME, opts.log_format, LOG_LEVEL_INFO);
	mock_install_signals();
	mock_start_cluster(opts.brokers, &mc);
	mock_create_topics(&opts, &mc);

	if (opts.control_path != NULL &&
		!control_open(&ch, opts.control_path, errbuf, sizeof(errbuf)))
		mock_startup_failed("%s", errbuf);

	bootstraps = rd_kafka_mock_cluster_bootstraps(mc.mcluster);
	if (opts.bootstrap_file != NULL)
	{
		StrBuf		text = {0};

		strbuf_printf(&text, "%s\n", bootstraps);
		if (!write_file_atomically(opts.bootstrap_file, text.data,
								   errbuf, sizeof(errbuf)))
			mock_startup_failed("%s", errbuf);
		strbuf_free(&text);
	}
	printf("%s\n", bootstraps);
	fflush(stdout);
	log_info("listening on %s with %d broker(s)", bootstraps, opts.brokers);

	status = mock_run(&mc, opts.control_path != NULL ? &ch : NULL);

	if (opts.control_path != NULL)
		control_close(&ch);
	if (opts.bootstrap_file != NULL)
		unlink(opts.bootstrap_file);
	rd_kafka_mock_cluster_destroy(mc.mcluster);
	rd_kafka_destroy(mc.rk);
	for (int i = 0; i < opts.ntopics; i++)
		free(opts.topics[i].name);
	log_info("stopped");
	return status;
}
