package signalling

import (
	"context"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/rs/zerolog"
)

// benchEdge is a real edge in this process for the call benchmarks: a
// sipgo PBX UA on 127.0.0.1 that calls the ACL trunk, the Server (SQLite
// store, CDR writer) offering to an in-process userspace relay over NG,
// and a sipgo carrier UAS on 127.0.0.3 that answers. answer places call
// i and returns its dialog once the 200 is acknowledged.
func benchEdge(b *testing.B) (answer func(ctx context.Context, i int) (*sipgo.DialogClientSession, error)) {
	p := provision(b)
	carrier, err := net.ListenPacket("udp", "127.0.0.3:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { carrier.Close() })
	ca := carrier.LocalAddr().(*net.UDPAddr)
	sdpAnswer := func(string) string {
		return "v=0\r\no=carrier 1 1 IN IP4 127.0.0.3\r\ns=-\r\nc=IN IP4 127.0.0.3\r\nt=0 0\r\nm=audio 41000 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n"
	}
	startLabUAS(b, sip.Uri{Scheme: "sip", User: "carrier", Host: "127.0.0.3", Port: ca.Port}, sdpAnswer,
		func(srv *sipgo.Server) error { return srv.ServeUDP(carrier) })

	cfg := testConfig(b)
	cfg.RelayNG = loopbackRelay(b)
	cfg.Carriers = []string{"sip:" + ca.String()}
	// At warn, as `xtrunk bench sip` runs it: a call logs nothing.
	edge := serve(b, cfg, p.st, WithLogger(zerolog.New(io.Discard).Level(zerolog.WarnLevel))).Addr("UDP")

	ua, err := sipgo.NewUA(sipgo.WithUserAgent("bench-pbx"), sipgo.WithUserAgentHostname("127.0.0.1"))
	if err != nil {
		b.Fatal(err)
	}
	pbx, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv, err := sipgo.NewServer(ua)
	if err != nil {
		b.Fatal(err)
	}
	pa := pbx.LocalAddr().(*net.UDPAddr)
	cli, err := sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"))
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = srv.ServeUDP(pbx) }()
	b.Cleanup(func() { srv.Close(); cli.Close(); ua.Close(); pbx.Close() })
	dua := &sipgo.DialogUA{Client: cli, ContactHDR: sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "pbx", Host: "127.0.0.1", Port: pa.Port}}}
	srv.OnBye(func(req *sip.Request, tx sip.ServerTransaction) {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	})

	offer := []byte("v=0\r\no=pbx 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n")
	return func(ctx context.Context, i int) (*sipgo.DialogClientSession, error) {
		to := sip.Uri{Scheme: "sip", User: fmt.Sprintf("+1415555%04d", i%10000), Host: aclHost}
		req := sip.NewRequest(sip.INVITE, to)
		req.SetDestination(edge.String())
		from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: testDID, Host: "pbx.example.com"}, Params: sip.NewParams()}
		from.Params.Add("tag", sip.GenerateTagN(16))
		req.AppendHeader(from)
		req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
		req.SetBody(offer)
		d, err := dua.WriteInvite(ctx, req)
		if err != nil {
			return nil, err
		}
		if err := d.WaitAnswer(ctx, sipgo.AnswerOptions{}); err != nil {
			d.Close()
			return nil, err
		}
		if err := d.Ack(ctx); err != nil {
			d.Close()
			return nil, err
		}
		return d, nil
	}
}

// BenchmarkCall is one whole call per iteration through a real edge in
// this process (benchEdge): after the 200/ACK the UAC hangs up.
// Allocations and CPU per op are the whole process's: the edge's, the
// relay's and both peers'; compare builds, not edges.
func BenchmarkCall(b *testing.B) {
	answer := benchEdge(b)
	call := func(i int) error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		d, err := answer(ctx, i)
		if err != nil {
			return err
		}
		defer d.Close()
		// A BYE right behind the ACK can overtake it (a goroutine per
		// message on each side) and end the call before its 200 is
		// acknowledged: hold a little, as a real call does.
		time.Sleep(10 * time.Millisecond)
		return d.Bye(ctx)
	}
	if err := call(0); err != nil { // warm: the caches, the relay's first ports
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetParallelism(8) // calls overlap, so the holds do not leave the CPU idle
	var n atomic.Int64
	b.ResetTimer()
	cpu0 := cpuTime(b)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if i := n.Add(1); call(int(i)) != nil {
				b.Errorf("call %d failed", i)
			}
		}
	})
	b.ReportMetric(float64((cpuTime(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/call")
}

// BenchmarkCallsInProgress is the memory a call in progress costs: it
// sets up liveCalls calls through a real edge in this process
// (benchEdge), collects, and reports the live heap and its objects per
// call, then hangs them all up. As with BenchmarkCall the figures are the
// whole process's (edge, relay and both peers): compare builds. Every GC
// cycle walks this state for as long as the calls last (BENCHMARKS.md,
// "Calls in progress").
func BenchmarkCallsInProgress(b *testing.B) {
	const liveCalls = 500
	answer := benchEdge(b)
	heap := func() (bytes, objects uint64) {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc, ms.HeapObjects
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if d, err := answer(ctx, 0); err != nil { // warm: caches, the relay's first ports
		b.Fatal(err)
	} else if err := d.Bye(ctx); err != nil {
		b.Fatal(err)
	}
	var perCall, objsPerCall float64
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		b.StopTimer()
		bytes0, objs0 := heap()
		b.StartTimer()
		calls := make([]*sipgo.DialogClientSession, 0, liveCalls)
		for i := 1; i <= liveCalls; i++ {
			d, err := answer(ctx, i)
			if err != nil {
				b.Fatalf("call %d: %v", i, err)
			}
			calls = append(calls, d)
		}
		b.StopTimer()
		bytes1, objs1 := heap()
		perCall = float64(int64(bytes1)-int64(bytes0)) / liveCalls
		objsPerCall = float64(int64(objs1)-int64(objs0)) / liveCalls
		for i, d := range calls {
			if err := d.Bye(ctx); err != nil {
				b.Errorf("BYE %d: %v", i, err)
			}
			d.Close()
		}
		b.StartTimer()
	}
	b.ReportMetric(perCall, "heap-B/call")
	b.ReportMetric(objsPerCall, "heap-objects/call")
}
