/*
 * pcapd.c — `utcpd --pcap FILE`: every packet that crosses the TUN, both
 * directions, as a classic pcap file (tools/pcap.h: LINKTYPE_RAW, so each
 * record is the bare IPv4/IPv6 packet the TUN carries).
 *
 * The capture must never hold up the data path nor take the daemon down:
 *   - one writev per packet, straight to the file: a reader (tcpdump -r,
 *     tshark) sees every packet at once, and a daemon that is killed
 *     loses nothing that was captured;
 *   - the fd is non-blocking: a FIFO whose reader falls behind costs the
 *     packets that do not fit (counted), never a wait. A record cut short
 *     by a full pipe is finished before the next one starts, so the
 *     stream stays well-formed;
 *   - a size cap (default UTCPD_PCAP_MAX, 0: none): the first record that
 *     would pass it stops the capture, said once in the log;
 *   - a write error (a full disk) stops the capture, said once; the
 *     daemon carries on.
 * Timestamps are the daemon's clock (the engine's `now`, as in traces)
 * moved to wall-clock time once, at open.
 *
 * The hook: events_packet() (events.c), which tun.c calls behind its one
 * `d->npkt > 0` branch; an open capture counts as one packet observer.
 */
#include "utcpd.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "pcap.h"

enum pcapd_stop { PCAPD_ON, PCAPD_FULL, PCAPD_FAILED };

struct pcapd {
	int fd;
	char *path;
	uint64_t max;        /* 0: no cap */
	uint64_t bytes;      /* the file's size so far */
	int64_t real_off;    /* CLOCK_REALTIME - CLOCK_MONOTONIC, µs */
	enum pcapd_stop stop;
	bool said_busy;      /* "the reader is slow" logged */
	/* The rest of a record a full pipe cut short. */
	uint8_t *pend;
	size_t pend_len, pend_off;
};

static int64_t
real_minus_mono(void)
{
	struct timespec r, m;

	clock_gettime(CLOCK_REALTIME, &r);
	clock_gettime(CLOCK_MONOTONIC, &m);
	return ((int64_t)r.tv_sec - (int64_t)m.tv_sec) * 1000000 +
	       ((int64_t)r.tv_nsec - (int64_t)m.tv_nsec) / 1000;
}

/* Write what is left of a cut record. true when nothing is left. */
static bool
pend_flush(struct pcapd *p)
{
	while (p->pend_off < p->pend_len) {
		ssize_t n = write(p->fd, p->pend + p->pend_off,
				  p->pend_len - p->pend_off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		p->pend_off += (size_t)n;
	}
	p->pend_len = p->pend_off = 0;
	return true;
}

/* A pipe with no room: this packet is left out, whole. */
static void
busy(struct daemon *d, struct pcapd *p)
{
	if (!p->said_busy)
		log_warn("pcap %s: the reader is not keeping up: packets are "
			 "left out (daemon_pcap_skipped)", p->path);
	p->said_busy = true;
	d->stats[DST_pcap_skipped]++;
}

static void
stop_failed(struct daemon *d, struct pcapd *p, int err)
{
	log_error("pcap %s: %s: capture stopped (%llu bytes written)",
		  p->path, strerror(err), (unsigned long long)p->bytes);
	p->stop = PCAPD_FAILED;
	d->stats[DST_pcap_skipped]++;
}

int
pcapd_open(struct daemon *d, const char *path, uint64_t max)
{
	uint32_t h[6] = {UTCP_PCAP_MAGIC, 2u | (4u << 16), 0, 0,
			 UTCP_PCAP_SNAPLEN, UTCP_PCAP_LINKTYPE_RAW};
	struct pcapd *p;
	struct stat sb;
	int e;

	p = calloc(1, sizeof(*p));
	if (p == NULL || (p->path = strdup(path)) == NULL ||
	    (p->pend = malloc(UTCP_PCAP_REC + UTCP_PCAP_SNAPLEN)) == NULL) {
		e = ENOMEM;
		goto fail;
	}
	/* 0600: the capture holds every program's payload. A FIFO with no
	 * reader yet fails here (ENXIO) rather than blocking start-up. */
	p->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NONBLOCK |
			   O_CLOEXEC, 0600);
	if (p->fd < 0) {
		e = errno;
		goto fail;
	}
	if (fstat(p->fd, &sb) == 0 && !S_ISREG(sb.st_mode) &&
	    !S_ISFIFO(sb.st_mode) && !S_ISCHR(sb.st_mode)) {
		close(p->fd);
		e = EINVAL;
		goto fail;
	}
	/* The header is the file's first 24 bytes, whatever the pipe. */
	errno = 0;
	if (write(p->fd, h, sizeof(h)) != (ssize_t)sizeof(h)) {
		e = errno != 0 ? errno : EIO;
		close(p->fd);
		goto fail;
	}
	p->max = max;
	p->bytes = UTCP_PCAP_HDR;
	p->real_off = real_minus_mono();
	d->pcap = p;
	d->npkt++; /* one packet observer more: tun.c calls events_packet */
	log_info("pcap: capturing to %s (cap %llu bytes%s)", path,
		 (unsigned long long)max, max == 0 ? ": none" : "");
	return 0;
fail:
	if (p != NULL) {
		free(p->pend);
		free(p->path);
		free(p);
	}
	return -e;
}

void
pcapd_packet(struct daemon *d, const uint8_t *pkt, size_t len, int dir)
{
	struct pcapd *p = d->pcap;
	uint32_t cap = len < UTCP_PCAP_SNAPLEN ? (uint32_t)len
					       : UTCP_PCAP_SNAPLEN;
	uint64_t t = (uint64_t)((int64_t)d->now + p->real_off);
	uint32_t r[4] = {(uint32_t)(t / 1000000u), (uint32_t)(t % 1000000u),
			 cap, (uint32_t)len};
	struct iovec iov[2] = {{.iov_base = r, .iov_len = sizeof(r)},
			       {.iov_base = (void *)pkt, .iov_len = cap}};
	size_t want = sizeof(r) + cap;
	ssize_t n;

	(void)dir; /* LINKTYPE_RAW has no direction: the addresses say it */
	if (p->stop != PCAPD_ON) {
		d->stats[DST_pcap_skipped]++;
		return;
	}
	if (p->max != 0 && p->bytes + want > p->max) {
		log_warn("pcap %s reached --pcap-max (%llu bytes): no more "
			 "packets are written", p->path,
			 (unsigned long long)p->max);
		p->stop = PCAPD_FULL;
		d->stats[DST_pcap_skipped]++;
		return;
	}
	if (p->pend_len > 0 && !pend_flush(p)) {
		if (errno != EAGAIN)
			stop_failed(d, p, errno);
		else
			busy(d, p);
		return;
	}
	do {
		n = writev(p->fd, iov, 2);
	} while (n < 0 && errno == EINTR);
	if (n == (ssize_t)want) {
		p->bytes += want;
		d->stats[DST_pcap_packets]++;
		return;
	}
	if (n < 0 && errno != EAGAIN) {
		stop_failed(d, p, errno);
		return;
	}
	if (n <= 0) {
		busy(d, p);
		return;
	}
	/* Cut short (a pipe, a disk filling up): keep the rest, so the
	 * next write finishes this record first. */
	size_t done = (size_t)n;
	p->pend_len = 0;
	if (done < sizeof(r)) {
		memcpy(p->pend, (uint8_t *)r + done, sizeof(r) - done);
		p->pend_len = sizeof(r) - done;
		done = 0;
	} else {
		done -= sizeof(r);
	}
	memcpy(p->pend + p->pend_len, pkt + done, cap - done);
	p->pend_len += cap - done;
	p->pend_off = 0;
	p->bytes += want;
	d->stats[DST_pcap_packets]++;
}

void
pcapd_close(struct daemon *d)
{
	struct pcapd *p = d->pcap;

	if (p == NULL)
		return;
	/* A record a full pipe cut short: one more try. Never a wait: a
	 * reader that stopped reading must not hold up the shutdown. */
	if (p->pend_len > 0 && p->stop != PCAPD_FAILED && !pend_flush(p))
		log_warn("pcap %s: the last record is cut short (the reader "
			 "is not reading)", p->path);
	if (close(p->fd) != 0 && p->stop != PCAPD_FAILED)
		log_error("pcap %s: %s", p->path, strerror(errno));
	log_info("pcap %s: %llu packets, %llu bytes written, %llu left out",
		 p->path, (unsigned long long)d->stats[DST_pcap_packets],
		 (unsigned long long)p->bytes,
		 (unsigned long long)d->stats[DST_pcap_skipped]);
	d->npkt--;
	d->pcap = NULL;
	free(p->pend);
	free(p->path);
	free(p);
}
