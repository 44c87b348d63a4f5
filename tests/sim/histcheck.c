/*-------------------------------------------------------------------------
 *
 * histcheck.c
 *	  The simulator's linearizability checker (lincheck.c) as a tool that
 *	  reads a history file: for the chaos tests among real nodes, whose
 *	  clients write down what they called and what came back.
 *
 * A history is one operation per line, fields separated by blanks, '#'
 * starting a comment:
 *
 *	 KEY put VALUE CALL RET
 *	 KEY get VALUE CALL RET
 *	 KEY del CALL RET
 *	 KEY cas EXPECTED VALUE ANSWER CALL RET
 *
 * VALUE and EXPECTED are non-zero integers, or "nil" for absent; ANSWER is
 * "true", "false" or "?"; CALL and RET are times on one clock of all
 * clients (integers, e.g. microseconds), RET "?" when the outcome is
 * unknown (the call timed out: it may have taken effect at any time after
 * its call, or never).  A get that timed out constrains nothing; leave it
 * out.  So does an operation that certainly failed (refused before it was
 * logged).  Keys are independent registers, checked one by one.
 *
 * Exit status: 0 when every key's history is linearizable, 1 when one is
 * not (each such key is named), 2 for a malformed history or usage.
 * --self-test runs the checker on the hand-made histories of lincheck.c
 * first and fails when it answers one wrongly.
 *
 *-------------------------------------------------------------------------
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

#define HIST_MAX_FIELDS	8
#define HIST_MAX_KEY	256

typedef struct HistOp
{
	char		key[HIST_MAX_KEY];
	LinOp		op;
} HistOp;

typedef struct History
{
	HistOp	   *ops;
	int			n;
	int			cap;
} History;

/*
 * parse_value: a non-zero integer, or "nil" (0, absent).
 */
static bool
parse_value(const char *s, int64_t *v)
{
	char	   *end;

	if (strcmp(s, "nil") == 0)
	{
		*v = 0;
		return true;
	}
	errno = 0;
	*v = strtoll(s, &end, 10);
	return errno == 0 && *end == '\0' && end != s && *v != 0;
}

/*
 * parse_time: an unsigned integer, or "?" (LIN_INF) when unknown_ok.
 */
static bool
parse_time(const char *s, bool unknown_ok, uint64_t *t)
{
	char	   *end;

	if (unknown_ok && strcmp(s, "?") == 0)
	{
		*t = LIN_INF;
		return true;
	}
	errno = 0;
	*t = strtoull(s, &end, 10);
	return errno == 0 && *end == '\0' && end != s && s[0] != '-' && *t != LIN_INF;
}

/*
 * parse_op: the fields after the key of one line into op; false when they
 * are not one of the forms of the banner.
 */
static bool
parse_op(char **f, int nf, LinOp *op)
{
	memset(op, 0, sizeof(*op));
	if (strcmp(f[0], "put") == 0 && nf == 4)
		op->kind = LIN_PUT;
	else if (strcmp(f[0], "get") == 0 && nf == 4)
		op->kind = LIN_GET;
	else if (strcmp(f[0], "del") == 0 && nf == 3)
	{
		op->kind = LIN_PUT;		/* of 0: absent */
		return parse_time(f[1], false, &op->call) && parse_time(f[2], true, &op->ret);
	}
	else if (strcmp(f[0], "cas") == 0 && nf == 6)
	{
		op->kind = LIN_CAS;
		op->swapped = strcmp(f[3], "true") == 0;
		return parse_value(f[1], &op->expected) && parse_value(f[2], &op->value) &&
			(op->swapped || strcmp(f[3], "false") == 0 || strcmp(f[3], "?") == 0) &&
			parse_time(f[4], false, &op->call) && parse_time(f[5], true, &op->ret) &&
			(strcmp(f[3], "?") == 0) == (op->ret == LIN_INF);
	}
	else
		return false;
	return parse_value(f[1], &op->value) && parse_time(f[2], false, &op->call) &&
		parse_time(f[3], op->kind == LIN_PUT, &op->ret);
}

/*
 * read_history: the operations of file into h; false (after a message
 * naming file and line) when it cannot be read or a line is malformed.
 */
static bool
read_history(const char *file, History *h)
{
	FILE	   *in = strcmp(file, "-") == 0 ? stdin : fopen(file, "r");
	char		line[1024];
	int			lineno = 0;

	if (in == NULL)
	{
		fprintf(stderr, "histcheck: cannot open %s: %s\n", file, strerror(errno));
		return false;
	}
	while (fgets(line, sizeof(line), in) != NULL)
	{
		char	   *f[HIST_MAX_FIELDS + 1];
		int			nf = 0;
		char	   *save = NULL;

		lineno++;
		line[strcspn(line, "#\n")] = '\0';
		for (char *t = strtok_r(line, " \t\r", &save); t && nf <= HIST_MAX_FIELDS;
			 t = strtok_r(NULL, " \t\r", &save))
			f[nf++] = t;
		if (nf == 0)
			continue;
		if (h->n == h->cap)
		{
			h->cap = h->cap ? 2 * h->cap : 1024;
			h->ops = sim_xrealloc(h->ops, h->cap * sizeof(HistOp));
		}
		if (nf < 2 || strlen(f[0]) >= HIST_MAX_KEY || !parse_op(f + 1, nf - 1, &h->ops[h->n].op))
		{
			fprintf(stderr, "histcheck: %s:%d: not an operation (see the banner of tests/sim/histcheck.c)\n",
					file, lineno);
			if (in != stdin)
				fclose(in);
			return false;
		}
		strcpy(h->ops[h->n++].key, f[0]);
	}
	if (in != stdin)
		fclose(in);
	return true;
}

static int
by_key(const void *a, const void *b)
{
	return strcmp(((const HistOp *) a)->key, ((const HistOp *) b)->key);
}

/*
 * check_keys: every key's operations through lin_check_key; the number of
 * keys that are not linearizable (each named on stderr).
 */
static int
check_keys(History *h, int *keys)
{
	LinOp	   *ops = sim_xmalloc((h->n + 1) * sizeof(LinOp));
	int			bad = 0;

	*keys = 0;
	qsort(h->ops, h->n, sizeof(HistOp), by_key);
	for (int i = 0, j; i < h->n; i = j)
	{
		long		explored;
		int			m = 0;

		for (j = i; j < h->n && strcmp(h->ops[j].key, h->ops[i].key) == 0; j++)
			ops[m++] = h->ops[j].op;
		(*keys)++;
		if (!lin_check_key(ops, m, &explored))
		{
			fprintf(stderr, "histcheck: key %s: the %d operations have no linearization\n",
					h->ops[i].key, m);
			bad++;
		}
		else if (explored < 0)
			fprintf(stderr, "histcheck: key %s: search gave up after too many states (counted as linearizable)\n",
					h->ops[i].key);
	}
	free(ops);
	return bad;
}

int
main(int argc, char **argv)
{
	History		h = {0};
	int			first = 1,
				keys,
				bad;

	if (argc > 1 && strcmp(argv[1], "--self-test") == 0)
	{
		if (lin_self_test() != 0)
			return 1;
		first = 2;
	}
	if (argc <= first)
	{
		fprintf(stderr, "usage: histcheck [--self-test] HISTORY... (- for standard input)\n");
		return 2;
	}
	for (int i = first; i < argc; i++)
		if (!read_history(argv[i], &h))
			return 2;
	bad = check_keys(&h, &keys);
	printf("histcheck: %d operations on %d keys: %s\n", h.n, keys,
		   bad ? "NOT linearizable" : "linearizable");
	free(h.ops);
	return bad ? 1 : 0;
}
