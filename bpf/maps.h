/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The relay's maps. Names carry the layout version (layout in dataplane.go): a
 * relay that finds pins of another version removes them rather than
 * adopting them. Bump the suffix of every map, here and layout in
 * dataplane.go, when a struct in types.h or a map's shape changes.
 * v2: the next-hop cache moved from xtr_sess to the per-CPU xtr_leg.
 * v3: sessions and legs are arrays indexed by relay address and port
 * (xtr_port_index) instead of a hash and a per-CPU array behind it: a
 * packet's session and leg are two independent loads at an address
 * computed from the packet, not a chain of dependent cache misses (hash
 * bucket, entry, per-CPU pointer, leg). xtr_local_addrs became xtr_addrs.
 * Maps added later without changing an existing one keep the suffix: an
 * older relay's pins stay adoptable, and the new maps are created beside
 * them. */
#ifndef XTR_MAPS_H
#define XTR_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "types.h"

#define XTR_MAX_QUEUES 64
#define XTR_MAX_XSKS 1024

/* A userspace-only record of the relay's (see xtr_calls, xtr_host). */
struct xtr_call_blob {
	__u32 len;
	__u8 data[4092];
};

/* A session per relay address and port, at xtr_port_index: the media
 * port range is the relay's (the socketless relay reserves it), so every
 * port of every relay address has its entry, and finding a packet's is
 * arithmetic. Userspace writes them, keeping gen odd while an entry's
 * fields change (writeSession in sessions.go); an entry without
 * XTR_F_ACTIVE is a port without a session. BPF_F_MMAPABLE for the page-aligned values it
 * brings: a 128-byte entry then starts on a cache line, and the fields a
 * forwarded packet reads are one line. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, XTR_MAX_ADDRS * XTR_PORTS);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct xtr_sess);
} xtr_sessions_v3 SEC(".maps");

/* Each session's counters, quality and next-hop cache, at the same index:
 * written by the program (userspace zeroes an entry when it installs a
 * session on a free port), so a session update from userspace never
 * overwrites them. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, XTR_MAX_ADDRS * XTR_PORTS);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct xtr_leg);
} xtr_legs_v3 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XTR_REASON_MAX);
	__type(key, __u32);
	__type(value, __u64);
} xtr_reasons_v3 SEC(".maps");

/* The relay's own addresses, one entry (struct xtr_addrs): what is
 * addressed to any other passes untouched. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xtr_addrs);
} xtr_addrs_v3 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xtr_config);
} xtr_config_v3 SEC(".maps");

/* Egress devices we may redirect to, keyed by ifindex. */
struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP_HASH);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, __u32);
} xtr_tx_ports_v3 SEC(".maps");

/* Recording copies: one perf ring per CPU, read by the relay. */
struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} xtr_record_v3 SEC(".maps");

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
} xtr_xsks_v3 SEC(".maps");

/* Each device's first index in xtr_xsks, keyed by ifindex; a device
 * has XTR_MAX_QUEUES indexes. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XTR_MAX_XSKS / XTR_MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} xtr_xsk_devs_v3 SEC(".maps");

/* Of the packets bound for userspace: [XTR_XSK_REDIRECTED] went to an
 * AF_XDP socket, [XTR_XSK_PASSED] found none and went to the kernel. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XTR_XSK_MAX);
	__type(key, __u32);
	__type(value, __u64);
} xtr_xsk_stats_v3 SEC(".maps");

/* Userspace-only host state that must outlive a restart: the ports the
 * relay added to net.ipv4.ip_local_reserved_ports (text, "a-b,c"), so
 * that the relay exiting cleanly removes exactly those. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xtr_call_blob);
} xtr_host_v3 SEC(".maps");

/* Userspace-only: one opaque record per call so a restarted relay can
 * re-adopt its calls from the pins alone. A record longer than one value
 * spans several keys (call << 4 | piece; see SaveCall in dataplane.go). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64);
	__type(value, struct xtr_call_blob);
} xtr_calls_v3 SEC(".maps");

#endif
