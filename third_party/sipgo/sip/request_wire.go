package sip

import (
	"fmt"
	"strings"
)

// RequestWire is a request kept as the bytes it is written as, with its
// routing (transport, source, destination, local and remote address),
// for sending it again later (fork). A parsed or built request is a
// dozen objects (headers, their parameters, URIs); RequestWire is one
// byte slice the garbage collector does not scan. DialogClientSession
// keeps its ACK so for as long as the INVITE transaction lasts, to
// answer a retransmitted 2xx.
type RequestWire struct {
	data          []byte
	tp, src, dest string
	laddr, raddr  Addr
}

// NewRequestWire keeps req as its bytes. req is not changed or kept.
func NewRequestWire(req *Request) RequestWire {
	var b strings.Builder
	req.StringWrite(&b)
	return RequestWire{
		data: []byte(b.String()),
		tp:   req.Transport(), src: req.Source(), dest: req.Destination(),
		laddr: req.Laddr, raddr: req.raddr,
	}
}

// Request parses the kept bytes into a new request with the kept
// routing, as Clone of the original would have been.
func (w RequestWire) Request() (*Request, error) {
	m, err := ParseMessage(w.data)
	if err != nil {
		return nil, err
	}
	req, ok := m.(*Request)
	if !ok {
		return nil, fmt.Errorf("sip: kept request parsed as %T", m)
	}
	req.SetTransport(w.tp)
	req.SetSource(w.src)
	req.SetDestination(w.dest)
	req.Laddr = w.laddr
	req.raddr = w.raddr
	return req, nil
}
