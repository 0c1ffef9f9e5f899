/*
 * isn.c — initial sequence numbers (RFC 6528) and per-connection timestamp
 * offsets, from SipHash-2-4 of the 4-tuple under cfg.isn_key.
 */
#include "internal.h"

#include <string.h>

static uint64_t
rotl(uint64_t x, int b)
{
	return (x << b) | (x >> (64 - b));
}

static uint64_t
load64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

#define SIPROUND                                                               \
	do {                                                                   \
		v0 += v1;                                                      \
		v1 = rotl(v1, 13);                                             \
		v1 ^= v0;                                                      \
		v0 = rotl(v0, 32);                                             \
		v2 += v3;                                                      \
		v3 = rotl(v3, 16);                                             \
		v3 ^= v2;                                                      \
		v0 += v3;                                                      \
		v3 = rotl(v3, 21);                                             \
		v3 ^= v0;                                                      \
		v2 += v1;                                                      \
		v1 = rotl(v1, 17);                                             \
		v1 ^= v2;                                                      \
		v2 = rotl(v2, 32);                                             \
	} while (0)

/* SipHash-2-4 (Aumasson & Bernstein), little-endian words. */
uint64_t
siphash24(const uint8_t key[16], const void *data, size_t len)
{
	const uint8_t *p = data;
	uint64_t k0 = load64(key), k1 = load64(key + 8);
	uint64_t v0 = k0 ^ 0x736f6d6570736575ULL;
	uint64_t v1 = k1 ^ 0x646f72616e646f6dULL;
	uint64_t v2 = k0 ^ 0x6c7967656e657261ULL;
	uint64_t v3 = k1 ^ 0x7465646279746573ULL;
	uint64_t b = (uint64_t)len << 56, m;
	size_t left = len;

	for (; left >= 8; left -= 8, p += 8) {
		m = load64(p);
		v3 ^= m;
		SIPROUND;
		SIPROUND;
		v0 ^= m;
	}
	for (size_t i = 0; i < left; i++)
		b |= (uint64_t)p[i] << (8 * i);
	v3 ^= b;
	SIPROUND;
	SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

/* RFC 6528: ISN = M + F(localip, localport, remoteip, remoteport, key),
 * M a 4 µs timer. */
uint32_t
isn_make(struct utcp_stack *st, const struct utcp_tuple *t, utcp_time_t now)
{
	return (uint32_t)siphash24(st->cfg.isn_key, t, sizeof(*t)) +
	       (uint32_t)(now / 4);
}

/* A per-connection offset so TSval leaks no host clock (as Linux does). */
uint32_t
ts_offset_make(struct utcp_stack *st, const struct utcp_tuple *t)
{
	uint8_t buf[sizeof(*t) + 1];

	memcpy(buf, t, sizeof(*t));
	buf[sizeof(*t)] = 'T';
	return (uint32_t)siphash24(st->cfg.isn_key, buf, sizeof(buf));
}
