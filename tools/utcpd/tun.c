/*
 * tun.c — the link: a TUN device (IFF_TUN|IFF_NO_PI, so each read or write
 * is one bare IPv4/IPv6 packet), its kernel-side address, and the two
 * directions of packet flow.
 */
#include "utcpd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
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
	ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
	memcpy(ifr.ifr_name, o->tun, strlen(o->tun));
	if (ioctl(fd, TUNSETIFF, &ifr) != 0) {
		e = errno;
		log_error("cannot create TUN device %s: %s%s", o->tun,
			  strerror(e),
			  e == EPERM ? " (CAP_NET_ADMIN needed)" : "");
		close(fd);
		return -e;
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

/* Read a batch of packets into the one reused buffer, each handed to the
 * engine before the next read. */
void
tun_input(struct daemon *d)
{
	for (int i = 0; i < UTCPD_TUN_BATCH; i++) {
		ssize_t n = read(d->tun, d->tunbuf, d->tunbuf_len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				log_warn("TUN read: %s", strerror(errno));
			return;
		}
		if (n == 0)
			return;
		d->stats[DST_tun_rx]++;
		d->stats[DST_tun_rx_bytes] += (uint64_t)n;
		/* Records this wakes are worked after the batch, so data
		 * of many segments leaves in one socketpair write. */
		if (d->npkt > 0)
			events_packet(d, d->tunbuf, (size_t)n, UTCP_PKT_IN);
		utcp_input(d->st, d->tunbuf, (size_t)n, d->now);
	}
}

/* The engine's output callback: one finished packet. */
void
tun_output(void *ctx, const uint8_t *pkt, size_t len)
{
	struct daemon *d = ctx;
	ssize_t n;

	if (d->npkt > 0)
		events_packet(d, pkt, len, UTCP_PKT_OUT);
	do {
		n = write(d->tun, pkt, len);
	} while (n < 0 && errno == EINTR);
	if (n == (ssize_t)len) {
		d->stats[DST_tun_tx]++;
		d->stats[DST_tun_tx_bytes] += len;
		return;
	}
	/* The link is lossy by contract: TCP retransmits. Count it. */
	d->stats[DST_tun_tx_drop]++;
	if (n < 0 && errno != EAGAIN)
		log_debug("TUN write of %zu bytes: %s", len, strerror(errno));
}
