/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The relay's maps. Names carry the layout version (layout in dataplane.go): a
 * relay that finds pins of another version removes them rather than
 * adopting them. Bump the suffix of every map, here and layout in
 * dataplane.go, when a struct in types.h or a map's shape changes.
 * v2: the next-hop cache moved from xtr_sess to the per-CPU xtr_leg.
 * Maps added later without changing an existing one (xtr_xsks,
 * xtr_xsk_stats, xtr_host) keep the suffix: an older relay's pins stay
 * adoptable, and the new maps are created beside them. */
#ifndef XTR_MAPS_H
#define XTR_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "types.h"

#define XTR_MAX_SESSIONS 262144
#define XTR_MAX_QUEUES 64
#define XTR_MAX_XSKS 1024

/* A userspace-only record of the relay's (see xtr_calls, xtr_host). */
struct xtr_call_blob {
	__u32 len;
	__u8 data[4092];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XTR_MAX_SESSIONS);
	__type(key, struct xtr_sess_key);
	__type(value, struct xtr_sess);
} xtr_sessions_v2 SEC(".maps");

/* Per-leg counters and quality, per CPU, indexed by xtr_sess.slot: an
 * array lookup, not a second hash lookup, on every packet. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XTR_MAX_SESSIONS);
	__type(key, __u32);
	__type(value, struct xtr_leg);
} xtr_legs_v2 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XTR_REASON_MAX);
	__type(key, __u32);
	__type(value, __u64);
} xtr_reasons_v2 SEC(".maps");

/* The relay's own addresses (IPv4-mapped or IPv6): traffic to any other
 * address is none of our business and passes untouched. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, struct xtr_sess_key); /* port 0 */
	__type(value, __u8);
} xtr_local_addrs_v2 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xtr_config);
} xtr_config_v2 SEC(".maps");

/* Egress devices we may redirect to, keyed by ifindex. */
struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP_HASH);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, __u32);
} xtr_tx_ports_v2 SEC(".maps");

/* Recording copies: one perf ring per CPU, read by the relay. */
struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} xtr_record_v2 SEC(".maps");

/* The relay's AF_XDP sockets, keyed by device base (xtr_xsk_devs) + RX
 * queue: what needs userspace (learning, SRTP, cross-family, no
 * neighbour...) is redirected to the socket bound to the device and queue
 * it arrived on (the only one the kernel lets it into). A queue without
 * one (a relay with UDP sockets, or between an old process's exit and the
 * new one's start) makes bpf_redirect_map fall back to XDP_PASS: the
 * kernel's sockets. */
struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, XTR_MAX_XSKS);
	__type(key, __u32);
	__type(value, __u32);
} xtr_xsks_v2 SEC(".maps");

/* Each device's first index in xtr_xsks, keyed by ifindex; a device
 * has XTR_MAX_QUEUES indexes. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XTR_MAX_XSKS / XTR_MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} xtr_xsk_devs_v2 SEC(".maps");

/* Of the packets bound for userspace: [XTR_XSK_REDIRECTED] went to an
 * AF_XDP socket, [XTR_XSK_PASSED] found none and went to the kernel. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XTR_XSK_MAX);
	__type(key, __u32);
	__type(value, __u64);
} xtr_xsk_stats_v2 SEC(".maps");

/* Userspace-only host state that must outlive a restart: the ports the
 * relay added to net.ipv4.ip_local_reserved_ports (text, "a-b,c"), so
 * that the relay exiting cleanly removes exactly those. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xtr_call_blob);
} xtr_host_v2 SEC(".maps");

/* Userspace-only: one opaque record per call so a restarted relay can
 * re-adopt its calls from the pins alone. A record longer than one value
 * spans several keys (call << 4 | piece; see SaveCall in dataplane.go). */

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64);
	__type(value, struct xtr_call_blob);
} xtr_calls_v2 SEC(".maps");

#endif
