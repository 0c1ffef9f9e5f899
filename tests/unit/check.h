/*
 * check.h — a tiny assertion kit shared by the unit tests.
 *
 * Each failing check prints one line "file:line: what"; CHECK_DONE() prints
 * "N passed, N failed" and gives the exit status (non-zero on failure).
 */
#ifndef UTCP_CHECK_H
#define UTCP_CHECK_H

#include <stdio.h>

static int check_passed, check_failed;

#define CHECK(cond)                                                            \
	do {                                                                   \
		if (cond) {                                                    \
			check_passed++;                                        \
		} else {                                                       \
			check_failed++;                                        \
			printf("%s:%d: CHECK(%s) failed\n", __FILE__,          \
			       __LINE__, #cond);                               \
		}                                                              \
	} while (0)

#define CHECK_EQ(a, b)                                                         \
	do {                                                                   \
		long long check_a_ = (long long)(a);                           \
		long long check_b_ = (long long)(b);                           \
		if (check_a_ == check_b_) {                                    \
			check_passed++;                                        \
		} else {                                                       \
			check_failed++;                                        \
			printf("%s:%d: %s == %s failed: %lld != %lld\n",       \
			       __FILE__, __LINE__, #a, #b, check_a_,           \
			       check_b_);                                      \
		}                                                              \
	} while (0)

/* Run one test function and say which failed. */
#define RUN(fn)                                                                \
	do {                                                                   \
		int check_before_ = check_failed;                              \
		fn();                                                          \
		if (check_failed != check_before_)                             \
			printf("  in %s\n", #fn);                              \
	} while (0)

#define CHECK_DONE()                                                           \
	(printf("%d passed, %d failed\n", check_passed, check_failed),         \
	 check_failed ? 1 : 0)

#endif
