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
 * FILE has one event per line, tab-separated and sorted by
 * (ledger, tx_index, event_index):
 *	 ledger tx_index event_index address_hex topic0_hex topic1_hex topic2_hex data_hex
 * HANDLER is SQL taking these eight columns as text parameters $1..$8; it
 * is prepared once and executed once per event.  Each transaction covers one
 * ledger (--per ledger, the default) or N whole ledgers (--per batch N):
 *	 BEGIN; HANDLER per event;
 *	 UPDATE ext_cursor SET ledger = $1 WHERE id = 1 AND ledger = $2; COMMIT
 * and fails when the compare-and-swap updates no row.  Ledgers at or below
 * the cursor read at start are skipped.  Prints one line:
 *	 events=N ledgers=M seconds=S events_per_s=R
 * timed from the first BEGIN to the last COMMIT (CLOCK_MONOTONIC).
 *
 * --pipeline-mode sends a whole transaction with libpq's pipeline mode and
 * one sync, then drains and checks every result.  The CAS result must be
 * known before COMMIT is sent (a pipelined COMMIT would commit even when the
 * CAS matched no row), so a transaction's COMMIT is sent at the head of the
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
	long long	events;
	long long	ledgers;
	long		lineno;			/* input line being applied, for messages */
} Client;

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

/* Dies unless res is a success; returns res (to be PQclear'ed). */
static PGresult *
check(PGresult *res, const Client *c, const char *what)
{
	ExecStatusType st = PQresultStatus(res);

	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
		return res;
	if (st == PGRES_PIPELINE_ABORTED)
		die("%s skipped: pipeline aborted by an earlier error", what);
	if (c->pipeline)			/* results are read at the end of a transaction */
		die("%s failed (transaction ending at ledger %lld): %s", what, c->cursor,
			res ? PQresultErrorMessage(res) : PQerrorMessage(c->conn));
	die("%s failed (input line %ld): %s", what, c->lineno,
		res ? PQresultErrorMessage(res) : PQerrorMessage(c->conn));
	return NULL;
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
				  : PQexec(c->conn, sql), c, what));
}

/*
 * Pipeline: sync, then read the nsent results in order.  The first is a
 * COMMIT if commit_first, the last the CAS if cas_last.  libpq reads
 * incoming results whenever the socket is full while sending, so large
 * pipelines cannot deadlock in blocking mode.
 */
static void
sync_and_drain(Client *c, bool commit_first, bool cas_last)
{
	PGresult   *res;

	if (!PQpipelineSync(c->conn))
		die("cannot sync pipeline: %s", PQerrorMessage(c->conn));
	for (int i = 0; i < c->nsent; i++)
	{
		const char *what = (i == 0 && commit_first) ? "COMMIT"
			: (i == c->nsent - 1 && cas_last) ? "cursor update" : "statement";

		res = check(PQgetResult(c->conn), c, what);
		if (i == 0 && commit_first && strcmp(PQcmdStatus(res), "COMMIT") != 0)
			die("COMMIT returned %s", PQcmdStatus(res));
		if (i == c->nsent - 1 && cas_last && strcmp(PQcmdTuples(res), "1") != 0)
			die("cursor moved: compare-and-swap to ledger %lld updated no row",
				c->cursor);
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
}

/* CAS the cursor from c->cursor to last_ledger, then commit. */
static void
end_txn(Client *c, long long last_ledger)
{
	char		newv[24],
				oldv[24];
	const char *vals[2] = {newv, oldv};
	PGresult   *res;

	snprintf(newv, sizeof(newv), "%lld", last_ledger);
	snprintf(oldv, sizeof(oldv), "%lld", c->cursor);
	c->cursor = last_ledger;
	if (c->pipeline)
	{
		bool		commit_first = c->commit_pending;

		run(c, NULL, "cas", vals, 2, "cursor update");
		sync_and_drain(c, commit_first, true);
		c->commit_pending = true;	/* COMMIT goes with the next pipeline */
		return;
	}
	res = check(PQexecPrepared(c->conn, "cas", 2, vals, NULL, NULL, 0), c,
				"cursor update");
	if (strcmp(PQcmdTuples(res), "1") != 0)
		die("cursor moved: compare-and-swap %s -> %s updated no row", oldv, newv);
	PQclear(res);
	res = check(PQexec(c->conn, "COMMIT"), c, "COMMIT");
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
		else if (strcmp(argv[i], "--per") == 0 && i + 1 < argc && strcmp(argv[i + 1], "ledger") == 0)
			per = 1, i++;
		else if (strcmp(argv[i], "--per") == 0 && i + 2 < argc && strcmp(argv[i + 1], "batch") == 0
				 && (per = atol(argv[i + 2])) > 0)
			i += 2;
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
				"reading ext_cursor");
	if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0))
		die("ext_cursor has no row with id = 1 and a non-null ledger");
	start = c.cursor = atoll(PQgetvalue(res, 0, 0));
	PQclear(res);
	PQclear(check(PQprepare(c.conn, "handler", argv[3], NFIELDS, NULL), &c, "preparing HANDLER"));
	PQclear(check(PQprepare(c.conn, "cas", CAS_SQL, 2, NULL), &c, "preparing the cursor update"));
	if (c.pipeline && !PQenterPipelineMode(c.conn))
		die("cannot enter pipeline mode: %s", PQerrorMessage(c.conn));

	while (getline(&line, &cap, in) != -1)
	{
		long long	key[3];

		c.lineno++;
		if (!split(line, f))
			die("%s:%ld: expected %d tab-separated fields", argv[2], c.lineno, NFIELDS);
		for (int k = 0; k < 3; k++)
			key[k] = atoll(f[k]);
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
		sync_and_drain(&c, true, false);
	}
	secs = c.events > 0 ? now() - t0 : 0;

	printf("events=%lld ledgers=%lld seconds=%.3f events_per_s=%.0f\n",
		   c.events, c.ledgers, secs, secs > 0 ? (double) c.events / secs : 0.0);
	free(line);
	fclose(in);
	PQfinish(c.conn);
	return 0;
}
