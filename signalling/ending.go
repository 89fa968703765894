package signalling

// How a call ends. Every ending passes through call.closeWith as one
// Ending; this file is the one place that says what an Ending means for
// the CDR (status, hangup cause), for the SIP side (which legs get a BYE,
// whether the A-leg gets a final response) and for the metrics.

// sipStatus is a SIP response status code. In an Ending, 0 means no final
// response is due: the call was answered (it ends with BYE), or it has
// ended already.
type sipStatus int

// Party is who ended a call. It opens the CDR's hangup cause ("caller:
// BYE") and decides which legs closeWith sends a BYE to.
type Party string

// Who ended a call.
const (
	hangupCaller Party = "caller"
	hangupCallee Party = "callee"
	hangupSystem Party = "system"
	// hangupTransfer ends a leg's part in a call by a REFER transfer: the
	// transferee (the A-leg) stays up, only the other leg is ended.
	hangupTransfer Party = "transfer"
)

// HangupReason says why a call ended, after the party in the CDR's
// hangup cause: a SIP reason phrase (ours or a peer's, converted as it
// came) or one of xtrunk's own below.
type HangupReason string

// xtrunk's own reasons (peers' reason phrases are HangupReason(phrase)).
const (
	reasonBye            HangupReason = "BYE"
	reasonOK             HangupReason = "OK"
	reasonTerminated     HangupReason = "Request Terminated"
	reasonBusy           HangupReason = "Busy Here"
	reasonDecline        HangupReason = "Decline"
	reasonMediaTimeout   HangupReason = "Media Timeout"
	reasonTransferred    HangupReason = "Transferred"
	reasonTransferFailed HangupReason = "Transfer failed"
	reasonShuttingDown   HangupReason = "shutting down"
	reasonAdmin          HangupReason = "administratively ended" // xtrunk ctl hangup, the admin API
	reasonRestart        HangupReason = "signalling restarted"   // live rows a killed process left
	reasonDRFailed       HangupReason = "Disaster Recovery Failed"
	reasonDRBadTwiML     HangupReason = "Disaster Recovery Bad TwiML"
	reasonDRTimeout      HangupReason = "Disaster Recovery Timeout"
	reasonDRHTTPError    HangupReason = "Disaster Recovery HTTP Error"
	reasonDRUnreachable  HangupReason = "Disaster Recovery Unreachable"
	reasonDRReject       HangupReason = "Disaster Recovery Reject"
	reasonDRHangup       HangupReason = "Disaster Recovery Hangup"
	reasonDRCompleted    HangupReason = "Disaster Recovery Completed"
	reasonDRTooManyHops  HangupReason = "Disaster Recovery Too Many Redirects"
)

// Ending is how a call ended: the final status for the A-leg (0 once it
// was answered), why, and who ended it.
type Ending struct {
	Status sipStatus
	Reason HangupReason
	By     Party
}

// ended is the zero Ending some functions return to say the call has
// ended already (closeWith ran): nothing is left for their caller to do.
var ended = Ending{}

// endedBy builds an Ending.
func endedBy(by Party, status sipStatus, reason HangupReason) Ending {
	return Ending{Status: status, Reason: reason, By: by}
}

// hangupCause is the CDR's hangup cause: "party: reason".
func (e Ending) hangupCause() string { return hangupCause(e.By, e.Reason) }

func hangupCause(by Party, reason HangupReason) string { return string(by) + ": " + string(reason) }

// finalStatus is the CDR's SIP response code and the ended-calls metric's
// status: 200 for an answered call, however it ended, else the final
// status the A-leg got.
func (e Ending) finalStatus(answered bool) int {
	if answered {
		return 200
	}
	return int(e.Status)
}

// byeA reports whether ending an answered call sends the A-leg a BYE: not
// when the caller hung up itself, nor when a transfer ends only the other
// leg or the A-leg was transferred away.
func (e Ending) byeA(transferred bool) bool {
	return e.By != hangupCaller && e.By != hangupTransfer && !transferred
}

// byeB reports whether ending an answered call sends the B-leg a BYE: not
// when the callee hung up.
func (e Ending) byeB() bool { return e.By != hangupCallee }

// respondsA reports whether ending an unanswered call sends the A-leg a
// final response: a status is due, and a transfer's leg has no A-leg
// transaction of its own to answer.
func (e Ending) respondsA() bool { return e.Status > 0 && e.By != hangupTransfer }
