/*-------------------------------------------------------------------------
 *
 * abi_bench.c
 *	  Decode rate of the ABI core (src/abi_core.c) on real event logs.
 *
 * usage: abi_bench SIGNATURE LOGFILE [DECODES [RUNS]]
 *
 * LOGFILE has one log per line: its topics and its data as hex words
 * separated by spaces ("<topic0> <topic1> ... <data>", data may be "-" when
 * empty; see run.sh).  Logs whose topic count does not fit SIGNATURE are
 * skipped.  Compiles SIGNATURE once, then decodes the logs round-robin
 * DECODES times (default 2,000,000) per run, RUNS times (default 5), on
 * one thread, and prints each run's rate and the median in decodes/s.
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "abi_core.h"

typedef struct BenchLog
{
	int			ntopics;
	unsigned char topics[4][32];
	unsigned char *data;
	size_t		len;
} BenchLog;

static int
unhex(const char *s, size_t n, unsigned char *out)
{
	size_t		i;

	for (i = 0; i < n / 2; i++)
	{
		unsigned int v;

		if (sscanf(s + 2 * i, "%2x", &v) != 1)
			return -1;
		out[i] = (unsigned char) v;
	}
	return 0;
}

static int
cmp_double(const void *a, const void *b)
{
	double		x = *(const double *) a;
	double		y = *(const double *) b;

	return (x > y) - (x < y);
}

int
main(int argc, char **argv)
{
	LiAbiError	err;
	LiAbiBuf	out = {NULL, 0, 0, 0};
	LiAbiDesc  *d;
	FILE	   *f;
	static char line[1 << 16];
	BenchLog   *logs = NULL;
	size_t		nlogs = 0;
	long		decodes = argc > 3 ? atol(argv[3]) : 2000000;
	int			runs = argc > 4 ? atoi(argv[4]) : 5;
	double		rates[64];
	size_t		bytes = 0;
	int			r;

	if (argc < 3 || runs < 1 || runs > 64 || decodes < 1)
	{
		fprintf(stderr, "usage: abi_bench SIGNATURE LOGFILE [DECODES [RUNS]]\n");
		return 2;
	}
	d = li_abi_core_compile_event(argv[1], strlen(argv[1]), &err);
	if (d == NULL)
	{
		fprintf(stderr, "abi_bench: %s\n", err.message);
		return 1;
	}
	f = fopen(argv[2], "r");
	if (f == NULL)
	{
		perror(argv[2]);
		return 1;
	}
	while (fgets(line, sizeof(line), f) != NULL)
	{
		char	   *words[6];
		int			nw = 0;
		char	   *tok;
		BenchLog	l;
		int			i;
		int			bad = 0;

		for (tok = strtok(line, " \n"); tok != NULL && nw < 6; tok = strtok(NULL, " \n"))
			words[nw++] = tok;
		if (nw < 2 || nw - 1 != li_abi_core_ntopics(d))
			continue;
		memset(&l, 0, sizeof(l));
		l.ntopics = nw - 1;
		for (i = 0; i < l.ntopics; i++)
			if (strlen(words[i]) != 64 || unhex(words[i], 64, l.topics[i]) != 0)
				bad = 1;
		if (bad)
			continue;
		if (strcmp(words[nw - 1], "-") != 0)
		{
			l.len = strlen(words[nw - 1]) / 2;
			l.data = malloc(l.len + 1);
			unhex(words[nw - 1], 2 * l.len, l.data);
		}
		if (li_abi_core_decode_event(d, (const unsigned char (*)[32]) l.topics, l.ntopics,
									 l.data, l.len, &out, &err) != LI_ABI_OK)
		{
			free(l.data);
			continue;			/* not this event */
		}
		logs = realloc(logs, (nlogs + 1) * sizeof(BenchLog));
		logs[nlogs++] = l;
	}
	fclose(f);
	if (nlogs == 0)
	{
		fprintf(stderr, "abi_bench: no log of %s in %s\n", li_abi_core_signature(d), argv[2]);
		return 1;
	}

	for (r = 0; r < runs; r++)
	{
		struct timespec t0,
					t1;
		long		i;
		double		secs;

		clock_gettime(CLOCK_MONOTONIC, &t0);
		for (i = 0; i < decodes; i++)
		{
			const BenchLog *l = &logs[(size_t) i % nlogs];

			if (li_abi_core_decode_event(d, (const unsigned char (*)[32]) l->topics,
										 l->ntopics, l->data, l->len, &out, &err) != LI_ABI_OK)
			{
				fprintf(stderr, "abi_bench: %s\n", err.message);
				return 1;
			}
			bytes += out.len;
		}
		clock_gettime(CLOCK_MONOTONIC, &t1);
		secs = (double) (t1.tv_sec - t0.tv_sec) + (double) (t1.tv_nsec - t0.tv_nsec) / 1e9;
		rates[r] = (double) decodes / secs;
		printf("run %d: %ld decodes in %.3f s: %.0f decodes/s\n", r + 1, decodes, secs, rates[r]);
	}
	qsort(rates, (size_t) runs, sizeof(double), cmp_double);
	printf("%s over %zu distinct logs: median %.0f decodes/s (%.1f ns/decode, %zu JSON bytes)\n",
		   li_abi_core_signature(d), nlogs, rates[runs / 2], 1e9 / rates[runs / 2], bytes);
	li_abi_buf_free(&out);
	li_abi_core_free(d);
	return 0;
}
