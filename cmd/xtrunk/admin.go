package main

import (
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/netip"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/xtrunk/xtrunk/signalling"
)

// The /admin/ endpoints of sip and relay, on their --metrics listener,
// for xtrunk ctl and xtrunk top. Local clients (loopback, or this host
// through one of its own addresses) reach them as they are; others need
// the operator's credentials in HTTP Basic (admin_auth.go), so that a
// NOC's ctl can reach an edge whose metrics listener is bound to a
// management network. Every answer is JSON; errors are {"error": "..."}.

// localClient: the client's address is loopback, or the one it connected
// to (a TCP handshake from outside with that source could not complete).
func localClient(r *http.Request) bool {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	remote := ap.Addr().Unmap()
	if remote.IsLoopback() {
		return true
	}
	la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if !ok {
		return false
	}
	lp, err := netip.ParseAddrPort(la.String())
	return err == nil && lp.Addr().Unmap() == remote
}

func adminJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func adminError(w http.ResponseWriter, code int, msg string) {
	adminJSON(w, code, map[string]string{"error": msg})
}

// sipAdmin mounts sip's admin endpoints: calls, calls/{id},
// calls/{id}/hangup, bans, bans/{addr}, carriers.
func sipAdmin(srv *signalling.Server, check credCheck) func(*http.ServeMux) {
	g := guard(check, srv.Registry())
	adminOnly := g.wrap
	return func(mux *http.ServeMux) {
		mux.HandleFunc("GET /admin/calls", adminOnly(func(w http.ResponseWriter, r *http.Request) {
			adminJSON(w, http.StatusOK, srv.LiveCalls(r.Context()))
		}))
		mux.HandleFunc("GET /admin/calls/{id}", adminOnly(func(w http.ResponseWriter, r *http.Request) {
			c, err := srv.LiveCall(r.Context(), r.PathValue("id"))
			if err != nil {
				adminError(w, http.StatusNotFound, err.Error())
				return
			}
			adminJSON(w, http.StatusOK, c)
		}))
		mux.HandleFunc("POST /admin/calls/{id}/hangup", adminOnly(func(w http.ResponseWriter, r *http.Request) {
			if err := srv.Hangup(r.PathValue("id")); err != nil {
				adminError(w, http.StatusNotFound, err.Error())
				return
			}
			adminJSON(w, http.StatusOK, map[string]string{"status": "ended", "id": r.PathValue("id")})
		}))
		mux.HandleFunc("GET /admin/bans", adminOnly(func(w http.ResponseWriter, _ *http.Request) {
			adminJSON(w, http.StatusOK, srv.Bans())
		}))
		mux.HandleFunc("DELETE /admin/bans/{addr...}", adminOnly(func(w http.ResponseWriter, r *http.Request) {
			err := srv.Unban(r.PathValue("addr"))
			switch {
			case errors.Is(err, signalling.ErrNotBanned):
				adminError(w, http.StatusNotFound, err.Error())
			case err != nil:
				adminError(w, http.StatusBadRequest, err.Error())
			default:
				adminJSON(w, http.StatusOK, map[string]string{"status": "unbanned", "source": r.PathValue("addr")})
			}
		}))
		mux.HandleFunc("GET /admin/carriers", adminOnly(func(w http.ResponseWriter, _ *http.Request) {
			adminJSON(w, http.StatusOK, srv.Carriers())
		}))
	}
}

// RelayStats is the relay's admin summary: counters since start (the
// console turns two readings into rates).
type RelayStats struct {
	Sessions      map[string]float64 `json:"sessions"`        // by state
	Packets       map[string]float64 `json:"packets"`         // forwarded, by path (xdp, userspace)
	Drops         map[string]float64 `json:"drops"`           // by reason
	PortPairsUsed float64            `json:"port_pairs_used"` // RTP/RTCP port pairs allocated
	PortPairs     float64            `json:"port_pairs"`
}

// relayAdmin mounts the relay's /admin/relay: its own metrics, read back
// from its registry (what it already counts, nothing new on the packet
// path).
func relayAdmin(reg *prometheus.Registry, check credCheck) func(*http.ServeMux) {
	adminOnly := guard(check, reg).wrap
	return func(mux *http.ServeMux) {
		mux.HandleFunc("GET /admin/relay", adminOnly(func(w http.ResponseWriter, _ *http.Request) {
			mfs, err := reg.Gather()
			if err != nil {
				adminError(w, http.StatusInternalServerError, err.Error())
				return
			}
			adminJSON(w, http.StatusOK, relayStatsOf(mfs))
		}))
	}
}

// guard is the admin guard with its failure counter on reg. Registering
// fails only for a second guard on one registry, a wiring mistake; the
// guard then still guards, its counter unexported.
func guard(check credCheck, reg prometheus.Registerer) *adminGuard {
	g, err := newAdminGuard(check, reg)
	if err != nil {
		g, _ = newAdminGuard(check, nil)
	}
	return g
}

func relayStatsOf(mfs []*dto.MetricFamily) RelayStats {
	st := RelayStats{Sessions: map[string]float64{}, Packets: map[string]float64{}, Drops: map[string]float64{}}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			v := m.GetCounter().GetValue() + m.GetGauge().GetValue()
			switch mf.GetName() {
			case "xtrunk_relay_sessions":
				st.Sessions[label(m, "state")] += v
			case "xtrunk_relay_xdp_packets_total":
				// by reason and verdict: forwarded ones are the XDP path,
				// dropped ones a drop by their reason (passed ones go on
				// to the kernel and the userspace path)
				switch label(m, "verdict") {
				case "forward":
					st.Packets["xdp"] += v
				case "drop":
					st.Drops["xdp_"+label(m, "reason")] += v
				}
			case "xtrunk_relay_userspace_packets_total":
				st.Packets["userspace"] += v
			case "xtrunk_relay_userspace_drops_total":
				st.Drops[label(m, "reason")] += v
			case "xtrunk_relay_port_pairs_in_use":
				st.PortPairsUsed += v
			case "xtrunk_relay_port_pairs":
				st.PortPairs += v
			}
		}
	}
	return st
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}
