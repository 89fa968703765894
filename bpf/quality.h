/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* RFC 3550 reception statistics of the RTP the fast path forwards: A.1
 * sequence tracking (loss) on every packet, A.8 interarrival jitter on
 * sampled pairs of arrivals (xtr_jitter_mask). Included once, by
 * relay.bpf.c. */
#ifndef XTR_QUALITY_H
#define XTR_QUALITY_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "types.h"
#include "parse.h"

#define RTP_MAX_DROPOUT 3000
#define RTP_MAX_MISORDER 100

/* xtr_jitter_mask is the jitter sample interval N minus one (N a power of
 * two, set by the relay at load: --jitter-sample): 0 times every RTP
 * packet (RFC 3550 A.8 as written); otherwise only two packets in N (on
 * average) read the precise clock, two that arrive one after the other
 * in each block of N of a stream's packets (at jitter_pair_at), and the
 * estimate is fed their transit difference D(i-1,i) alone. The clock
 * read is what quality costs a forwarded packet (~30 ns under kvm-clock,
 * a third of the program).
 * The pairs are the RFC's consecutive arrivals, so |D| is the same
 * quantity and the running estimate converges on the same value: the
 * 1/16 gain now spans 16 pairs, 16 N packets (at N = 8 and 50 packets/s
 * a time constant of 2.6 s instead of 0.32 s), so it follows a change N
 * times slower; its spread around the true value is the RFC's own (the
 * gain averages about 16 differences either way). Loss counting (A.1)
 * still sees every packet. Read-only data: the verifier knows the value
 * and prunes the branches that cannot run. */
volatile const __u32 xtr_jitter_mask = 0;

/* rtp_arrival converts a CLOCK_MONOTONIC time to RTP clock units:
 * now/1000 µs, times rate, over 10^6. At 8 kHz (G.711, G.729, the common
 * case) that is now/125000 exactly (nested floor divisions combine): one
 * division per packet instead of two. */
static __always_inline __s64 rtp_arrival(__u64 now, __u32 rate)
{
	if (rate == 8000)
		return (__s64)(now / 125000);
	return (__s64)(now / 1000 * rate / 1000000);
}

/* jitter_pair_at is where the timed pair starts in the block of N of a
 * stream's packets that starts at 0-based count c (a multiple of N):
 * offset 0 to N - 1 (at N - 1 its second packet is the next block's
 * first), from a hash of c and the SSRC (c, not c / N: no division). A fixed offset would alias with a sender whose packets leave in
 * bursts of a period dividing N (four 20 ms packets every 80 ms): every
 * pair would time the same phase of the burst, the gap inside it or the
 * one between bursts, never their mean. Computed once per block.
 * bpf.JitterPairAt is the same in Go (the tests' model). */
static __always_inline __u32 jitter_pair_at(__u32 c, __u32 ssrc, __u32 mask)
{
	__u32 h = (c * 0x9E3779B1u) ^ ssrc;

	h ^= h >> 15;
	h *= 0x2C1B3C6Du;
	h ^= h >> 12;
	return h & mask;
}

/* jitter_update feeds the estimate one transit difference d (RTP clock
 * units). RFC 3550's J += (|D| - J)/16, kept scaled by 16 as its A.8
 * code does. Sampled (mask != 0), the first 16 pairs of a stream set J
 * to their running mean instead: starting from 0 with gain 1/16 would take
 * 16 N packets (2.6 s at N = 8) to forget the 0, and a short call would
 * report too little jitter; every packet timed, the RFC's own start. The
 * division runs on at most 15 pairs per stream. */
static __always_inline void jitter_update(struct xtr_leg *q, __u64 d, __u32 mask)
{
	if (mask) {
		/* pairs before this one: one per block of N packets, this
		 * one's in the block of its first packet (count received - 1) */
		__u64 m = (q->received - 2) / (mask + 1);
		if (m < 15) {
			__u64 j = q->jitter, t = d << 4;
			if (t >= j)
				q->jitter = j + (t - j) / (m + 1);
			else
				q->jitter = j - (j - t) / (m + 1);
			return;
		}
	}
	q->jitter += d - ((q->jitter + 8) >> 4);
}

/* quality updates the RFC 3550 statistics of the leg with one RTP packet
 * (Appendix A.1 sequence tracking without probation, A.8 jitter, sampled
 * per xtr_jitter_mask). now is the precise clock when every packet is
 * timed (mask 0); a sampled packet reads it here. */
static __always_inline void quality(struct pkt *p, struct xtr_leg *q, __u32 rate, __u64 now)
{
	if (!rate || p->payload_len < 12 || p->payload + 12 > (__u8 *)p->data_end)
		return;
	__u8 *h = p->payload;
	if ((h[0] >> 6) != 2)
		return;
	__u8 pt = h[1] & 0x7f;
	if (pt >= 64 && pt < 96) /* RTCP under rtcp-mux */
		return;
	__u16 seq = ((__u16)h[2] << 8) | h[3];
	__u32 ts = ((__u32)h[4] << 24) | ((__u32)h[5] << 16) | ((__u32)h[6] << 8) | h[7];
	__u32 ssrc = ((__u32)h[8] << 24) | ((__u32)h[9] << 16) | ((__u32)h[10] << 8) | h[11];
	__u32 mask = xtr_jitter_mask;

	if (q->received == 0 || q->ssrc != ssrc || q->clock_rate != rate) {
		/* a new stream (or a new source after a re-offer) starts
		 * afresh: its first packet is count 1, block 0's offset 0 */
		if (mask) {
			q->pair_at = jitter_pair_at(0, ssrc, mask);
			if (q->pair_at == 0)
				now = bpf_ktime_get_ns();
		}
		q->ssrc = ssrc;
		q->clock_rate = rate;
		q->base_seq = seq;
		q->max_seq = seq;
		q->cycles = 0;
		q->received = 1;
		q->transit = rtp_arrival(now, rate) - ts;
		q->jitter = 0;
		return;
	}
	__u16 delta = seq - (__u16)q->max_seq;
	if (delta < RTP_MAX_DROPOUT) {
		if (seq < (__u16)q->max_seq)
			q->cycles += 1 << 16;
		q->max_seq = seq;
	} else if (delta <= (__u16)(65535 - RTP_MAX_MISORDER)) {
		/* a very large jump: the sender restarted; resync (and no
		 * sampled pair across the restart) */
		q->base_seq = seq;
		q->max_seq = seq;
		q->cycles = 0;
		q->received = 0;
		q->pair_at = 0;
	} /* else: duplicate or reordered, max stays */
	q->received++;
	/* the pair: offset pair_at of the block stores its transit, the next
	 * arrival (the next block's first after offset N - 1) takes the
	 * difference; with mask 0 every packet does both */
	int second = 1;
	if (mask) {
		__u32 c = (__u32)q->received - 1;
		__u32 o = c & mask;
		second = o == ((q->pair_at + 1) & mask); /* at o 0: the last block's pair_at */
		if (o == 0)
			q->pair_at = jitter_pair_at(c, ssrc, mask);
		if (o != q->pair_at && !second)
			return;
		now = bpf_ktime_get_ns();
	}
	__s64 transit = rtp_arrival(now, rate) - ts;
	if (second) {
		/* modulo 2^32, as RFC 3550 A.8's int arithmetic: RTP timestamps
		 * start anywhere and wrap (at 8 kHz every 6.2 days, at 48 kHz
		 * every 24.9 h), and a 64-bit difference across the wrap would
		 * read as 2^32 of jitter */
		__s32 d = (__s32)((__u32)transit - (__u32)q->transit);
		jitter_update(q, d < 0 ? (__u64)(-(__s64)d) : (__u64)d, mask);
	}
	q->transit = transit;
}

#endif
