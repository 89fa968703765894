package signalling

import (
	"errors"
	"fmt"
)

var (
	// ErrConfig is a bad signalling configuration.
	ErrConfig = errors.New("signalling: bad config")
	// ErrCallIDInUse is a new INVITE whose Call-ID is a live call's
	// (482 Loop Detected): another source's, or a merged request.
	ErrCallIDInUse = errors.New("signalling: Call-ID in use by a live call")
	// ErrShuttingDown is a call admitted after Close began (503): its
	// INVITE passed the drain check before the drain, Close hangs up
	// only the calls it finds, so a later one would outlive it.
	ErrShuttingDown = errors.New("signalling: shutting down")

	// ErrRedirectRefused is a 3xx from an origination URI that is not
	// followed (REQUIREMENTS §3.7): no usable Contact, or one toward
	// xtrunk itself.
	ErrRedirectRefused = errors.New("signalling: redirect refused")
	// ErrTargetRefused is a target a tenant names (an origination URI, a
	// 3xx Contact, a DR <Sip>, a REFER's URI) whose address, as it is
	// about to be dialled, is one the edge does not call for a tenant:
	// its own, loopback, link-local, multicast, or a carrier's
	// (tenantDialCheck). Nothing is sent.
	ErrTargetRefused = errors.New("signalling: target address refused")
	// ErrTargetIsCarrier is a refused target (ErrTargetRefused) that is a
	// carrier gateway: the edge would carry the call to the PSTN from its
	// trusted address past termination's checks.
	ErrTargetIsCarrier = fmt.Errorf("%w: a carrier gateway", ErrTargetRefused)
	// ErrDRAddress is a disaster-recovery URL (or a redirect or <Play> it
	// leads to) toward an address the edge does not connect to for a
	// tenant: loopback, link-local, the edge's own (drAddrAllowed).
	ErrDRAddress = errors.New("signalling: disaster-recovery URL toward a refused address")
	// ErrRedirectLoop is a redirect back to the target that sent it.
	ErrRedirectLoop = errors.New("signalling: redirect loop")
	// ErrCNAM is a CNAM lookup that failed (HTTP error, bad answer).
	ErrCNAM = errors.New("signalling: CNAM lookup failed")
	// ErrReferTo is a REFER's Refer-To that names no usable target (400).
	ErrReferTo = errors.New("signalling: bad Refer-To")
	// ErrEdgeAuth is a hand-over INVITE whose X-Xtrunk-Edge-Auth is
	// missing its parts, forged, stale, replayed or for another edge.
	ErrEdgeAuth = errors.New("signalling: edge hand-over not authenticated")
	// ErrNoSuchCall is an operator's request (xtrunk ctl) naming no call
	// in progress.
	ErrNoSuchCall = errors.New("signalling: no such call in progress")
	// ErrNotBanned is an unban of a source or prefix under no ban.
	ErrNotBanned = errors.New("signalling: not banned")
	// ErrSDPSelfAddr is an SDP from a peer elsewhere that names loopback
	// or one of the edge's own addresses as its media address (488;
	// sdpaddr.go).
	ErrSDPSelfAddr = errors.New("signalling: SDP names an address of the edge")
)

// refusal is a termination check's answer: a SIP status and reason
// phrase, or silence (status 0).
type refusal struct {
	status int
	reason string
}

func (r *refusal) Error() string { return r.reason }

// errTimerHeader is a Session-Expires or Min-SE header that does not
// parse (RFC 4028 §4, §5).
var errTimerHeader = errors.New("signalling: bad session timer header")

// Disaster recovery (drtwiml.go, twiml.go).
var (
	// ErrBadTwiML is a disaster-recovery answer that is not a TwiML
	// document the edge can run (not XML, no <Response>, too large).
	ErrBadTwiML = errors.New("signalling: bad TwiML")
	// ErrDRRequest is a disaster-recovery URL that could not be fetched:
	// transport error, timeout, or an HTTP status other than 2xx.
	ErrDRRequest = errors.New("signalling: disaster recovery request failed")
)

// errDialTimeout cancels a <Dial> leg that rang past its timeout.
var errDialTimeout = errors.New("signalling: <Dial> timeout")

// errNoRoute is a peer that no local address faces.
var errNoRoute = errors.New("no route to peer")
