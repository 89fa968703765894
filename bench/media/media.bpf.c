//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* xtrunk bench media: the traffic generator, the sink and the ceiling.
 *
 * xm_gen runs under BPF_PROG_TEST_RUN in live-frames mode in the caller's or
 * the callee's namespace: every run rewrites the whole frame as the next
 * packet of the next call (round robin), stamps bpf_ktime_get_ns() into the
 * payload and transmits it (XDP_TX) toward the relay. Frames come back to
 * the generator's page pool after the relay and the sink are done with
 * them, rewritten, so nothing of the old contents is trusted.
 *
 * xm_sink sits on the caller's and the callee's veths: it counts RTP per
 * call (by destination port), adds the one-way latency to a histogram and
 * drops the frame; anything else goes to the stack.
 *
 * xm_ceiling replaces the relay: it rewrites addresses and MACs and
 * redirects to the other veth, the least a relay can do per packet. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "types.h"

char __license[] SEC("license") = "Dual BSD/GPL";

/* Referenced only so the enum lands in BTF for bpf2go -type. */
const enum xm_sink_counter *xm_unused_counter __attribute__((unused));

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xm_gen_cfg);
} gen_cfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, XM_MAX_CALLS);
	__type(key, __u32);
	__type(value, struct xm_gen_call);
} gen_calls SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xm_gen_state);
} gen_state SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xm_sink_cfg);
} sink_cfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XM_MAX_CALLS);
	__type(key, __u32);
	__type(value, __u64);
} sink_calls SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XM_HIST_BUCKETS);
	__type(key, __u32);
	__type(value, __u64);
} sink_hist SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XM_SINK_COUNTER_MAX);
	__type(key, __u32);
	__type(value, __u64);
} sink_counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8);
	__type(key, __u32); /* ingress ifindex */
	__type(value, struct xm_ceil_dir);
} ceil_dirs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP_HASH);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, __u32);
} ceil_tx SEC(".maps");

static __always_inline __u16 ip_csum(struct iphdr *ip)
{
	const __u16 *w = (const __u16 *)ip;
	__u32 s = 0;
#pragma unroll
	for (int i = 0; i < 10; i++)
		s += w[i];
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)~s;
}

SEC("xdp")
int xm_gen(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 zero = 0;

	if (data + XM_FRAME_LEN > data_end)
		return XDP_DROP;
	struct xm_gen_cfg *cfg = bpf_map_lookup_elem(&gen_cfg, &zero);
	struct xm_gen_state *st = bpf_map_lookup_elem(&gen_state, &zero);
	if (!cfg || !st || !cfg->ncalls)
		return XDP_DROP;
	__u64 seq = st->seq;
	__u64 n = cfg->ncalls;
	__u32 idx = seq % n;
	__u64 round = seq / n;
	struct xm_gen_call *c = bpf_map_lookup_elem(&gen_calls, &idx);
	if (!c)
		return XDP_DROP;
	st->seq = seq + 1;

	struct ethhdr *eth = data;
	__builtin_memcpy(eth->h_dest, cfg->dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, cfg->smac, ETH_ALEN);
	eth->h_proto = bpf_htons(ETH_P_IP);

	struct iphdr *ip = (void *)(eth + 1);
	ip->version = 4;
	ip->ihl = 5;
	ip->tos = 0xb8; /* DSCP EF, as voice is marked */
	ip->tot_len = bpf_htons(20 + 8 + XM_RTP_LEN);
	ip->id = 0;
	ip->frag_off = bpf_htons(0x4000); /* DF */
	ip->ttl = 64;
	ip->protocol = IPPROTO_UDP;
	ip->check = 0;
	ip->saddr = cfg->saddr;
	ip->daddr = c->daddr;
	ip->check = ip_csum(ip);

	struct udphdr *udp = (void *)(ip + 1);
	udp->source = bpf_htons(c->sport);
	udp->dest = bpf_htons(c->dport);
	udp->len = bpf_htons(8 + XM_RTP_LEN);
	udp->check = 0; /* none: allowed on IPv4, and the relays keep it so */

	__u8 *rtp = (void *)(udp + 1);
	__u16 rseq = bpf_htons((__u16)round);
	__u32 ts = bpf_htonl((__u32)round * 160);
	__u32 ssrc = bpf_htonl(cfg->ssrc_base + idx);
	rtp[0] = 0x80; /* V=2 */
	rtp[1] = 0;    /* PT 0, PCMU */
	__builtin_memcpy(rtp + 2, &rseq, 2);
	__builtin_memcpy(rtp + 4, &ts, 4);
	__builtin_memcpy(rtp + 8, &ssrc, 4);
	__u64 now = bpf_ktime_get_ns();
	__builtin_memcpy(rtp + 12, &now, 8);
	return XDP_TX;
}

static __always_inline void bump(void *map, __u32 k)
{
	__u64 *v = bpf_map_lookup_elem(map, &k);
	if (v)
		*v += 1;
}

static __always_inline __u32 hist_bucket(__u64 ns)
{
	if (ns < 1000000ULL)
		return ns / 1000;
	if (ns < 100000000ULL)
		return XM_HIST_FINE + (ns - 1000000ULL) / 100000;
	if (ns < 10000000000ULL)
		return XM_HIST_FINE + XM_HIST_MID + (ns - 100000000ULL) / 10000000;
	return XM_HIST_BUCKETS - 1;
}

SEC("xdp")
int xm_sink(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 zero = 0;

	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct udphdr *udp = (void *)(ip + 1);
	if ((void *)(udp + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP) ||
	    ip->ihl != 5 || ip->protocol != IPPROTO_UDP)
		goto other;
	struct xm_sink_cfg *cfg = bpf_map_lookup_elem(&sink_cfg, &zero);
	if (!cfg)
		goto other;
	__u32 dport = bpf_ntohs(udp->dest);
	if (dport < cfg->port_base || (dport - cfg->port_base) & 1)
		goto other;
	__u32 idx = (dport - cfg->port_base) / 2;
	if (idx >= cfg->ncalls)
		goto other;

	__u8 *rtp = (void *)(udp + 1);
	if ((void *)(rtp + 20) > data_end || (rtp[0] & 0xc0) != 0x80) {
		bump(&sink_counters, XM_SINK_BAD);
		return XDP_DROP;
	}
	__u64 stamp, now = bpf_ktime_get_ns();
	__builtin_memcpy(&stamp, rtp + 12, 8);
	bump(&sink_calls, idx);
	bump(&sink_hist, hist_bucket(now > stamp ? now - stamp : 0));
	bump(&sink_counters, XM_SINK_RTP);
	return XDP_DROP;
other:
	bump(&sink_counters, XM_SINK_OTHER);
	return XDP_PASS;
}

SEC("xdp")
int xm_ceiling(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;

	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP) ||
	    ip->ihl != 5 || ip->protocol != IPPROTO_UDP)
		return XDP_PASS;
	__u32 k = ctx->ingress_ifindex;
	struct xm_ceil_dir *d = bpf_map_lookup_elem(&ceil_dirs, &k);
	if (!d || ip->daddr != d->match)
		return XDP_PASS;
	__builtin_memcpy(eth->h_dest, d->dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, d->smac, ETH_ALEN);
	ip->saddr = d->saddr;
	ip->daddr = d->daddr;
	ip->check = 0;
	ip->check = ip_csum(ip);
	return bpf_redirect_map(&ceil_tx, d->out_ifindex, 0);
}
