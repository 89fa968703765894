package bpf

// Reason is why a packet left the XDP program the way it did. Every exit
// of the program counts exactly one reason in a per-CPU map.
type Reason uint32

// Reasons, mirroring enum xtr_reason in types.h.
const (
	ReasonForwardRedirect Reason = iota
	ReasonForwardTX
	ReasonPassNotIP
	ReasonPassNotUDP
	ReasonPassFragment
	ReasonPassNotRelay
	ReasonPassUserspace
	ReasonPassNoNeigh
	ReasonPassFIBFail
	ReasonPassNoTXPort
	ReasonPassCrossFamily
	ReasonDropNoSession
	ReasonDropForeignSource
	ReasonDropSession
	ReasonDropMalformed
	ReasonDropRedirectFail
	ReasonPassIPv6Ext
	ReasonPassHostSocket
	ReasonPassMTU
	ReasonDropSpoofed
	ReasonMax
)

// reasonLabels are the metric labels (xtrunk_relay_xdp_packets_total{reason}).
// TestReasonLabelsMatchC fails when these drift from the C enum.
var reasonLabels = [ReasonMax]string{
	ReasonForwardRedirect:   "forward_redirect",
	ReasonForwardTX:         "forward_tx",
	ReasonPassNotIP:         "pass_not_ip",
	ReasonPassNotUDP:        "pass_not_udp",
	ReasonPassFragment:      "pass_fragment",
	ReasonPassNotRelay:      "pass_not_relay",
	ReasonPassUserspace:     "pass_userspace",
	ReasonPassNoNeigh:       "pass_no_neigh",
	ReasonPassFIBFail:       "pass_fib_fail",
	ReasonPassNoTXPort:      "pass_no_txport",
	ReasonPassCrossFamily:   "pass_cross_family",
	ReasonDropNoSession:     "drop_no_session",
	ReasonDropForeignSource: "drop_foreign_source",
	ReasonDropSession:       "drop_session",
	ReasonDropMalformed:     "drop_malformed",
	ReasonDropRedirectFail:  "drop_redirect_fail",
	ReasonPassIPv6Ext:       "pass_ipv6_ext",
	ReasonPassHostSocket:    "pass_host_socket",
	ReasonPassMTU:           "pass_mtu",
	ReasonDropSpoofed:       "drop_spoofed",
}

func (r Reason) String() string {
	if r < ReasonMax {
		return reasonLabels[r]
	}
	return "unknown"
}

// Verdict is the XDP action class a reason belongs to.
func (r Reason) Verdict() string {
	switch {
	case r <= ReasonForwardTX:
		return "forward"
	case r == ReasonDropSpoofed: // appended after the pass reasons
		return "drop"
	case r <= ReasonPassCrossFamily, r >= ReasonPassIPv6Ext && r < ReasonMax:
		return "pass"
	case r < ReasonMax:
		return "drop"
	}
	return "unknown"
}

// Reasons is one counter per reason, summed over CPUs.
type Reasons [ReasonMax]uint64

// Sub returns r - o, per reason.
func (r Reasons) Sub(o Reasons) Reasons {
	var d Reasons
	for i := range r {
		d[i] = r[i] - o[i]
	}
	return d
}
