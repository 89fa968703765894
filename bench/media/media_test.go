package media

import (
	"bytes"
	"context"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xtrunk/xtrunk/bench/testbed"
	"github.com/xtrunk/xtrunk/bench/testbed/labtest"
)

// TestSmoke runs a tiny benchmark in all four modes and checks the
// machinery, not the speed: every mode delivers, nothing is delivered that
// was not sent, the per-call counts add up, results.json and the PNG come
// out readable, and nothing is left behind.
func TestSmoke(t *testing.T) {
	labtest.RequirePrivileged(t)
	labtest.RequireCommand(t, "rtpengine")
	bin := labtest.BuildXtrunk(t)

	const calls = 20
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var phases []string
	res, err := Run(ctx, Config{
		Calls:     []int{calls},
		Duration:  2 * time.Second,
		Warmup:    500 * time.Millisecond,
		XtrunkBin: bin,
		Progress: func(p Progress) {
			if len(phases) == 0 || phases[len(phases)-1] != p.Mode+"/"+p.Phase {
				phases = append(phases, p.Mode+"/"+p.Phase)
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Modes) != len(AllModes) {
		t.Fatalf("%d modes in the results, want %d", len(res.Modes), len(AllModes))
	}
	for _, m := range res.Modes {
		if m.Error != "" {
			t.Errorf("%s: %s", m.Mode, m.Error)
			continue
		}
		if len(m.Steps) != 1 {
			t.Errorf("%s: %d steps, want 1", m.Mode, len(m.Steps))
			continue
		}
		s := m.Steps[0]
		t.Logf("%s: sent %d delivered %d, p50 %.0f µs p99 %.0f µs, relay CPU %.1f %%, status %s",
			m.Mode, s.Sent, s.Delivered, s.LatencyP50us, s.LatencyP99us, s.RelayCPUPct, s.Status)
		if s.Calls != calls || s.OfferedPPS != 2*calls*PacketsPerSecond {
			t.Errorf("%s: %d calls offered %.0f pps", m.Mode, s.Calls, s.OfferedPPS)
		}
		if s.Sent == 0 || s.Delivered == 0 {
			t.Errorf("%s: sent %d, delivered %d: want both > 0", m.Mode, s.Sent, s.Delivered)
		}
		if s.Delivered > s.Sent {
			t.Errorf("%s: delivered %d > sent %d", m.Mode, s.Delivered, s.Sent)
		}
		if s.PerCallSum != s.Delivered {
			t.Errorf("%s: per-call counts sum to %d, delivered %d", m.Mode, s.PerCallSum, s.Delivered)
		}
		if s.SilentCalls != 0 || s.Bad != 0 {
			t.Errorf("%s: %d call directions silent, %d bad frames", m.Mode, s.SilentCalls, s.Bad)
		}
		if s.LatencyP50us <= 0 || s.LatencyP99us < s.LatencyP50us {
			t.Errorf("%s: latency p50 %.0f µs p99 %.0f µs", m.Mode, s.LatencyP50us, s.LatencyP99us)
		}
		switch m.Mode {
		case ModeXDP:
			if s.XDPReasons["forward_redirect"] == 0 {
				t.Errorf("xdp: nothing forwarded by the XDP program: %v", s.XDPReasons)
			}
			fallthrough
		case ModeUserspace, ModeRTPEngine:
			if len(phases) == 0 {
				t.Errorf("no progress reported")
			}
		}
	}
	if t.Failed() {
		return // the files below need every mode's step
	}

	dir := t.TempDir()
	jsonPath, pngPath := filepath.Join(dir, "results.json"), filepath.Join(dir, "media.png")
	if err := res.WriteJSON(jsonPath); err != nil {
		t.Fatal(err)
	}
	back, err := ReadJSON(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	if len(back.Modes) != len(res.Modes) || back.Modes[0].Steps[0].Delivered != res.Modes[0].Steps[0].Delivered {
		t.Errorf("results.json does not round-trip")
	}
	if err := res.WritePNG(pngPath); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(pngPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("media.png: %v", err)
	}
	if b := img.Bounds(); b.Dx() < 800 || b.Dy() < 600 {
		t.Errorf("media.png is %v", b)
	}
	var table bytes.Buffer
	if err := res.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	for _, m := range AllModes {
		if !strings.Contains(table.String(), m) {
			t.Errorf("table lacks %s:\n%s", m, table.String())
		}
	}

	if m := testbed.ActiveMounts(); len(m) > 0 {
		t.Errorf("bpffs mounts left behind: %v", m)
	}

}

// TestSmokeSRTP runs one small --srtp step in each SRTP mode and checks
// the machinery, not the speed: the SRTP check passed (one call decrypted
// toward the callee byte for byte, encrypted toward the caller with the
// key of the relay's answer), packets were delivered both ways, the
// directions add up to the totals and the per-call counts to the
// deliveries, nothing was delivered that was not sent, no latency is
// claimed, and SRTP calls per core follows from the relay's CPU.
func TestSmokeSRTP(t *testing.T) {
	labtest.RequirePrivileged(t)
	modes := SRTPModes
	if _, err := exec.LookPath("rtpengine"); err != nil {
		if testbed.RequirePrivilegedSet() {
			t.Fatalf("rtpengine not installed (make deps): %v", err)
		}
		t.Logf("rtpengine not installed, SRTP smoke without it: %v", err)
		modes = []string{ModeXDP, ModeUserspace}
	}
	bin := labtest.BuildXtrunk(t)

	const calls = 10
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := Run(ctx, Config{
		Modes:     modes,
		Calls:     []int{calls},
		Duration:  2 * time.Second,
		Warmup:    500 * time.Millisecond,
		XtrunkBin: bin,
		SRTP:      true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !res.SRTP || res.SRTPSuite != SRTPSuite || len(res.Modes) != len(modes) {
		t.Fatalf("results: srtp %v suite %q, %d modes", res.SRTP, res.SRTPSuite, len(res.Modes))
	}
	for _, m := range res.Modes {
		if m.Error != "" {
			t.Errorf("%s: %s", m.Mode, m.Error)
			continue
		}
		if !m.SRTPChecked {
			t.Errorf("%s: the SRTP check did not run", m.Mode)
		}
		if len(m.Steps) != 1 {
			t.Errorf("%s: %d steps, want 1", m.Mode, len(m.Steps))
			continue
		}
		s := m.Steps[0]
		t.Logf("%s: caller→callee (decrypt) %+v, callee→caller (encrypt) %+v, relay CPU %.1f %%, %.0f SRTP calls per core, encrypting took %.3f s, status %s",
			m.Mode, s.ToCallee, s.ToCaller, s.RelayCPUPct, s.SRTPCallsPerCore, s.SRTPPrepareS, s.Status)
		for dir, f := range map[string]Flow{"caller→callee": s.ToCallee, "callee→caller": s.ToCaller} {
			if f.Sent == 0 || f.Delivered == 0 || f.Delivered > f.Sent {
				t.Errorf("%s %s: sent %d, delivered %d", m.Mode, dir, f.Sent, f.Delivered)
			}
		}
		if s.ToCallee.Sent+s.ToCaller.Sent != s.Sent || s.ToCallee.Delivered+s.ToCaller.Delivered != s.Delivered {
			t.Errorf("%s: directions %+v + %+v do not add up to sent %d, delivered %d", m.Mode, s.ToCallee, s.ToCaller, s.Sent, s.Delivered)
		}
		if s.PerCallSum != s.Delivered || s.SilentCalls != 0 || s.Bad != 0 {
			t.Errorf("%s: per-call counts sum to %d of %d delivered; %d call directions silent, %d bad frames",
				m.Mode, s.PerCallSum, s.Delivered, s.SilentCalls, s.Bad)
		}
		if s.LatencyP50us != 0 || s.LatencyP99us != 0 {
			t.Errorf("%s: latency p50 %.0f p99 %.0f µs claimed for SRTP", m.Mode, s.LatencyP50us, s.LatencyP99us)
		}
		if s.SRTPPrepareS <= 0 {
			t.Errorf("%s: the caller's packets were not encrypted ahead", m.Mode)
		}
		switch {
		case s.LossPct < CleanLoss && s.RelayCPUPct > 0:
			if want := calls / (s.RelayCPUPct / 100); s.SRTPCallsPerCore != want {
				t.Errorf("%s: SRTP calls per core %v, want %v", m.Mode, s.SRTPCallsPerCore, want)
			}
		case s.SRTPCallsPerCore != 0:
			t.Errorf("%s: SRTP calls per core %v with loss %.3f %% and relay CPU %.1f %%", m.Mode, s.SRTPCallsPerCore, s.LossPct, s.RelayCPUPct)
		}
		if m.Mode == ModeXDP {
			// An SRTP call leaves XDP: every packet goes to the relay's
			// userspace to be decrypted or encrypted.
			if s.XDPReasons["pass_userspace"] == 0 || s.XDPReasons["forward_redirect"] != 0 {
				t.Errorf("xdp: SRTP packets forwarded in XDP, or none passed to userspace: %v", s.XDPReasons)
			}
		}
	}
	var table bytes.Buffer
	if err := res.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(table.String(), "SRTP calls/core") {
		t.Errorf("table:\n%s", table.String())
	}
	if m := testbed.ActiveMounts(); len(m) > 0 {
		t.Errorf("bpffs mounts left behind: %v", m)
	}
}

// TestCancel: a run cancelled in the middle of a step stops promptly and
// leaves no bpffs mount behind.
func TestCancel(t *testing.T) {
	labtest.RequirePrivileged(t)
	bin := labtest.BuildXtrunk(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := time.Now()
	res, err := Run(ctx, Config{
		Modes: []string{ModeXDP}, Calls: []int{10}, Duration: time.Minute, XtrunkBin: bin,
		Progress: func(p Progress) {
			if p.Phase == "measuring" {
				cancel()
			}
		},
	})
	if err == nil {
		t.Fatalf("cancelled run returned no error: %+v", res)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("cancelled run took %v", d)
	}
	if m := testbed.ActiveMounts(); len(m) > 0 {
		t.Errorf("bpffs mounts left behind: %v", m)
	}

}
