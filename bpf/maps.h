/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The relay's maps. Names carry the layout version (layout in dataplane.go): a
 * relay that finds pins of another version removes them rather than
 * adopting them. Bump the suffix of every map, here and layout in
 * dataplane.go, when a struct in types.h or a map's shape changes.
 * v2: the next-hop cache moved from xtr_sess to the per-CPU xtr_leg. */
#ifndef XTR_MAPS_H
#define XTR_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "types.h"

#define XTR_MAX_SESSIONS 262144

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

/* Userspace-only: one opaque record per call so a restarted relay can
 * re-adopt its calls from the pins alone. A record longer than one value
 * spans several keys (call << 4 | piece; see SaveCall in dataplane.go). */
struct xtr_call_blob {
	__u32 len;
	__u8 data[4092];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64);
	__type(value, struct xtr_call_blob);
} xtr_calls_v2 SEC(".maps");

#endif
