/*
 * connmem.c — engine state per idle established connection, measured.
 *
 *   connmem [--count N] [--bytes B]
 *
 * Opens N connections between two engine stacks at virtual time (see
 * connmem.h), sends B bytes each way on each (default 64; 0: none), lets
 * them go idle, and prints the heap the engine holds for them, per
 * connection end (one engine socket: what a daemon serving one program's
 * connection holds). Then it tears them all down and checks the heap is
 * back where it started. Build:
 *   cc -O2 -Iengine bench/connmem.c build/libutcpengine.a -o build/bench/connmem
 * Last line: "engine: N connections, X bytes/connection".
 */
#include "connmem.h"

#include <stdlib.h>
#include <time.h>

static double
secs(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int
main(int argc, char **argv)
{
	unsigned long n = 10000, req = 64;
	struct cm_net c;
	size_t h0, h1, h2;
	double t0, t1;
	int err;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--count") == 0 && i + 1 < argc)
			n = strtoul(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--bytes") == 0 && i + 1 < argc)
			req = strtoul(argv[++i], NULL, 10);
		else {
			fprintf(stderr,
				"usage: connmem [--count N] [--bytes B]\n");
			return 2;
		}
	}
	if (n == 0 || n > 1000000 || req > 256) {
		fprintf(stderr, "connmem: N in 1..1000000, B in 0..256\n");
		return 2;
	}
	if ((err = cm_init(&c, (unsigned)n)) != 0) {
		fprintf(stderr, "connmem: set-up failed: %s\n", strerror(-err));
		return 1;
	}
	h0 = cm_heap();
	t0 = secs();
	cm_establish(&c, req);
	t1 = secs();
	h1 = cm_heap();
	cm_teardown(&c, 0);
	h2 = cm_heap();
	if (cm_overflowed(&c) || c.errors) {
		fprintf(stderr, "connmem: %u errors%s\n", c.errors,
			cm_overflowed(&c) ? ", packet queue overflow" : "");
		cm_free(&c);
		return 1;
	}
	if (!cm_heap_known()) {
		fprintf(stderr, "connmem: the allocator reports no heap use "
				"(valgrind or a sanitizer?)\n");
		cm_free(&c);
		return 1;
	}
	printf("sockets: %u (A) + %u (B), idle, established, %lu bytes "
	       "exchanged each way\n",
	       c.na, c.nb, req);
	printf("heap: %zu before, %zu idle, %zu after teardown\n", h0, h1, h2);
	printf("time: %.2f s to open and exchange\n", t1 - t0);
	printf("engine: %lu connections, %zu bytes/connection\n", n,
	       (h1 - h0) / (2 * n));
	cm_free(&c);
	return 0;
}
