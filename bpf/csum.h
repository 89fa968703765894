/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Incremental Internet checksum updates (RFC 1624). All values are taken
 * straight from packet memory, so byte order never matters. */
#ifndef XTR_CSUM_H
#define XTR_CSUM_H

#include <linux/types.h>
#include <bpf/bpf_helpers.h>

static __always_inline __u16 csum_fold32(__u32 c)
{
	c = (c & 0xffff) + (c >> 16);
	c = (c & 0xffff) + (c >> 16);
	return (__u16)c;
}

/* HC' = ~(~HC + ~m + m') */
static __always_inline void csum_replace16(__u16 *sum, __u16 from, __u16 to)
{
	__u32 c = (__u16)~*sum;
	c += (__u16)~from;
	c += to;
	*sum = ~csum_fold32(c);
}

/* Accumulate the difference of n 16-bit words into *acc (not yet folded). */
static __always_inline void csum_diff_words(__u32 *acc, const __u16 *from, const __u16 *to, int n)
{
#pragma unroll
	for (int i = 0; i < 8; i++) {
		if (i >= n)
			break;
		*acc += (__u16)~from[i];
		*acc += to[i];
	}
}

static __always_inline void csum_apply(__u16 *sum, __u32 acc)
{
	__u32 c = (__u16)~*sum;
	c += acc;
	*sum = ~csum_fold32(c);
}

#endif
