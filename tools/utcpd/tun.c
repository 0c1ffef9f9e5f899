/*
 * tun.c — the link: a TUN device (IFF_TUN|IFF_NO_PI, so each read or write
 * is one bare IPv4/IPv6 packet), its kernel-side address, and the two
 * directions of packet flow.
 *
 * Offload (the default; --no-offload turns it off): with IFF_VNET_HDR each
 * packet is preceded by a struct virtio_net_hdr, and TUNSETOFFLOAD tells
 * the kernel we take packets whose TCP checksum is not computed (TUN_F_CSUM)
 * and TSO/GSO super-packets (TUN_F_TSO4/6, "GRO-sized packets in"). Nothing
 * leaves this host, so neither side sums what the other cannot corrupt:
 * packets in carry NEEDS_CSUM or DATA_VALID and the engine skips the check;
 * packets out leave the engine with a partial checksum (UTCP_OFFLOAD_TX_CSUM)
 * and NEEDS_CSUM, and the payload is written from the engine's send buffer
 * (writev) without a copy. Only captures (events_packet) see packets with
 * their checksums completed here, so pcap readers find them valid.
 */
#include "utcpd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <endian.h>
#include <linux/if_tun.h>
#include <linux/virtio_net.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

/* struct in6_ifreq from <linux/ipv6.h>, which clashes with <netinet/in.h>.
 * Its layout is kernel ABI. */
struct utcpd_in6_ifreq {
	struct in6_addr ifr6_addr;
	uint32_t ifr6_prefixlen;
	int ifr6_ifindex;
};

int
tun_open(const struct utcpd_opts *o, char *name_out)
{
	struct ifreq ifr;
	int fd, e;

	if (strlen(o->tun) >= IFNAMSIZ) {
		log_error("TUN name '%s' is longer than %d characters", o->tun,
			  IFNAMSIZ - 1);
		return -ENAMETOOLONG;
	}
	fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		e = errno;
		log_error("cannot open /dev/net/tun: %s", strerror(e));
		return -e;
	}
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = IFF_TUN | IFF_NO_PI | (o->offload ? IFF_VNET_HDR : 0);
	memcpy(ifr.ifr_name, o->tun, strlen(o->tun));
	if (ioctl(fd, TUNSETIFF, &ifr) != 0) {
		e = errno;
		log_error("cannot create TUN device %s: %s%s", o->tun,
			  strerror(e),
			  e == EPERM ? " (CAP_NET_ADMIN needed)" : "");
		close(fd);
		return -e;
	}
	if (o->offload) {
		int sz = (int)sizeof(struct virtio_net_hdr), le = 1;
		unsigned off = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6;

		/* The header's fields are little-endian (virtio 1.0);
		 * where that is native the call changes nothing. */
		(void)ioctl(fd, TUNSETVNETLE, &le);
		if (ioctl(fd, TUNSETVNETHDRSZ, &sz) != 0 ||
		    ioctl(fd, TUNSETOFFLOAD, off) != 0) {
			e = errno;
			log_error("TUN offload on %s: %s (try --no-offload)",
				  o->tun, strerror(e));
			close(fd);
			return -e;
		}
	}
	memcpy(name_out, ifr.ifr_name, IFNAMSIZ);
	name_out[IFNAMSIZ - 1] = '\0';
	return fd;
}

static int
if_up(int s, const char *name)
{
	struct ifreq ifr;

	memset(&ifr, 0, sizeof(ifr));
	strlcpy(ifr.ifr_name, name, sizeof(ifr.ifr_name));
	if (ioctl(s, SIOCGIFFLAGS, &ifr) != 0)
		return -errno;
	if ((ifr.ifr_flags & IFF_UP) != 0)
		return 0;
	ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
	if (ioctl(s, SIOCSIFFLAGS, &ifr) != 0)
		return -errno;
	return 0;
}

static int
set_addr4(int s, const char *name, unsigned long req, struct in_addr a)
{
	struct ifreq ifr;
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr = a };

	memset(&ifr, 0, sizeof(ifr));
	strlcpy(ifr.ifr_name, name, sizeof(ifr.ifr_name));
	memcpy(&ifr.ifr_addr, &sin, sizeof(sin));
	if (ioctl(s, req, &ifr) != 0)
		return -errno;
	return 0;
}

/* Write a sysctl of this namespace; quiet failure is the caller's call. */
static int
write_sysctl(const char *path, const char *val)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, val, strlen(val));
	close(fd);
	return n == (ssize_t)strlen(val) ? 0 : -EIO;
}

static int
configure_v6(const struct utcpd_opts *o, const char *name, int ifindex)
{
	struct utcpd_in6_ifreq r6;
	char path[128];
	int s, r = 0;

	/* A tentative address is unusable for a second or two of duplicate
	 * address detection; on a point-to-point TUN there is no one to
	 * collide with. */
	snprintf(path, sizeof(path), "/proc/sys/net/ipv6/conf/%s/accept_dad",
		 name);
	(void)write_sysctl(path, "0");
	s = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -errno;
	memset(&r6, 0, sizeof(r6));
	r6.ifr6_addr = o->peer6;
	r6.ifr6_prefixlen = o->prefix6;
	r6.ifr6_ifindex = ifindex;
	if (ioctl(s, SIOCSIFADDR, &r6) != 0 && errno != EEXIST)
		r = -errno;
	close(s);
	return r;
}

int
tun_configure(const struct utcpd_opts *o, const char *name, bool *v6_ok)
{
	struct ifreq ifr;
	struct in_addr mask;
	char a[INET6_ADDRSTRLEN];
	int s, r;

	*v6_ok = false;
	s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -errno;
	/* Loopback too: servers in a fresh namespace expect it. */
	if ((r = if_up(s, "lo")) < 0)
		log_warn("cannot bring lo up: %s", strerror(-r));

	memset(&ifr, 0, sizeof(ifr));
	strlcpy(ifr.ifr_name, name, sizeof(ifr.ifr_name));
	ifr.ifr_mtu = (int)o->mtu;
	if (ioctl(s, SIOCSIFMTU, &ifr) != 0) {
		r = -errno;
		log_error("cannot set MTU %u on %s: %s", o->mtu, name,
			  strerror(-r));
		goto out;
	}
	if ((r = set_addr4(s, name, SIOCSIFADDR, o->peer)) < 0) {
		log_error("cannot set address %s on %s: %s",
			  inet_ntop(AF_INET, &o->peer, a, sizeof(a)), name,
			  strerror(-r));
		goto out;
	}
	mask.s_addr = o->prefix == 0 ? 0 : htonl(~0u << (32 - o->prefix));
	if ((r = set_addr4(s, name, SIOCSIFNETMASK, mask)) < 0) {
		log_error("cannot set prefix /%u on %s: %s", o->prefix, name,
			  strerror(-r));
		goto out;
	}
	if ((r = if_up(s, name)) < 0) {
		log_error("cannot bring %s up: %s", name, strerror(-r));
		goto out;
	}
	if (o->ipv6) {
		memset(&ifr, 0, sizeof(ifr));
		strlcpy(ifr.ifr_name, name, sizeof(ifr.ifr_name));
		if (ioctl(s, SIOCGIFINDEX, &ifr) != 0) {
			r = -errno;
			goto out;
		}
		int r6 = configure_v6(o, name, ifr.ifr_ifindex);
		if (r6 < 0)
			log_warn("IPv6 disabled: cannot set %s/%u on %s: %s",
				 inet_ntop(AF_INET6, &o->peer6, a, sizeof(a)),
				 o->prefix6, name, strerror(-r6));
		else
			*v6_ok = true;
	}
	r = 0;
out:
	close(s);
	return r;
}

/* Complete a partial TCP checksum in place (virtio NEEDS_CSUM): sum from
 * csum_start to the end, the field holding the pseudo-header sum. */
static void
csum_complete(uint8_t *pkt, size_t len, size_t start, size_t off)
{
	uint64_t acc = 0;
	size_t i;
	uint16_t w, ck;

	if (start + off + 2 > len)
		return;
	/* RFC 1071, in native order: the stored result is right. */
	for (i = start; i + 2 <= len; i += 2) {
		memcpy(&w, pkt + i, 2);
		acc += w;
	}
	if (i < len) {
		uint8_t b[2] = { pkt[i], 0 };
		memcpy(&w, b, 2);
		acc += w;
	}
	while (acc >> 16)
		acc = (acc & 0xffff) + (acc >> 16);
	ck = (uint16_t)~acc;
	memcpy(pkt + start + off, &ck, 2);
}

/* IP header length of an engine packet (no extension headers). */
static size_t
ip_hlen(const uint8_t *pkt)
{
	return (pkt[0] >> 4) == 6 ? 40 : (size_t)(pkt[0] & 0x0f) * 4;
}

/* Read a batch of packets into the one reused buffer, each handed to the
 * engine before the next read. With offload each starts with a virtio-net
 * header. */
void
tun_input(struct daemon *d)
{
	size_t vh = d->opt->offload ? sizeof(struct virtio_net_hdr) : 0;

	for (int i = 0; i < UTCPD_TUN_BATCH; i++) {
		ssize_t n = read(d->tun, d->tunbuf, d->tunbuf_len);
		struct virtio_net_hdr h;
		unsigned flags = 0;
		uint8_t *pkt = d->tunbuf + vh;
		size_t len;

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				log_warn("TUN read: %s", strerror(errno));
			return;
		}
		if (n == 0 || (size_t)n < vh)
			return;
		len = (size_t)n - vh;
		if (vh > 0) {
			memcpy(&h, d->tunbuf, sizeof(h));
			/* Not computed (local sender) or verified by the
			 * kernel: either way nothing to check. */
			if (h.flags & (VIRTIO_NET_HDR_F_NEEDS_CSUM |
				       VIRTIO_NET_HDR_F_DATA_VALID))
				flags |= UTCP_IN_CSUM_OK;
			if ((h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) &&
			    d->npkt > 0)
				csum_complete(pkt, len, le16toh(h.csum_start),
					      le16toh(h.csum_offset));
		}
		d->stats[DST_tun_rx]++;
		d->stats[DST_tun_rx_bytes] += len;
		/* In-order data for a program that keeps up is written to
		 * it from here (rec_deliver); the rest is worked after the
		 * batch, many segments in one socketpair write. */
		if (d->npkt > 0)
			events_packet(d, pkt, len, UTCP_PKT_IN);
		if (unlikely(d->fault != NULL))
			faultd_input(d, pkt, len, flags);
		else
			utcp_input_flags(d->st, pkt, len, flags, d->now);
	}
}

static void
tx_done(struct daemon *d, ssize_t n, size_t want, size_t len)
{
	if (n == (ssize_t)want) {
		d->stats[DST_tun_tx]++;
		d->stats[DST_tun_tx_bytes] += len;
		return;
	}
	/* The link is lossy by contract: TCP retransmits. Count it. */
	d->stats[DST_tun_tx_drop]++;
	if (n < 0 && errno != EAGAIN)
		log_debug("TUN write of %zu bytes: %s", len, strerror(errno));
}

/* The engine's output callback: one finished packet. */
void
tun_output(void *ctx, const uint8_t *pkt, size_t len)
{
	struct daemon *d = ctx;
	ssize_t n;

	if (unlikely(d->fault != NULL) &&
	    faultd_output(d, &(struct utcp_iov){ pkt, len }, 1, len))
		return;
	if (d->npkt > 0)
		events_packet(d, pkt, len, UTCP_PKT_OUT);
	do {
		n = write(d->tun, pkt, len);
	} while (n < 0 && errno == EINTR);
	tx_done(d, n, len, len);
}

/* The engine's output callback with offload: headers, then the payload
 * from the send ring; the TCP checksum is partial (UTCP_OFFLOAD_TX_CSUM). */
void
tun_output_iov(void *ctx, const struct utcp_iov *iov, unsigned cnt,
	       size_t len)
{
	struct daemon *d = ctx;
	struct virtio_net_hdr h;
	struct iovec v[4];
	size_t iph = ip_hlen(iov[0].base);
	ssize_t n;

	if (unlikely(d->fault != NULL) && faultd_output(d, iov, cnt, len))
		return;
	if (cnt > 3)
		cnt = 3;
	memset(&h, 0, sizeof(h));
	h.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
	h.gso_type = VIRTIO_NET_HDR_GSO_NONE;
	h.csum_start = htole16((uint16_t)iph);
	h.csum_offset = htole16(16); /* struct tcphdr's check */
	v[0].iov_base = &h;
	v[0].iov_len = sizeof(h);
	for (unsigned i = 0; i < cnt; i++) {
		v[i + 1].iov_base = (void *)iov[i].base;
		v[i + 1].iov_len = iov[i].len;
	}
	if (d->npkt > 0 && len <= d->tunbuf_len) {
		/* Captures get the packet whole, checksum done. */
		size_t at = 0;

		for (unsigned i = 0; i < cnt; i++) {
			memcpy(d->capbuf + at, iov[i].base, iov[i].len);
			at += iov[i].len;
		}
		csum_complete(d->capbuf, len, iph, 16);
		events_packet(d, d->capbuf, len, UTCP_PKT_OUT);
	}
	do {
		n = writev(d->tun, v, (int)cnt + 1);
	} while (n < 0 && errno == EINTR);
	tx_done(d, n, len + sizeof(h), len);
}
