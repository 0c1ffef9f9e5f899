/*
 * pcap.h — a classic libpcap file writer, shared by utcpd (--pcap) and
 * the utcp tool (run --pcap, trace --pcap). Header-only: each program
 * includes it once.
 *
 * Format (pcap-savefile(5)): a 24-byte file header — magic 0xa1b2c3d4
 * (microsecond timestamps), version 2.4, snaplen, link type — then per
 * packet a 16-byte record header (seconds, microseconds, captured length,
 * original length) and the bytes, in the writer's byte order (readers
 * tell it by the magic). The link type is LINKTYPE_RAW (101): each record
 * is a bare IPv4 or IPv6 packet, exactly what a TUN device with IFF_NO_PI
 * carries.
 *
 * A size cap: once the next record would take the file past max bytes,
 * nothing more is written (a truncated capture is still a valid file) and
 * the packets left out are counted.
 */
#ifndef UTCP_PCAP_H
#define UTCP_PCAP_H

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define UTCP_PCAP_MAGIC 0xa1b2c3d4u
#define UTCP_PCAP_LINKTYPE_RAW 101u
#define UTCP_PCAP_SNAPLEN 65535u
#define UTCP_PCAP_HDR 24u
#define UTCP_PCAP_REC 16u

struct utcp_pcap {
	FILE *f;
	uint64_t max;      /* 0: no cap */
	uint64_t bytes;    /* the file's size so far */
	uint64_t packets;  /* records written */
	uint64_t skipped;  /* packets left out by the cap */
	bool is_stdout;
};

/* Open path ("-" is stdout) and write the file header. 0 or -errno. */
__attribute__((unused)) static int
utcp_pcap_open(struct utcp_pcap *p, const char *path, uint64_t max)
{
	uint32_t h[6] = {UTCP_PCAP_MAGIC, 2u | (4u << 16), 0, 0,
			 UTCP_PCAP_SNAPLEN, UTCP_PCAP_LINKTYPE_RAW};
	int fd;

	memset(p, 0, sizeof(*p));
	p->max = max;
	/* the file header: magic, version 2.4 (two uint16), thiszone,
	 * sigfigs, snaplen, network */
	if (strcmp(path, "-") == 0) {
		p->f = stdout;
		p->is_stdout = true;
	} else {
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0)
			return -errno;
		p->f = fdopen(fd, "w");
		if (p->f == NULL) {
			int e = errno;
			close(fd);
			return -e;
		}
	}
	if (fwrite(h, sizeof(h), 1, p->f) != 1) {
		int e = errno != 0 ? errno : EIO;
		if (!p->is_stdout)
			fclose(p->f);
		p->f = NULL;
		return -e;
	}
	p->bytes = UTCP_PCAP_HDR;
	return 0;
}

/* One packet, stamped t_us (microseconds since the Unix epoch). 0, 1 when
 * the cap left it out, or -errno. */
__attribute__((unused)) static int
utcp_pcap_write(struct utcp_pcap *p, uint64_t t_us, const void *pkt,
		uint32_t len)
{
	uint32_t cap = len < UTCP_PCAP_SNAPLEN ? len : UTCP_PCAP_SNAPLEN;
	uint32_t r[4] = {(uint32_t)(t_us / 1000000u),
			 (uint32_t)(t_us % 1000000u), cap, len};

	if (p->f == NULL)
		return -EBADF;
	if (p->max != 0 && p->bytes + UTCP_PCAP_REC + cap > p->max) {
		p->skipped++;
		return 1;
	}
	if (fwrite(r, sizeof(r), 1, p->f) != 1 ||
	    (cap > 0 && fwrite(pkt, cap, 1, p->f) != 1))
		return -(errno != 0 ? errno : EIO);
	p->bytes += UTCP_PCAP_REC + cap;
	p->packets++;
	return 0;
}

__attribute__((unused)) static int
utcp_pcap_flush(struct utcp_pcap *p)
{
	if (p->f == NULL)
		return 0;
	return fflush(p->f) == 0 ? 0 : -errno;
}

/* Flush and close; 0 or -errno (a full disk shows here). */
__attribute__((unused)) static int
utcp_pcap_close(struct utcp_pcap *p)
{
	int r = 0;

	if (p->f == NULL)
		return 0;
	if (fflush(p->f) != 0)
		r = -errno;
	if (!p->is_stdout && fclose(p->f) != 0 && r == 0)
		r = -errno;
	p->f = NULL;
	return r;
}

/* "10M", "512k", "2G", "1000" → bytes; 0, or -1 if it is not a size. */
__attribute__((unused)) static int
utcp_parse_size(const char *s, uint64_t *out)
{
	unsigned long long v;
	char *end;

	if (s == NULL || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0)
		return -1;
	switch (*end) {
	case '\0':
		break;
	case 'k': case 'K':
		v <<= 10, end++;
		break;
	case 'm': case 'M':
		v <<= 20, end++;
		break;
	case 'g': case 'G':
		v <<= 30, end++;
		break;
	default:
		return -1;
	}
	if (*end == 'B' || *end == 'b')
		end++;
	if (*end != '\0' || v == 0)
		return -1;
	*out = v;
	return 0;
}

#endif
