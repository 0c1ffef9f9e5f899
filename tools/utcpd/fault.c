/*
 * fault.c — utcpd --fault SPEC: the seeded fault injector (fault_core.c,
 * fault.h) put between the TUN and the engine. tun.c hands it each packet
 * read from the TUN (instead of giving it to the engine) and each packet
 * the engine outputs (instead of writing it); what the injector lets go
 * comes back here and takes the normal path. The loop releases delayed and
 * held packets at their deadline (faultd_run, faultd_deadline).
 *
 * With offload a "packet" may be a GSO super-packet, up to 64 KiB: it is
 * dropped, duplicated, held or delayed whole. Captures (--pcap, trace)
 * see what crosses the TUN: packets in as read, before any fault; packets
 * out as written, after.
 */
#include "utcpd.h"
#include "fault.h"

#include <errno.h>
#include <stdlib.h>

struct utcpd_fault {
	struct fault *core;
	bool emitting; /* tun.c is writing a packet the injector let go */
	uint8_t *buf;  /* an outgoing packet made whole */
	size_t buf_len;
};

/* Only TCP is faulted: neighbour discovery, MLD or ICMP that the kernel
 * sends at its own times would otherwise take draws and shift the seed's
 * decisions from one run to the next. (IPv6 with extension headers counts
 * as not TCP: the engine does not send them.) */
static bool
is_tcp(const uint8_t *pkt, size_t len)
{
	if (len >= 20 && (pkt[0] >> 4) == 4)
		return pkt[9] == IPPROTO_TCP;
	if (len >= 40 && (pkt[0] >> 4) == 6)
		return pkt[6] == IPPROTO_TCP;
	return false;
}

_Static_assert(DST_fault_duplicated - DST_fault_dropped == FAULT_DUPLICATED &&
	       DST_fault_reordered - DST_fault_dropped == FAULT_REORDERED &&
	       DST_fault_delayed - DST_fault_dropped == FAULT_DELAYED &&
	       DST_fault_queue_full - DST_fault_dropped == FAULT_QUEUE_FULL,
	       "daemon_fault_* counters in fault.h's order");

static void
emit(void *ctx, enum fault_dir dir, const uint8_t *pkt, size_t len,
     uint32_t meta)
{
	struct daemon *d = ctx;

	if (dir == FAULT_IN) {
		utcp_input_flags(d->st, pkt, len, meta, d->now);
		return;
	}
	d->fault->emitting = true;
	if (d->opt->offload) {
		struct utcp_iov v = { pkt, len };
		tun_output_iov(d, &v, 1, len);
	} else {
		tun_output(d, pkt, len);
	}
	d->fault->emitting = false;
}

int
faultd_open(struct daemon *d, const char *spec)
{
	struct fault_spec s;
	struct utcpd_fault *uf;
	char err[256];

	if (fault_parse(spec, &s, err, sizeof(err)) != 0) {
		log_error("--fault '%s': %s", spec, err);
		return -EINVAL;
	}
	uf = calloc(1, sizeof(*uf));
	if (uf == NULL)
		return -ENOMEM;
	uf->buf_len = d->tunbuf_len;
	uf->buf = malloc(uf->buf_len);
	uf->core = fault_new(&s, emit, d, &d->stats[DST_fault_dropped]);
	if (uf->buf == NULL || uf->core == NULL) {
		free(uf->buf);
		fault_free(uf->core);
		free(uf);
		return -ENOMEM;
	}
	d->fault = uf;
	fault_format(&s, err, sizeof(err));
	log_info("fault injection on purpose: %s", err);
	return 0;
}

void
faultd_close(struct daemon *d)
{
	struct utcpd_fault *uf = d->fault;
	size_t n;

	if (uf == NULL)
		return;
	/* From here on packets take the plain path (the tear-down's RSTs
	 * leave unfaulted). */
	d->fault = NULL;
	if ((n = fault_queued(uf->core, NULL)) > 0)
		log_info("fault injection: %zu queued packets dropped at exit",
			 n);
	fault_free(uf->core);
	free(uf->buf);
	free(uf);
}

void
faultd_input(struct daemon *d, const uint8_t *pkt, size_t len,
	     unsigned flags)
{
	if (is_tcp(pkt, len))
		fault_packet(d->fault->core, FAULT_IN, pkt, len, flags, d->now);
	else
		utcp_input_flags(d->st, pkt, len, flags, d->now);
}

bool
faultd_output(struct daemon *d, const struct utcp_iov *iov, unsigned cnt,
	      size_t len)
{
	struct utcpd_fault *uf = d->fault;
	size_t at = 0;

	if (uf->emitting || len > uf->buf_len || !is_tcp(iov[0].base, iov[0].len))
		return false;
	for (unsigned i = 0; i < cnt && at + iov[i].len <= len; i++) {
		memcpy(uf->buf + at, iov[i].base, iov[i].len);
		at += iov[i].len;
	}
	fault_packet(uf->core, FAULT_OUT, uf->buf, at, 0, d->now);
	return true;
}

void
faultd_run(struct daemon *d)
{
	fault_release(d->fault->core, d->now);
}

utcp_time_t
faultd_deadline(const struct daemon *d)
{
	uint64_t t = fault_next_deadline(d->fault->core);

	return t == UINT64_MAX ? UTCP_TIME_NEVER : t;
}
