/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Types shared between the XDP program and Go (through bpf2go -type). */
#ifndef XTR_TYPES_H
#define XTR_TYPES_H

#include <linux/types.h>

/* Relay addresses the fast path knows. Every address has a session and a
 * leg entry for each of the 65,536 ports (128 + 128 bytes), allocated when
 * the maps are created: 16 MiB per address, 128 MiB in all. */
#define XTR_MAX_ADDRS 8
#define XTR_PORTS 65536

/* Every way a packet leaves the program. Go mirrors these names in
 * reasons.go; a test fails when the two drift apart. Append only. */
enum xtr_reason {
	XTR_FORWARD_REDIRECT = 0,  /* rewritten and redirected to another device */
	XTR_FORWARD_TX,            /* rewritten and sent back out the ingress device */
	XTR_PASS_NOT_IP,           /* not IPv4/IPv6 (ARP, LLDP, VLAN...) */
	XTR_PASS_NOT_UDP,          /* IP but not UDP (ICMP, TCP: SIP over TCP, SSH...) */
	XTR_PASS_FRAGMENT,         /* IPv4 fragment */
	XTR_PASS_NOT_RELAY,        /* UDP not addressed to a relay address/port */
	XTR_PASS_USERSPACE,        /* session wants userspace: SRTP, learning, recording */
	XTR_PASS_NO_NEIGH,         /* FIB found a route but no neighbour entry yet */
	XTR_PASS_FIB_FAIL,         /* FIB lookup failed otherwise (no route, blackhole...) */
	XTR_PASS_NO_TXPORT,        /* egress device is not in the redirect map */
	XTR_PASS_CROSS_FAMILY,     /* IPv4 leg to IPv6 leg: userspace translates */
	XTR_DROP_NO_SESSION,       /* relay address and port range, but no session */
	XTR_DROP_FOREIGN_SOURCE,   /* source is not the latched/expected one (RTP Bleed/Inject) */
	XTR_DROP_SESSION,          /* the session says drop (e.g. held or deleted leg) */
	XTR_DROP_MALFORMED,        /* truncated or inconsistent headers addressed to the relay */
	XTR_DROP_REDIRECT_FAIL,    /* bpf_redirect_map refused after rewrite */
	XTR_PASS_IPV6_EXT,         /* IPv6 with extension headers (fragments, hop-by-hop...) */
	XTR_PASS_HOST_SOCKET,      /* relay address and port range, no session, but a host socket owns the port */
	XTR_PASS_MTU,              /* larger than the egress MTU: the kernel fragments or says so (ICMP) */
	XTR_DROP_SPOOFED,          /* from a device, but from loopback or a relay address: forged (no host packet arrives that way) */
	XTR_REASON_MAX,
};

/* Indexes of xtr_xsk_stats. */
enum xtr_xsk_stat {
	XTR_XSK_REDIRECTED = 0, /* handed to the relay's AF_XDP socket */
	XTR_XSK_PASSED,         /* no socket on the queue: XDP_PASS to the kernel */
	XTR_XSK_MAX,
};

enum xtr_action {
	XTR_ACT_PASS = 0,
	XTR_ACT_FORWARD = 1,
	XTR_ACT_DROP = 2,
};

enum xtr_sess_flags {
	XTR_F_CHECK_SRC = 1 << 0,  /* drop unless source == expect_addr:expect_port */
	XTR_F_RTCP_DEMUX = 1 << 1, /* RTCP (PT 200-207) arriving here goes to rtcp_* */
	XTR_F_RECORD = 1 << 2,     /* copy forwarded packets to the recorder (perf buffer) */
	XTR_F_LOCAL_SRC = 1 << 3,  /* expect_addr is on the relay's host: its packets never arrive at a device's XDP */
	XTR_F_ACTIVE = 1 << 7,     /* the entry holds a session (xtr_sessions is an array: every port has an entry) */
};

/* Addresses are 16 bytes; IPv4 is stored IPv4-mapped (::ffff:a.b.c.d).
 * Ports are in host byte order. */
struct xtr_sess_key {
	__u8 addr[16];
	__u16 port;
	__u16 pad;
};

/* What to do with a packet arriving at a relay address:port: the entry
 * of xtr_sessions at xtr_port_index(address, port). The first 64 bytes are
 * what every forwarded packet reads (one cache line: entries are 128
 * bytes, so the array keeps them aligned); RTCP demux follows. */
struct xtr_sess {
	__u8 action;   /* enum xtr_action */
	__u8 flags;    /* enum xtr_sess_flags */
	__u16 expect_port;
	__u16 out_src_port; /* the relay's own port on the other leg */
	__u16 out_dst_port; /* the peer on the other leg */
	__u32 clock_rate; /* RTP clock of the stream (Hz); 0 = no quality tracking */
	__u32 gen;        /* changes with every update: a next hop cached for another gen is stale */
	__u8 expect_addr[16];
	__u8 out_src_addr[16];
	__u8 out_dst_addr[16];
	/* second cache line: RTCP under rtcp-mux */
	__u8 rtcp_dst_addr[16];
	__u16 rtcp_src_port;
	__u16 rtcp_dst_port;
	__u32 pad[11];
};

/* Per leg (relay address:port): what the fast path did, and the RFC 3550
 * reception statistics of the RTP it forwarded; the entry of xtr_legs at
 * the session's index. One copy for all CPUs, written without atomics: a
 * flow is received on one CPU (RSS, the NAPI context of its device queue),
 * so one CPU writes a leg. Were a flow spread over CPUs, increments could
 * be lost (counts a little low), never a forwarding decision. Userspace
 * zeroes it when a session is installed on a free port. 128 bytes: the
 * next-hop cache and the counters share the first cache line, the RTP
 * statistics the second. */
struct xtr_leg {
	/* Next-hop cache for the session's out_dst, filled from
	 * bpf_fib_lookup and trusted until nh_expires (the fast path's
	 * clock, see last_ns) for the session generation nh_gen. */
	__u64 nh_expires;
	__u32 nh_ifindex;
	__u32 nh_gen;
	__u8 nh_dmac[6];
	__u8 nh_smac[6];
	__u16 nh_mtu;     /* egress device MTU (L3 bytes) */
	__u16 nh_pad;
	__u64 packets;  /* forwarded by XDP */
	__u64 bytes;    /* UDP payload bytes forwarded by XDP */
	/* CLOCK_MONOTONIC of the last packet forwarded: bpf_ktime_get_ns()
	 * for a session with quality tracking when every packet is timed
	 * (its jitter needs the precise clock anyway),
	 * bpf_ktime_get_coarse_ns() (up to a tick behind) otherwise: without
	 * quality tracking, or with sampled jitter (xtr_jitter_mask) */
	__u64 last_ns;
	__u64 drops;    /* dropped: foreign source or session drop */
	/* second cache line: recording, RTP statistics */
	__u64 rec_lost; /* recording copies the perf buffer refused */
	__u32 ssrc;
	__u32 base_seq;   /* first sequence number seen */
	__u32 max_seq;    /* highest sequence number seen (16 bits) */
	__u32 cycles;     /* sequence number wraps, shifted left 16 */
	__u32 clock_rate;
	/* sampled jitter: where in the current block of N packets the timed
	 * pair starts (jitter_pair_at in quality.h); 0 in a leg adopted from
	 * a program without it, which times offset 0 until the next block */
	__u32 pair_at;
	__u64 received;
	__s64 transit;    /* previous timed arrival - timestamp, RTP clock units */
	__u64 jitter;     /* RFC 3550 interarrival jitter, scaled by 16 (sampled: xtr_jitter_mask) */
	__u64 pad2;
};

/* The relay's own addresses (IPv4-mapped or IPv6), in the order they were
 * added: an address's position is its part of the port index, so it never
 * changes while the maps live. Traffic to any other address is none of our
 * business and passes untouched. */
struct xtr_addrs {
	__u32 n;
	__u32 pad[3];
	__u8 addr[XTR_MAX_ADDRS][16];
};

/* Header of a recording copy; the frame follows it in the perf record. */
struct xtr_rec_meta {
	struct xtr_sess_key key; /* the relay address:port the packet arrived at */
	__u64 ts_ns;             /* bpf_ktime_get_ns() on arrival */
	__u32 len;               /* frame bytes that follow */
	__u32 pad;
};

struct xtr_config {
	__u16 port_min;
	__u16 port_max;
	__u32 pad;
};

#endif
