package relay

import (
	"fmt"
	"strings"

	"github.com/xtrunk/xtrunk/bpf"
)

// openXDP loads the fast path and attaches it to every interface's device
// (re-adopting pinned sessions), reserves the port range, starts the
// recorder's reader and, socketless, the AF_XDP path; then re-adopts the
// pinned calls. On error whatever it opened is closed again.
func (r *Relay) openXDP() error {
	dp, err := bpf.Open(bpf.Options{PinDir: r.cfg.PinPath, PortMin: uint16(r.cfg.PortMin), PortMax: uint16(r.cfg.PortMax), JitterSample: r.cfg.JitterSample})
	if err != nil {
		return err
	}
	r.dp, r.fp = dp, dp
	if stale := dp.StalePins(); len(stale) > 0 {
		r.log.Warn().Strs("pins", stale).Str("pin_path", r.cfg.PinPath).
			Msg("removed pinned maps of another layout version (an upgrade): the calls of the relay that made them cannot be adopted, and their fast-path media stops once this relay's program replaces the old one")
	}
	seen := map[string]bool{}
	for _, ifc := range r.ifaces {
		if err := dp.AddLocalAddr(ifc.Addr); err != nil {
			dp.Close()
			return err
		}
		if seen[ifc.Device] {
			continue
		}
		seen[ifc.Device] = true
		a, err := dp.Attach(ifc.Device, bpf.XDPMode(r.cfg.XDPMode))
		if err != nil {
			dp.Close()
			return err
		}
		ev := r.log.Info()
		if a.Mode == bpf.ModeGeneric {
			ev = r.log.Warn().Str("why", "the driver has no native XDP; generic XDP is much slower")
		}
		ev.Str("device", a.Device).Str("xdp_mode", string(a.Mode)).Bool("adopted", a.Adopted).Msg("xdp attached")
		r.m.setMode(a.Device, string(a.Mode))
	}
	if err := r.reservePorts(); err != nil {
		dp.Close()
		return err
	}
	rd, err := dp.NewRecordReader(1 << 20)
	if err != nil {
		r.reserved.close()
		dp.Close()
		return err
	}
	r.recReader = rd
	r.wg.Add(1)
	go r.readRecordCopies(rd)
	if r.cfg.Socketless {
		if r.xp, err = newXDPPath(r, dp); err != nil {
			r.recReader.Close()
			r.reserved.close()
			dp.Close()
			return err
		}
		r.ports.bind = r.xp.bind
		r.log.Info().Int("sockets", len(r.xp.ports)).Msg("socketless: no socket per call; userspace media through AF_XDP")
	}
	if err := r.adopt(); err != nil {
		r.log.Error().Err(err).Msg("re-adopting pinned calls")
	}
	return nil
}

// hostStateReserved prefixes the reserved ports in the pinned host state.
const hostStateReserved = "reserved="

// reservePorts adds the port range to ip_local_reserved_ports, in the
// relay's network namespace, and records in the pins what was added (with
// what an earlier relay of the same pins added) for a clean exit to take
// back.
func (r *Relay) reservePorts() error {
	var prev portSet
	if st, err := r.dp.HostState(); err == nil && strings.HasPrefix(st, hostStateReserved) {
		prev, _ = parsePortSet(strings.TrimPrefix(st, hostStateReserved))
	}
	want := portSet{{uint16(r.cfg.PortMin), uint16(r.cfg.PortMax)}}
	res, err := reservePorts(want, prev)
	if err != nil {
		return err
	}
	if err := r.dp.SetHostState(hostStateReserved + res.added.String()); err != nil {
		res.close()
		return fmt.Errorf("save reserved ports: %w", err)
	}
	r.reserved = res
	r.log.Info().Stringer("ports", want).Stringer("added", res.added).
		Msg("media ports reserved in net.ipv4.ip_local_reserved_ports: the kernel gives none of them to a local program as its ephemeral port")
	return nil
}

// unreservePorts takes back what reservePorts added (a clean exit).
func (r *Relay) unreservePorts() {
	if r.reserved == nil {
		return
	}
	added := r.reserved.added
	if err := r.reserved.release(); err != nil {
		r.log.Warn().Err(err).Stringer("ports", added).Msg("could not remove the media ports from ip_local_reserved_ports")
		return
	}
	r.log.Info().Stringer("ports", added).Msg("media ports removed from net.ipv4.ip_local_reserved_ports")
}
