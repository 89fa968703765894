/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Header parsing with the bounds checks the verifier wants. */
#ifndef XTR_PARSE_H
#define XTR_PARSE_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <linux/in.h>
#include <bpf/bpf_endian.h>
#include "types.h"

#define IP_MF 0x2000
#define IP_OFFSET 0x1fff

struct pkt {
	void *data;
	void *data_end;
	struct ethhdr *eth;
	struct iphdr *ip4;    /* one of ip4/ip6 is set */
	struct ipv6hdr *ip6;
	struct udphdr *udp;
	__u8 *payload;
	__u16 payload_len;    /* UDP payload bytes, validated against the frame */
	/* aligned: the verifier refuses misaligned stack words */
	struct xtr_sess_key dst __attribute__((aligned(8))); /* addr + port the packet is addressed to */
	__u8 src_addr[16] __attribute__((aligned(8)));
	__u16 src_port;
};

static __always_inline void map_v4(__u8 *out, __be32 a)
{
	__builtin_memset(out, 0, 10);
	out[10] = 0xff;
	out[11] = 0xff;
	__builtin_memcpy(out + 12, &a, 4);
}

static __always_inline int is_v4_mapped(const __u8 *a)
{
	const __u32 *w = (const __u32 *)a;
	return w[0] == 0 && w[1] == 0 && w[2] == bpf_htonl(0x0000ffff);
}

/* parse fills p; returns -1 with *reason set when the frame is not a
 * complete UDP datagram (the caller decides PASS or DROP). */
static __always_inline int parse_udp(struct pkt *p, enum xtr_reason *reason, int *malformed)
{
	struct ethhdr *eth = p->data;
	__u16 ulen;

	*malformed = 0;
	if ((void *)(eth + 1) > p->data_end) {
		*reason = XTR_PASS_NOT_IP;
		return -1;
	}
	p->eth = eth;

	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);
		__u32 ihl;

		if ((void *)(ip + 1) > p->data_end) {
			*reason = XTR_PASS_NOT_IP;
			return -1;
		}
		if (ip->version != 4 || ip->ihl < 5) {
			*reason = XTR_PASS_NOT_IP;
			return -1;
		}
		if (ip->protocol != IPPROTO_UDP) {
			*reason = XTR_PASS_NOT_UDP;
			return -1;
		}
		if (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET)) {
			*reason = XTR_PASS_FRAGMENT;
			return -1;
		}
		ihl = ip->ihl * 4;
		if (ihl > 60)
			ihl = 60;
		struct udphdr *udp = (void *)ip + ihl;
		if ((void *)(udp + 1) > p->data_end) {
			*reason = XTR_DROP_MALFORMED;
			*malformed = 1;
			/* still report the destination address for the caller */
			map_v4(p->dst.addr, ip->daddr);
			return -1;
		}
		p->ip4 = ip;
		p->udp = udp;
		map_v4(p->dst.addr, ip->daddr);
		map_v4(p->src_addr, ip->saddr);
		/* tot_len must cover the UDP datagram and fit in the frame */
		__u32 tot = bpf_ntohs(ip->tot_len);
		ulen = bpf_ntohs(udp->len);
		if (tot < ihl + 8 || (void *)ip + tot > p->data_end || ulen < 8 || ulen > tot - ihl) {
			*malformed = 1;
		}
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > p->data_end) {
			*reason = XTR_PASS_NOT_IP;
			return -1;
		}
		if (ip6->version != 6) {
			*reason = XTR_PASS_NOT_IP;
			return -1;
		}
		if (ip6->nexthdr != IPPROTO_UDP) {
			/* extension headers are rare on media; let the kernel have them */
			*reason = ip6->nexthdr == IPPROTO_TCP || ip6->nexthdr == IPPROTO_ICMPV6 ?
					  XTR_PASS_NOT_UDP : XTR_PASS_IPV6_EXT;
			return -1;
		}
		struct udphdr *udp = (void *)(ip6 + 1);
		__builtin_memcpy(p->dst.addr, &ip6->daddr, 16);
		if ((void *)(udp + 1) > p->data_end) {
			*reason = XTR_DROP_MALFORMED;
			*malformed = 1;
			return -1;
		}
		p->ip6 = ip6;
		p->udp = udp;
		__builtin_memcpy(p->src_addr, &ip6->saddr, 16);
		__u32 plen = bpf_ntohs(ip6->payload_len);
		ulen = bpf_ntohs(udp->len);
		if ((void *)udp + plen > p->data_end || ulen < 8 || ulen > plen)
			*malformed = 1;
	} else {
		*reason = XTR_PASS_NOT_IP;
		return -1;
	}

	p->dst.port = bpf_ntohs(p->udp->dest);
	p->dst.pad = 0;
	p->src_port = bpf_ntohs(p->udp->source);
	p->payload = (__u8 *)(p->udp + 1);
	p->payload_len = *malformed ? 0 : ulen - 8;
	return 0;
}

#endif
