/*-------------------------------------------------------------------------
 *
 * ext_client.c
 *	  Baseline for the throughput comparison: the architecture users pick
 *	  instead of ledger_ingest, an external indexer process that applies
 *	  ledgers over a (loopback) libpq connection.
 *
 * usage: ext_client CONNINFO FILE HANDLER [--pipeline-mode]
 *						 [--per ledger | --per batch N]
 *
 * FILE: one event per line, sorted by (ledger, tx_index, event_index),
 *	 ledger tx_index event_index address topic0 topic1 topic2 data
 * tab-separated, the last five in hex.  HANDLER: SQL taking these columns
 * as text parameters $1..$8, prepared once, executed once per event.  Each
 * transaction covers one ledger (default) or N whole ledgers:
 *	 BEGIN; HANDLER per event;
 *	 UPDATE ext_cursor SET ledger = $1 WHERE id = 1 AND ledger = $2; COMMIT
 * and fails when this compare-and-swap updates no row.  Ledgers at or below
 * the starting cursor are skipped.  Prints one line, timed from the first
 * BEGIN to the last COMMIT: events=N ledgers=M seconds=S events_per_s=R
 *
 * --pipeline-mode sends each transaction with one pipeline sync, then drains
 * and checks every result.  COMMIT must wait for the CAS result (pipelined,
 * it would commit after a failed CAS too), so it is sent at the head of the
 * next transaction's pipeline: still one round trip per transaction.
 *
 *-------------------------------------------------------------------------
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#define NFIELDS 8
#define CAS_SQL "UPDATE ext_cursor SET ledger = $1 WHERE id = 1 AND ledger = $2"

typedef struct Client
{
	PGconn	   *conn;
	bool		pipeline;
	long long	cursor;			/* cursor after the last transaction sent */
	bool		commit_pending; /* pipeline: last transaction awaits COMMIT */
	int			nsent;			/* pipeline: queries sent since the last sync */
	long		txn_line;		/* pipeline: input line of the first event */
	long long	events;
	long long	ledgers;
	long		lineno;			/* input line being applied, for messages */
} Client;

static void die(const char *fmt,...) __attribute__((noreturn, format(printf, 1, 2)));

static void
die(const char *fmt,...)
{
	va_list		ap;

	fprintf(stderr, "ext_client: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

/*
 * Dies unless res is a success; returns res (to be PQclear'ed).  line is the
 * input line of the event concerned, 0 if none.
 */
static PGresult *
check(PGresult *res, const Client *c, const char *what, long line)
{
	ExecStatusType st = PQresultStatus(res);

	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
		return res;
	if (st == PGRES_PIPELINE_ABORTED)
		die("%s skipped: pipeline aborted by an earlier error", what);
	if (line > 0)
		die("%s failed (input line %ld): %s", what, line, PQresultErrorMessage(res));
	die("%s failed: %s", what, res ? PQresultErrorMessage(res) : PQerrorMessage(c->conn));
}

/* Runs SQL (no parameters, or the prepared statement stmt) or queues it. */
static void
run(Client *c, const char *sql, const char *stmt, const char *const *vals,
	int nvals, const char *what)
{
	if (c->pipeline)
	{
		int			ok = stmt ? PQsendQueryPrepared(c->conn, stmt, nvals, vals, NULL, NULL, 0)
			: PQsendQueryParams(c->conn, sql, 0, NULL, NULL, NULL, NULL, 0);

		if (!ok)
			die("cannot send %s: %s", what, PQerrorMessage(c->conn));
		c->nsent++;
		return;
	}
	PQclear(check(stmt ? PQexecPrepared(c->conn, stmt, nvals, vals, NULL, NULL, 0)
				  : PQexec(c->conn, sql), c, what, stmt ? c->lineno : 0));
}

/*
 * Pipeline: sync, then read the nsent results in order: a COMMIT first if
 * commit_first, then, if cas is not NULL (it describes the CAS), BEGIN, the
 * events and the CAS.  libpq reads incoming results whenever the socket is
 * full while sending, so large pipelines cannot deadlock in blocking mode.
 */
static void
sync_and_drain(Client *c, bool commit_first, const char *cas)
{
	PGresult   *res;

	if (!PQpipelineSync(c->conn))
		die("cannot sync pipeline: %s", PQerrorMessage(c->conn));
	for (int i = 0, ev = -1 - commit_first; i < c->nsent; i++, ev++)
	{
		bool		is_cas = cas && i == c->nsent - 1;
		const char *what = ev < -1 ? "COMMIT" : ev == -1 ? "BEGIN"
			: is_cas ? "cursor update" : "HANDLER";

		res = check(PQgetResult(c->conn), c, what,
					strcmp(what, "HANDLER") == 0 ? c->txn_line + ev : 0);
		if (ev < -1 && strcmp(PQcmdStatus(res), "COMMIT") != 0)
			die("COMMIT returned %s", PQcmdStatus(res));
		if (is_cas && strcmp(PQcmdTuples(res), "1") != 0)
			die("cursor moved: compare-and-swap %s updated no row", cas);
		PQclear(res);
		if ((res = PQgetResult(c->conn)) != NULL)
			die("unexpected extra result: %s", PQresStatus(PQresultStatus(res)));
	}
	res = PQgetResult(c->conn);
	if (PQresultStatus(res) != PGRES_PIPELINE_SYNC)
		die("expected pipeline sync, got %s", PQresStatus(PQresultStatus(res)));
	PQclear(res);
	c->nsent = 0;
}

static void
begin_txn(Client *c)
{
	if (c->commit_pending)		/* the previous transaction passed its CAS */
		run(c, "COMMIT", NULL, NULL, 0, "COMMIT");
	run(c, "BEGIN", NULL, NULL, 0, "BEGIN");
	c->txn_line = c->lineno;
}

/* CAS the cursor from c->cursor to last_ledger, then commit. */
static void
end_txn(Client *c, long long last_ledger)
{
	char		newv[24],
				oldv[24],
				desc[64];
	const char *vals[2] = {newv, oldv};
	PGresult   *res;

	snprintf(newv, sizeof(newv), "%lld", last_ledger);
	snprintf(oldv, sizeof(oldv), "%lld", c->cursor);
	snprintf(desc, sizeof(desc), "%s -> %s", oldv, newv);
	c->cursor = last_ledger;
	if (c->pipeline)
	{
		bool		commit_first = c->commit_pending;

		run(c, NULL, "cas", vals, 2, "cursor update");
		sync_and_drain(c, commit_first, desc);
		c->commit_pending = true;	/* COMMIT goes with the next pipeline */
		return;
	}
	res = check(PQexecPrepared(c->conn, "cas", 2, vals, NULL, NULL, 0), c,
				"cursor update", 0);
	if (strcmp(PQcmdTuples(res), "1") != 0)
		die("cursor moved: compare-and-swap %s updated no row", desc);
	PQclear(res);
	res = check(PQexec(c->conn, "COMMIT"), c, "COMMIT", 0);
	if (strcmp(PQcmdStatus(res), "COMMIT") != 0)
		die("COMMIT returned %s", PQcmdStatus(res));
	PQclear(res);
}

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

/* Splits line in place into NFIELDS tab-separated fields. */
static bool
split(char *line, char **f)
{
	int			n = 0;

	line[strcspn(line, "\r\n")] = '\0';
	for (char *p = line;; p++)
	{
		f[n++] = p;
		if ((p = strchr(p, '\t')) == NULL)
			break;
		*p = '\0';
		if (n == NFIELDS)
			return false;
	}
	return n == NFIELDS;
}

int
main(int argc, char **argv)
{
	Client		c = {0};
	long		per = 1;		/* ledgers per transaction */
	FILE	   *in;
	char	   *line = NULL;
	size_t		cap = 0;
	char	   *f[NFIELDS];
	char	   *end;
	long long	start,
				cur = 0,		/* ledger being applied */
				prev[3] = {-1, -1, -1};
	long		in_txn = 0;		/* complete ledgers in the open transaction */
	bool		txn_open = false;
	bool		usage = argc < 4;
	double		t0 = 0,
				secs;
	PGresult   *res;

	for (int i = 4; i < argc; i++)
	{
		if (strcmp(argv[i], "--pipeline-mode") == 0)
			c.pipeline = true;
		else if (strcmp(argv[i], "--per") == 0 && i + 1 < argc)
		{
			if (strcmp(argv[++i], "ledger") == 0)
				per = 1;
			else if (strcmp(argv[i], "batch") != 0 || ++i == argc ||
					 (per = strtol(argv[i], &end, 10)) < 1 || *end != '\0')
				usage = true;
		}
		else
			usage = true;
	}
	if (usage)
	{
		fprintf(stderr, "usage: ext_client CONNINFO FILE HANDLER [--pipeline-mode] "
				"[--per ledger | --per batch N]\n");
		return 2;
	}
	if ((in = fopen(argv[2], "r")) == NULL)
		die("cannot open %s: %s", argv[2], strerror(errno));

	c.conn = PQconnectdb(argv[1]);
	if (PQstatus(c.conn) != CONNECTION_OK)
		die("cannot connect: %s", PQerrorMessage(c.conn));
	res = check(PQexec(c.conn, "SELECT ledger FROM ext_cursor WHERE id = 1"), &c,
				"reading ext_cursor", 0);
	if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0))
		die("ext_cursor has no row with id = 1 and a non-null ledger");
	start = c.cursor = atoll(PQgetvalue(res, 0, 0));
	PQclear(res);
	PQclear(check(PQprepare(c.conn, "handler", argv[3], NFIELDS, NULL), &c,
				  "preparing HANDLER", 0));
	PQclear(check(PQprepare(c.conn, "cas", CAS_SQL, 2, NULL), &c,
				  "preparing the cursor update", 0));
	if (c.pipeline && !PQenterPipelineMode(c.conn))
		die("cannot enter pipeline mode: %s", PQerrorMessage(c.conn));

	while (getline(&line, &cap, in) != -1)
	{
		long long	key[3];

		c.lineno++;
		if (!split(line, f))
			die("%s:%ld: expected %d tab-separated fields", argv[2], c.lineno, NFIELDS);
		for (int k = 0; k < 3; k++)
		{
			key[k] = strtoll(f[k], &end, 10);
			if (end == f[k] || *end != '\0')
				die("%s:%ld: field %d is not an integer", argv[2], c.lineno, k + 1);
		}
		if (key[0] < prev[0] || (key[0] == prev[0] && (key[1] < prev[1] ||
													   (key[1] == prev[1] && key[2] <= prev[2]))))
			die("%s:%ld: not sorted by (ledger, tx_index, event_index)", argv[2], c.lineno);
		memcpy(prev, key, sizeof(prev));
		if (key[0] <= start)
			continue;			/* already applied */
		if (!txn_open || key[0] != cur)
		{
			/* a new ledger: close the previous one, maybe its transaction */
			if (txn_open && ++in_txn == per)
			{
				end_txn(&c, cur);
				txn_open = false;
				in_txn = 0;
			}
			if (!txn_open)
			{
				if (c.ledgers == 0)
					t0 = now();	/* the first BEGIN */
				begin_txn(&c);
				txn_open = true;
			}
			cur = key[0];
			c.ledgers++;
		}
		run(&c, NULL, "handler", (const char *const *) f, NFIELDS, "HANDLER");
		c.events++;
	}
	if (ferror(in))
		die("cannot read %s", argv[2]);
	if (txn_open)
		end_txn(&c, cur);
	if (c.commit_pending)		/* pipeline: the last transaction's COMMIT */
	{
		run(&c, "COMMIT", NULL, NULL, 0, "COMMIT");
		sync_and_drain(&c, true, NULL);
	}
	secs = c.events > 0 ? now() - t0 : 0;

	printf("events=%lld ledgers=%lld seconds=%.3f events_per_s=%.0f\n",
		   c.events, c.ledgers, secs, secs > 0 ? (double) c.events / secs : 0.0);
	free(line);
	fclose(in);
	PQfinish(c.conn);
	return 0;
}
