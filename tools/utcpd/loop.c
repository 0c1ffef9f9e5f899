/*
 * loop.c — the daemon's one event loop. It sleeps in epoll until the
 * earlier of fd readiness and the next deadline (the engine's timers and
 * the daemon's own lingering records); it never polls on a timer of its
 * own. The clock is read once per wakeup and handed to the engine as `now`.
 *
 * With --busy-poll USEC (off by default, DESIGN.md principle 3) it keeps
 * polling for USEC after work before it sleeps. Each hand-off between a
 * program, the daemon and a kernel-side peer wakes a sleeping process, and
 * waking one on an idle CPU costs ≈ 25 µs on a virtual machine; a daemon
 * that is still polling when the answer comes is not woken at all. Between
 * polls it yields the CPU to any task waiting there, so the polling takes
 * only time nobody else wants.
 */
#include "utcpd.h"

#include <errno.h>
#include <sched.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#define LOOP_EVENTS 64

utcp_time_t
loop_clock(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (utcp_time_t)ts.tv_sec * 1000000u +
	       (utcp_time_t)ts.tv_nsec / 1000u;
}

int
ep_set(struct daemon *d, int fd, struct ep_obj *obj, uint32_t events,
       uint32_t *cur, bool *registered)
{
	struct epoll_event ev = { .events = events, .data.ptr = obj };
	int op;

	if (fd < 0)
		return 0;
	if (*registered && *cur == events)
		return 0;
	op = *registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
	if (epoll_ctl(d->ep, op, fd, &ev) != 0)
		return -errno;
	*registered = true;
	*cur = events;
	return 0;
}

static void
signal_read(struct daemon *d)
{
	struct signalfd_siginfo si;

	while (read(d->sig, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		log_info("signal %s: stopping", strsignal((int)si.ssi_signo));
		d->stopping = true;
	}
}

static void
dispatch(struct daemon *d, const struct epoll_event *ev)
{
	struct ep_obj *o = ev->data.ptr;

	switch (o->kind) {
	case EP_TUN:
		tun_input(d);
		break;
	case EP_CTL:
		ctl_accept(d);
		break;
	case EP_SIGNAL:
		signal_read(d);
		break;
	case EP_CLIENT: {
		struct client *c = (struct client *)o;
		if (!c->dead)
			ctl_client_io(d, c, ev->events);
		break;
	}
	case EP_REC: {
		struct rec *r = (struct rec *)o;
		if (!r->dead)
			rec_io(d, r, ev->events);
		break;
	}
	}
}

/* Everything that runs between two sleeps and is not fd-driven. */
static void
housekeeping(struct daemon *d)
{
	rec_process_dirty(d);
	rec_reap(d);
	while (!TAILQ_EMPTY(&d->dead_clients)) {
		struct client *c = TAILQ_FIRST(&d->dead_clients);
		TAILQ_REMOVE(&d->dead_clients, c, dead_link);
		ctl_client_free(d, c);
	}
}

int
loop_run(struct daemon *d)
{
	struct epoll_event evs[LOOP_EVENTS];
	static const struct timespec zero; /* --busy-poll's epoll: no wait */
	utcp_time_t poll_until = 0; /* --busy-poll: poll, don't sleep */
	bool have_pwait2 = true;

	while (!d->stopping) {
		utcp_time_t deadline, exp;
		struct timespec ts;
		const struct timespec *tsp = NULL;
		int n, timeout_ms = -1;

		d->now = loop_clock();
		if (unlikely(d->fault != NULL))
			faultd_run(d); /* before the poll: it sends owed ACKs */
		utcp_poll(d->st, d->now);
		rec_expire(d);
		housekeeping(d);

		deadline = utcp_next_deadline(d->st);
		exp = rec_next_expiry(d);
		if (exp < deadline)
			deadline = exp;
		if (unlikely(d->fault != NULL) &&
		    (exp = faultd_deadline(d)) < deadline)
			deadline = exp;
		if (poll_until == 0)
			ctl_trim_idle(d, deadline == UTCP_TIME_NEVER
					     ? UTCP_TIME_NEVER
				      : deadline > d->now ? deadline - d->now
							  : 0);
		if (deadline != UTCP_TIME_NEVER) {
			utcp_time_t wait = deadline > d->now ? deadline - d->now : 0;
			ts.tv_sec = (time_t)(wait / 1000000u);
			ts.tv_nsec = (long)(wait % 1000000u) * 1000;
			tsp = &ts;
			/* Round up: waking early would only spin. */
			timeout_ms = (int)((wait + 999) / 1000);
			if (wait / 1000 > INT32_MAX)
				timeout_ms = INT32_MAX;
		}
		if (poll_until != 0) {
			if (d->now < poll_until) {
				sched_yield();
				tsp = &zero;
				timeout_ms = 0;
			} else {
				poll_until = 0;
				d->stats[DST_busy_poll_idle]++;
			}
		}
		if (have_pwait2) {
			n = epoll_pwait2(d->ep, evs, LOOP_EVENTS, tsp, NULL);
			if (n < 0 && errno == ENOSYS) {
				have_pwait2 = false;
				continue;
			}
		} else {
			n = epoll_wait(d->ep, evs, LOOP_EVENTS, timeout_ms);
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			log_error("epoll_wait: %s", strerror(errno));
			return -errno;
		}
		d->now = loop_clock();
		if (n > 0) {
			d->stats[poll_until != 0 ? DST_busy_poll_found
						 : DST_wakeups]++;
			if (d->opt->busy_poll != 0)
				poll_until = d->now + d->opt->busy_poll;
		} else if (poll_until != 0) {
			continue; /* polling: nothing yet */
		}
		/* Control requests first: an fd a program sends us is "in
		 * flight" until we take it, and closing any AF_UNIX socket
		 * meanwhile (a program's closed socket, below) makes the
		 * kernel schedule its fd garbage collector. */
		for (int i = 0; i < n; i++)
			if (((struct ep_obj *)evs[i].data.ptr)->kind == EP_CLIENT)
				dispatch(d, &evs[i]);
		for (int i = 0; i < n; i++)
			if (((struct ep_obj *)evs[i].data.ptr)->kind != EP_CLIENT)
				dispatch(d, &evs[i]);
		housekeeping(d);
	}
	return 0;
}
