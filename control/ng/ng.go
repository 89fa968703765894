// Package ng implements the rtpengine NG control protocol: the bencode codec,
// a UDP server that Kamailio's rtpengine module (or rtpengine-ng-client) can
// drive, and a UDP client that can drive a stock rtpengine daemon.
//
// Every datagram is a cookie, one space and a bencoded dictionary:
//
//	5a1f3c d7:command4:pinge
//
// and the reply carries the same cookie:
//
//	5a1f3c d6:result4:ponge
//
// The commands and their keys are described at
// https://rtpengine.readthedocs.io/en/latest/ng_control_protocol.html.
//
// Decoding is deliberately lenient where real peers deviate from the bencode
// specification and strict everywhere else: dictionary keys may arrive in any
// order (Kamailio does not sort them) and a repeated key keeps its last value,
// but non-canonical integers and lengths, truncated input, trailing garbage
// and nesting deeper than [MaxDepth] are errors. Encoding always sorts keys.
package ng

// MaxDepth is how deeply lists and dictionaries may nest, on decode and on
// encode. Real NG messages nest two or three levels; the cap keeps hostile
// input (and cyclic maps handed to the encoder) from exhausting the stack.
const MaxDepth = 64

// MaxDatagram is the largest datagram the server and client read. It covers
// the largest possible UDP payload.
const MaxDatagram = 64 << 10
