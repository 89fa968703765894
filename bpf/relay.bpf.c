//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* xtrunk relay fast path: plain RTP/RTCP between the two legs of a call is
 * rewritten and redirected here, without ever reaching the relay process.
 * Everything else of a session (SRTP, learning, unknown peers' neighbours)
 * goes to the relay process: its AF_XDP socket on the RX queue (the
 * socketless relay) or the kernel's UDP sockets; foreign sources after
 * latching are dropped. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "types.h"
#include "maps.h"
#include "csum.h"
#include "parse.h"
#include "quality.h"

#ifndef AF_INET
#define AF_INET 2
#endif
#ifndef AF_INET6
#define AF_INET6 10
#endif

#define RELAY_TTL 64
/* How long a cached next hop is trusted: a neighbour or route change
 * reaches the fast path within this time. */
#define NH_TTL_NS (1000ULL * 1000 * 1000)

char __license[] SEC("license") = "Dual BSD/GPL";

/* Referenced only so the enums land in BTF for bpf2go -type. */
const enum xtr_reason *xtr_unused_reason __attribute__((unused));
const enum xtr_action *xtr_unused_action __attribute__((unused));
const enum xtr_sess_flags *xtr_unused_flags __attribute__((unused));
const enum xtr_xsk_stat *xtr_unused_xsk_stat __attribute__((unused));
const struct xtr_rec_meta *xtr_unused_rec_meta __attribute__((unused));
const struct xtr_leg *xtr_unused_leg __attribute__((unused));

static __always_inline int count(enum xtr_reason r, int action)
{
	__u32 k = r;
	__u64 *v = bpf_map_lookup_elem(&xtr_reasons_v3, &k);
	if (v)
		*v += 1;
	return action;
}

/* to_user hands a session's packet to the relay process: its AF_XDP
 * socket on this RX queue if it has one, else the kernel (XDP_PASS), where
 * a relay running with UDP sockets reads it. reason says why the fast
 * path could not forward it. */
static __always_inline int to_user(struct xdp_md *ctx, enum xtr_reason r)
{
	long act = XDP_PASS;
	__u32 dev = ctx->ingress_ifindex;
	__u32 *base = bpf_map_lookup_elem(&xtr_xsk_devs_v3, &dev);
	if (base && ctx->rx_queue_index < XTR_MAX_QUEUES)
		act = bpf_redirect_map(&xtr_xsks_v3, *base + ctx->rx_queue_index, XDP_PASS);
	__u32 k = act == XDP_REDIRECT ? XTR_XSK_REDIRECTED : XTR_XSK_PASSED;
	__u64 *v = bpf_map_lookup_elem(&xtr_xsk_stats_v3, &k);
	if (v)
		*v += 1;
	return count(r, (int)act);
}

static __always_inline int addr_eq(const __u8 *a, const __u8 *b)
{
	const __u32 *x = (const __u32 *)a, *y = (const __u32 *)b;
	return x[0] == y[0] && x[1] == y[1] && x[2] == y[2] && x[3] == y[3];
}

static __always_inline int is_rtcp(struct pkt *p)
{
	if (p->payload_len < 8 || p->payload + 2 > (__u8 *)p->data_end)
		return 0;
	__u8 pt = p->payload[1];
	return (p->payload[0] >> 6) == 2 && pt >= 200 && pt <= 207;
}

/* relay_addr is addr's position among the relay's addresses (its part of
 * the port index), or -1 for any other address. A handful of addresses,
 * compared in a loop: cheaper than hashing the address, and the table is
 * one hot cache line or two. */
static __always_inline int relay_addr(const __u8 *addr)
{
	__u32 zero = 0;
	struct xtr_addrs *a = bpf_map_lookup_elem(&xtr_addrs_v3, &zero);
	if (!a)
		return -1;
	__u32 n = a->n;
#pragma unroll
	for (int i = 0; i < XTR_MAX_ADDRS; i++) {
		if (i < n && addr_eq(addr, a->addr[i]))
			return i;
	}
	return -1;
}

/* The kernel's own index for lo in every namespace (LOOPBACK_IFINDEX). */
#define XTR_LO_IFINDEX 1

/* spoofed says whether a packet that arrived on a device claims a source
 * that can only be the relay's host: loopback (127.0.0.0/8, ::1) or one
 * of the relay's addresses. The host's own packets to the relay travel
 * over lo (where such sources are genuine); on any other device they are
 * forged. The kernel's martian and rp_filter checks would drop them, but
 * they run after XDP: an AF_XDP socket or a forward here would take them
 * first. check_addrs adds the scan of the relay's addresses (relay_addr;
 * the loopback test alone is a few compares). */
static __always_inline int spoofed(struct xdp_md *ctx, const __u8 *src, int check_addrs)
{
	if (ctx->ingress_ifindex == XTR_LO_IFINDEX)
		return 0;
	const __u32 *w = (const __u32 *)src;
	if (is_v4_mapped(src) && (bpf_ntohl(w[3]) >> 24) == 127)
		return 1;
	if (w[0] == 0 && w[1] == 0 && w[2] == 0 && w[3] == bpf_htonl(1))
		return 1;
	if (!check_addrs)
		return 0;
	return relay_addr(src) >= 0;
}

/* in_range reports whether port is inside the relay's media port range:
 * traffic without a session there is the relay's (see host_socket), any
 * other passes. */
static __always_inline int in_range(__u16 port)
{
	__u32 zero = 0;
	struct xtr_config *cfg = bpf_map_lookup_elem(&xtr_config_v3, &zero);
	return cfg && port >= cfg->port_min && port <= cfg->port_max;
}

/* host_socket reports whether a socket of the host owns the datagram's
 * destination: a port in the relay's range can also be a host program's,
 * most often the kernel's choice of an ephemeral port for a client (a DNS
 * lookup's reply comes back to one). Such traffic passes; what no socket
 * owns is dropped, as the kernel would drop it — but silently, where the
 * kernel would answer ICMP port unreachable and tell a scanner which of
 * the range's ports are free and which carry calls. Passing everything
 * unknown would be as safe for the host and leak that; reserving the range
 * with ip_local_reserved_ports would change a host-wide setting and still
 * not cover programs that bind a port of the range explicitly. */
static __always_inline int host_socket(struct xdp_md *ctx, struct pkt *p)
{
	struct bpf_sock_tuple t = {};
	struct bpf_sock *sk;
	if (p->ip4) {
		__builtin_memcpy(&t.ipv4.saddr, p->src_addr + 12, 4);
		__builtin_memcpy(&t.ipv4.daddr, p->dst.addr + 12, 4);
		t.ipv4.sport = bpf_htons(p->src_port);
		t.ipv4.dport = bpf_htons(p->dst.port);
		sk = bpf_sk_lookup_udp(ctx, &t, sizeof(t.ipv4), BPF_F_CURRENT_NETNS, 0);
	} else {
		__builtin_memcpy(t.ipv6.saddr, p->src_addr, 16);
		__builtin_memcpy(t.ipv6.daddr, p->dst.addr, 16);
		t.ipv6.sport = bpf_htons(p->src_port);
		t.ipv6.dport = bpf_htons(p->dst.port);
		sk = bpf_sk_lookup_udp(ctx, &t, sizeof(t.ipv6), BPF_F_CURRENT_NETNS, 0);
	}
	if (!sk)
		return 0;
	bpf_sk_release(sk);
	return 1;
}

/* csum_words_diff folds a sum of 32-bit words (each word's complement
 * for what leaves the header, the word itself for what enters) to what
 * csum_apply adds: equal to it modulo 0xffff, as one's complement sums
 * need, since 2^16 = 1 there. */
static __always_inline __u32 csum_words_diff(__u64 sum)
{
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffffffff) + (sum >> 32);
	return (__u32)(sum & 0xffff) + (__u32)(sum >> 16);
}

/* rewrite_ports sets the UDP ports (host order in) and returns acc, the
 * checksum delta so far, with the ports' change added: rewrite4 and
 * rewrite6 apply it to the UDP checksum their own way (IPv4's may be 0). */
static __always_inline __u32 rewrite_ports(struct udphdr *udp, __u16 sport, __u16 dport, __u32 acc)
{
	__be16 nsp = bpf_htons(sport), ndp = bpf_htons(dport);
	acc += (__u16)~udp->source;
	acc += nsp;
	acc += (__u16)~udp->dest;
	acc += ndp;
	udp->source = nsp;
	udp->dest = ndp;
	return acc;
}

/* The rewrite helpers derive their header pointers from the frame again
 * rather than trusting struct pkt: the verifier must see the bounds checks
 * on the very pointers that are written through. */
static __always_inline int rewrite4(void *data, void *data_end, const __u8 *src, __u16 sport, const __u8 *dst, __u16 dport)
{
	struct iphdr *ip = data + sizeof(struct ethhdr);
	if ((void *)(ip + 1) > data_end)
		return -1;
	__u32 ihl = ip->ihl * 4;
	if (ihl < 20 || ihl > 60)
		return -1;
	struct udphdr *udp = (void *)ip + ihl;
	if ((void *)(udp + 1) > data_end)
		return -1;

	__be32 nsaddr, ndaddr;
	__builtin_memcpy(&nsaddr, src + 12, 4);
	__builtin_memcpy(&ndaddr, dst + 12, 4);
	/* the addresses' checksum difference (RFC 1624), inline rather
	 * than a bpf_csum_diff call */
	__u32 acc = csum_words_diff((__u64)(__u32)~ip->saddr + (__u32)~ip->daddr + nsaddr + ndaddr);
	__u16 old_ttl = *(__u16 *)&ip->ttl;

	__u32 iacc = acc;
	ip->saddr = nsaddr;
	ip->daddr = ndaddr;
	ip->ttl = RELAY_TTL;
	__u16 new_ttl = *(__u16 *)&ip->ttl;
	iacc += (__u16)~old_ttl;
	iacc += new_ttl;
	csum_apply(&ip->check, iacc);

	/* the UDP checksum covers the addresses (pseudo header) and ports */
	acc = rewrite_ports(udp, sport, dport, acc);
	if (udp->check) { /* zero means "no checksum" on IPv4 */
		csum_apply(&udp->check, acc);
		if (!udp->check)
			udp->check = 0xffff;
	}
	return 0;
}

static __always_inline int rewrite6(void *data, void *data_end, const __u8 *src, __u16 sport, const __u8 *dst, __u16 dport)
{
	struct ipv6hdr *ip6 = data + sizeof(struct ethhdr);
	struct udphdr *udp = (void *)(ip6 + 1);
	if ((void *)(udp + 1) > data_end)
		return -1;

	/* eight 32-bit words out, eight in, inline (see rewrite4) */
	const __u32 *ow = (const __u32 *)&ip6->saddr; /* saddr, daddr adjacent */
	const __u32 *ns = (const __u32 *)src, *nd = (const __u32 *)dst;
	__u64 sum = 0;
#pragma unroll
	for (int i = 0; i < 4; i++)
		sum += (__u64)(__u32)~ow[i] + (__u32)~ow[4 + i] + ns[i] + nd[i];
	__u32 acc = csum_words_diff(sum);
	__builtin_memcpy(&ip6->saddr, src, 16);
	__builtin_memcpy(&ip6->daddr, dst, 16);
	ip6->hop_limit = RELAY_TTL;

	acc = rewrite_ports(udp, sport, dport, acc);
	csum_apply(&udp->check, acc);
	if (!udp->check)
		udp->check = 0xffff;
	return 0;
}

/* record copies the frame to the recorder; the packet stays on the fast
 * path whatever happens here. */
static __noinline int record_copy(struct xdp_md *ctx, struct xtr_sess_key *k, struct xtr_leg *st)
{
	struct xtr_rec_meta meta = { .ts_ns = bpf_ktime_get_ns() };
	__builtin_memcpy(&meta.key, k, sizeof(meta.key));
	__u64 len = ctx->data_end - ctx->data;
	if (len > 2048)
		len = 2048;
	meta.len = len;
	if (bpf_perf_event_output(ctx, &xtr_record_v3, BPF_F_CURRENT_CPU | (len << 32), &meta, sizeof(meta)) < 0) {
		if (st)
			st->rec_lost++;
		return -1;
	}
	return 0;
}

/* The part of struct xtr_sess the forward path copies (see xtr_relay):
 * the first 84 bytes, the pad left out to fit the stack. */
struct sess_view {
	__u8 action;
	__u8 flags;
	__u16 expect_port;
	__u16 out_src_port;
	__u16 out_dst_port;
	__u32 clock_rate;
	__u32 gen;
	__u8 expect_addr[16];
	__u8 out_src_addr[16];
	__u8 out_dst_addr[16];
	__u8 rtcp_dst_addr[16];
	__u16 rtcp_src_port;
	__u16 rtcp_dst_port;
};
_Static_assert(__builtin_offsetof(struct sess_view, rtcp_dst_addr) == __builtin_offsetof(struct xtr_sess, rtcp_dst_addr) &&
		       __builtin_offsetof(struct sess_view, rtcp_dst_port) == __builtin_offsetof(struct xtr_sess, rtcp_dst_port) &&
		       __builtin_offsetof(struct sess_view, gen) == __builtin_offsetof(struct xtr_sess, gen) &&
		       __builtin_offsetof(struct xtr_sess, rtcp_dst_addr) == 64,
	       "struct sess_view is not the head of struct xtr_sess");

/* sess_read takes a consistent copy of the session into v, or returns
 * -1. Userspace overwrites an array entry in place (not the hash's atomic
 * replacement), so a copy racing it could mix old and new fields: it writes
 * the entry in steps that keep gen odd while fields change (writeSession in
 * sessions.go), and a copy taken while gen was odd or 0 (never written),
 * or changed under it, is not acted on: the caller hands the packet to
 * userspace, which holds the session as it is now. The volatile reads and
 * compiler barriers keep the order; x86 does not reorder loads. */
static __always_inline int sess_read(struct xtr_sess *s, struct sess_view *v)
{
	__u32 g1 = *(volatile __u32 *)&s->gen;
	asm volatile("" ::: "memory");
	__builtin_memcpy(v, s, 64); /* what a forwarded packet reads */
	if (v->flags & XTR_F_RTCP_DEMUX)
		__builtin_memcpy(v->rtcp_dst_addr, s->rtcp_dst_addr, 20); /* and the RTCP destination */
	asm volatile("" ::: "memory");
	if (g1 != *(volatile __u32 *)&s->gen || (g1 & 1) || !g1)
		return -1;
	return 0;
}

SEC("xdp")
int xtr_relay(struct xdp_md *ctx)
{
	struct pkt p = {
		.data = (void *)(long)ctx->data,
		.data_end = (void *)(long)ctx->data_end,
	};
	enum xtr_reason reason = XTR_PASS_NOT_IP;
	int malformed = 0;

	if (parse_udp(&p, &reason, &malformed) < 0) {
		if (reason == XTR_DROP_MALFORMED) {
			/* a truncated header: we cannot see the port; drop only
			 * what is addressed to a relay address */
			if (relay_addr(p.dst.addr) >= 0)
				return count(XTR_DROP_MALFORMED, XDP_DROP);
			return count(XTR_PASS_NOT_RELAY, XDP_PASS);
		}
		return count(reason, XDP_PASS);
	}

	int ai = relay_addr(p.dst.addr);
	if (ai < 0)
		return count(XTR_PASS_NOT_RELAY, XDP_PASS);
	/* the session and the leg: two loads at an address computed from the
	 * packet, independent of each other */
	__u32 idx = ((__u32)ai << 16) | p.dst.port;
	struct xtr_sess *s = bpf_map_lookup_elem(&xtr_sessions_v3, &idx);
	struct xtr_leg *st = bpf_map_lookup_elem(&xtr_legs_v3, &idx);
	if (!s || !(s->flags & XTR_F_ACTIVE)) {
		if (!in_range(p.dst.port))
			return count(XTR_PASS_NOT_RELAY, XDP_PASS);
		if (malformed)
			return count(XTR_DROP_MALFORMED, XDP_DROP);
		if (host_socket(ctx, &p))
			return count(XTR_PASS_HOST_SOCKET, XDP_PASS);
		return count(XTR_DROP_NO_SESSION, XDP_DROP);
	}
	if (malformed)
		return count(XTR_DROP_MALFORMED, XDP_DROP);

	struct sess_view ss;
	if (sess_read(s, &ss) < 0)
		return to_user(ctx, XTR_PASS_USERSPACE);

	/* last_ns is stamped only for packets forwarded: dropped ones must
	 * not keep a dead call alive (a port scanner would), and passed-up ones
	 * are stamped by userspace if it accepts them */
	if (ss.flags & XTR_F_CHECK_SRC) {
		if (p.src_port != ss.expect_port || !addr_eq(p.src_addr, ss.expect_addr)) {
			if (st)
				st->drops++;
			return count(XTR_DROP_FOREIGN_SOURCE, XDP_DROP);
		}
		/* the latched party is on the relay's host (userspace knows all
		 * of the namespace's addresses): what claims to be it here came
		 * over the wire, forged — RTP injection into its call */
		if ((ss.flags & XTR_F_LOCAL_SRC) && ctx->ingress_ifindex != XTR_LO_IFINDEX) {
			if (st)
				st->drops++;
			return count(XTR_DROP_SPOOFED, XDP_DROP);
		}
	}
	if (ss.action == XTR_ACT_DROP) {
		if (st)
			st->drops++;
		return count(XTR_DROP_SESSION, XDP_DROP);
	}
	if (ss.action != XTR_ACT_FORWARD) {
		/* learning: a forged local source must not be latched to (the
		 * relay would send the call's media to itself or a host service) */
		if (spoofed(ctx, p.src_addr, 1)) {
			if (st)
				st->drops++;
			return count(XTR_DROP_SPOOFED, XDP_DROP);
		}
		return to_user(ctx, XTR_PASS_USERSPACE);
	}

	__u32 rate = ss.clock_rate;
	int record = ss.flags & XTR_F_RECORD;
	const __u8 *osrc = ss.out_src_addr, *odst = ss.out_dst_addr;
	__u16 osport = ss.out_src_port, odport = ss.out_dst_port;
	if ((ss.flags & XTR_F_RTCP_DEMUX) && is_rtcp(&p)) {
		osport = ss.rtcp_src_port;
		odst = ss.rtcp_dst_addr;
		odport = ss.rtcp_dst_port;
	}

	int v4 = p.ip4 != NULL;
	if (v4 != is_v4_mapped(odst) || v4 != is_v4_mapped(osrc))
		return to_user(ctx, XTR_PASS_CROSS_FAMILY);

	/* The precise clock only where RFC 3550 jitter needs it (an arrival
	 * time per timed RTP packet, see xtr_jitter_mask): kvm-clock under a
	 * hypervisor makes it ~30 ns. last_ns (call timeouts, seconds) and
	 * the next hop's expiry (1 s) do with the coarse clock:
	 * CLOCK_MONOTONIC as of the last tick. */
	__u64 now = (rate && !xtr_jitter_mask) ? bpf_ktime_get_ns() : bpf_ktime_get_coarse_ns();
	void *data = (void *)(long)ctx->data, *data_end = (void *)(long)ctx->data_end;
	__u64 l3len = (data_end - data) - sizeof(struct ethhdr);
	/* the cache holds the next hop of out_dst only (RTCP demuxed to
	 * another destination always looks up) */
	int cacheable = st && odst == ss.out_dst_addr;
	__u32 oif;
	__u8 dmac[ETH_ALEN], smac[ETH_ALEN];
	if (cacheable && st->nh_expires > now && st->nh_ifindex && st->nh_gen == ss.gen) {
		/* the lookup checked the size against the route's MTU; a hit
		 * checks it against the device's */
		if (l3len > st->nh_mtu)
			return to_user(ctx, XTR_PASS_MTU);
		oif = st->nh_ifindex;
		__builtin_memcpy(dmac, st->nh_dmac, ETH_ALEN);
		__builtin_memcpy(smac, st->nh_smac, ETH_ALEN);
	} else {
		struct bpf_fib_lookup fib = {};
		fib.ifindex = ctx->ingress_ifindex;
		fib.l4_protocol = IPPROTO_UDP;
		fib.sport = bpf_htons(osport);
		fib.dport = bpf_htons(odport);
		if (v4) {
			struct iphdr *ip = data + sizeof(struct ethhdr);
			if ((void *)(ip + 1) > data_end)
				return count(XTR_DROP_MALFORMED, XDP_DROP);
			fib.family = AF_INET;
			fib.tos = ip->tos;
			fib.tot_len = bpf_ntohs(ip->tot_len);
			__builtin_memcpy(&fib.ipv4_src, osrc + 12, 4);
			__builtin_memcpy(&fib.ipv4_dst, odst + 12, 4);
		} else {
			struct ipv6hdr *ip6 = data + sizeof(struct ethhdr);
			if ((void *)(ip6 + 1) > data_end)
				return count(XTR_DROP_MALFORMED, XDP_DROP);
			fib.family = AF_INET6;
			fib.tot_len = bpf_ntohs(ip6->payload_len) + sizeof(*ip6);
			__builtin_memcpy(fib.ipv6_src, osrc, 16);
			__builtin_memcpy(fib.ipv6_dst, odst, 16);
		}

		long rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), 0);
		if (rc == BPF_FIB_LKUP_RET_NO_NEIGH)
			return to_user(ctx, XTR_PASS_NO_NEIGH);
		if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED)
			return to_user(ctx, XTR_PASS_MTU);
		if (rc != BPF_FIB_LKUP_RET_SUCCESS)
			return to_user(ctx, XTR_PASS_FIB_FAIL);
		oif = fib.ifindex;
		__builtin_memcpy(dmac, fib.dmac, ETH_ALEN);
		__builtin_memcpy(smac, fib.smac, ETH_ALEN);
		if (oif != ctx->ingress_ifindex && !bpf_map_lookup_elem(&xtr_tx_ports_v3, &oif))
			return to_user(ctx, XTR_PASS_NO_TXPORT);
		__u32 mtu = 0;
		if (bpf_check_mtu(ctx, oif, &mtu, 0, 0) != BPF_MTU_CHK_RET_SUCCESS)
			return to_user(ctx, XTR_PASS_MTU);
		if (cacheable) {
			/* the flow's CPU is the leg's only writer (types.h) */
			st->nh_ifindex = oif;
			st->nh_gen = ss.gen;
			st->nh_mtu = mtu > 0xffff ? 0xffff : mtu;
			__builtin_memcpy(st->nh_dmac, dmac, ETH_ALEN);
			__builtin_memcpy(st->nh_smac, smac, ETH_ALEN);
			st->nh_expires = now + NH_TTL_NS;
		}
	}

	/* from here on the packet is ours: rewrite and send */
	int rw = v4 ? rewrite4(data, data_end, osrc, osport, odst, odport) :
		      rewrite6(data, data_end, osrc, osport, odst, odport);
	if (rw < 0)
		return count(XTR_DROP_MALFORMED, XDP_DROP);
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > data_end)
		return count(XTR_DROP_MALFORMED, XDP_DROP);
	__builtin_memcpy(eth->h_dest, dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, smac, ETH_ALEN);

	if (st) {
		st->packets++;
		st->bytes += p.payload_len;
		st->last_ns = now;
		quality(&p, st, rate, now);
	}
	if (record)
		record_copy(ctx, &p.dst, st);
	if (oif == ctx->ingress_ifindex)
		return count(XTR_FORWARD_TX, XDP_TX);
	long act = bpf_redirect_map(&xtr_tx_ports_v3, oif, 0);
	if (act != XDP_REDIRECT)
		return count(XTR_DROP_REDIRECT_FAIL, XDP_DROP);
	return count(XTR_FORWARD_REDIRECT, XDP_REDIRECT);
}
