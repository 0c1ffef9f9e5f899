/*
 * cc.c — congestion control: Reno (RFC 5681, byte counting per RFC 3465)
 * and CUBIC (RFC 9438). Fast retransmit and NewReno recovery live in
 * tcp_input.c; these only say how cwnd grows and where ssthresh lands.
 */
#include "internal.h"

#include <string.h>

static uint32_t
max_u32(uint32_t a, uint32_t b)
{
	return a > b ? a : b;
}

static void
cc_common_init(struct utcp_sock *s)
{
	/* RFC 6928 / Linux: ten segments; ssthresh "infinite". */
	s->cwnd = TCP_INIT_CWND * s->mss;
	s->ssthresh = 0x7fffffff;
	s->cc_cnt = 0;
	s->cc_epoch = 0;
	s->cc_wmax = 0;
}

/* Grow only a window that is actually used (RFC 7661's concern; Linux's
 * tcp_is_cwnd_limited), or an idle application inflates cwnd. The test
 * is on the flight before this ACK took `acked` out of it: a small window
 * that is full (two segments out, both acked at once) is being used, and
 * must still grow. */
static bool
cwnd_limited(const struct utcp_sock *s, uint32_t acked)
{
	return 2 * ((uint64_t)tcp_flight(s) + acked + s->mss) >= s->cwnd;
}

/* Slow start (RFC 5681 3.1, RFC 3465 L = 2 SMSS); returns bytes left over
 * for congestion avoidance. */
static uint32_t
slow_start(struct utcp_sock *s, uint32_t acked)
{
	uint32_t inc = acked < 2 * s->mss ? acked : 2 * s->mss;

	if (s->cwnd + inc > s->ssthresh)
		inc = s->ssthresh > s->cwnd ? s->ssthresh - s->cwnd : 0;
	s->cwnd += inc;
	return acked - (inc < acked ? inc : acked);
}

static void
reno_init(struct utcp_sock *s)
{
	cc_common_init(s);
}

static void
reno_on_ack(struct utcp_sock *s, uint32_t acked, utcp_time_t now)
{
	(void)now;
	if (acked == 0 || !cwnd_limited(s, acked))
		return;
	if (s->cwnd < s->ssthresh) {
		acked = slow_start(s, acked);
		if (acked == 0)
			return;
	}
	/* Congestion avoidance: one SMSS per cwnd of data acked. */
	s->cc_cnt += acked;
	if (s->cc_cnt >= s->cwnd) {
		s->cc_cnt -= s->cwnd;
		s->cwnd += s->mss;
	}
}

static uint32_t
reno_ssthresh(struct utcp_sock *s, utcp_time_t now)
{
	(void)now;
	/* RFC 5681 eq. 4: max(FlightSize / 2, 2 * SMSS). */
	return max_u32(tcp_flight(s) / 2, 2 * s->mss);
}

const struct cc_algo cc_reno = {
    .name = "reno",
    .init = reno_init,
    .on_ack = reno_on_ack,
    .ssthresh = reno_ssthresh,
};

/* ---- CUBIC ---- */

#define CUBIC_C 0.4
#define CUBIC_BETA 0.7

static double
cube_root(double x)
{
	double r = x > 1 ? x / 3 : 1;

	if (x <= 0)
		return 0;
	for (int i = 0; i < 60; i++) {
		double nr = r - (r * r * r - x) / (3 * r * r);

		if (nr == r)
			break;
		r = nr;
	}
	return r;
}

static void
cubic_on_ack(struct utcp_sock *s, uint32_t acked, utcp_time_t now)
{
	double mss = s->mss, cwnd, t, target, k, west;

	if (acked == 0 || !cwnd_limited(s, acked))
		return;
	if (s->cwnd < s->ssthresh) {
		acked = slow_start(s, acked);
		if (acked == 0)
			return;
	}
	cwnd = s->cwnd / mss;
	if (s->cc_epoch == 0) {
		/* RFC 9438 4.2: a new congestion-avoidance epoch. */
		s->cc_epoch = now;
		if (s->cc_wmax < s->cwnd) {
			s->cc_k = 0;
			s->cc_origin = s->cwnd;
		} else {
			k = cube_root((s->cc_wmax - s->cwnd) / mss / CUBIC_C);
			s->cc_k = (uint64_t)(k * 1e6);
			s->cc_origin = s->cc_wmax;
		}
		s->cc_west = s->cwnd;
	}
	/* W_cubic(t + RTT) (eq. 1), t in seconds. */
	t = (double)(now - s->cc_epoch + s->srtt) / 1e6 - (double)s->cc_k / 1e6;
	target = s->cc_origin / mss + CUBIC_C * t * t * t;
	/* 4.2: never more than 1.5 cwnd per RTT. */
	if (target > 1.5 * cwnd)
		target = 1.5 * cwnd;
	/* 4.3: the Reno-friendly estimate, alpha = 3(1-b)/(1+b). */
	west = s->cc_west / mss;
	west +=
	    3.0 * (1 - CUBIC_BETA) / (1 + CUBIC_BETA) * (acked / mss) / cwnd;
	s->cc_west = (uint32_t)(west * mss);
	if (west > target)
		target = west;
	if (target > cwnd) {
		/* (target - cwnd) / cwnd per segment acked. */
		double inc = (target - cwnd) / cwnd * (acked / mss) * mss;

		s->cc_cnt += (uint32_t)inc;
	} else {
		s->cc_cnt += (uint32_t)(acked / 100);
	}
	if (s->cc_cnt >= 1) {
		s->cwnd += s->cc_cnt;
		s->cc_cnt = 0;
	}
}

static uint32_t
cubic_ssthresh(struct utcp_sock *s, utcp_time_t now)
{
	uint32_t w = s->cwnd;

	(void)now;
	/* 4.7 fast convergence: release bandwidth to newer flows. */
	if (w < s->cc_wmax)
		s->cc_wmax = (uint32_t)(w * (1 + CUBIC_BETA) / 2);
	else
		s->cc_wmax = w;
	s->cc_epoch = 0;
	/* 4.6: multiplicative decrease by beta, floor of 2 segments. */
	return max_u32((uint32_t)(tcp_flight(s) * CUBIC_BETA), 2 * s->mss);
}

const struct cc_algo cc_cubic = {
    .name = "cubic",
    .init = cc_common_init,
    .on_ack = cubic_on_ack,
    .ssthresh = cubic_ssthresh,
};

const struct cc_algo *
cc_find(const char *name)
{
	if (strcmp(name, "reno") == 0)
		return &cc_reno;
	if (strcmp(name, "cubic") == 0)
		return &cc_cubic;
	return NULL;
}
