/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Types shared between the benchmark's XDP programs and Go (bpf2go -type). */
#ifndef XM_TYPES_H
#define XM_TYPES_H

#include <linux/types.h>

/* Calls one generator or sink instance can address: call i uses UDP port
 * port_base + 2*i on the caller's and the callee's side. */
#define XM_MAX_CALLS 32768

/* One-way latency histogram: 1 us buckets below 1 ms, 100 us buckets below
 * 100 ms, 10 ms buckets below 10 s, then one overflow bucket. Go mirrors
 * the edges in hist.go. */
#define XM_HIST_FINE 1000
#define XM_HIST_MID 990
#define XM_HIST_COARSE 990
#define XM_HIST_BUCKETS (XM_HIST_FINE + XM_HIST_MID + XM_HIST_COARSE + 1)

/* G.711 20 ms: 12-byte RTP header + 160 bytes of audio. */
#define XM_RTP_LEN 172
#define XM_FRAME_LEN (14 + 20 + 8 + XM_RTP_LEN)

/* Sink counters (per CPU). */
enum xm_sink_counter {
	XM_SINK_RTP = 0,    /* counted and dropped: ours */
	XM_SINK_BAD,        /* to a call port but not RTP with a stamp: dropped */
	XM_SINK_OTHER,      /* anything else: passed to the stack (ARP, NG...) */
	XM_SINK_COUNTER_MAX,
};

/* Generator: one per direction. */
struct xm_gen_cfg {
	__u8 smac[6];
	__u8 dmac[6];
	__be32 saddr;
	__u32 ncalls;
	__u32 ssrc_base;
};

/* Per call: where this side of call i sends from and to. */
struct xm_gen_call {
	__u16 sport; /* host order */
	__u16 dport; /* host order */
	__be32 daddr;
};

/* Generated packets so far; the Go side reads deltas. Only one thread
 * runs a generator instance at a time, so a plain array suffices and the
 * sequence stays round-robin across calls. */
struct xm_gen_state {
	__u64 seq;
};

struct xm_sink_cfg {
	__u16 port_base;
	__u16 pad;
	__u32 ncalls;
};

/* Ceiling: what to do with a frame arriving on one of the relay's two
 * veths, keyed by ingress ifindex. */
struct xm_ceil_dir {
	__u32 out_ifindex;
	__be32 match;  /* only frames to this address (the relay's) are redirected */
	__u8 smac[6];
	__u8 dmac[6];
	__be32 saddr;
	__be32 daddr;
};

#endif
