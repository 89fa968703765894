package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// apiMetrics are the API's Prometheus series, registered by WithRegistry:
//
//	xtrunk_api_requests_total{route,method,status}: requests answered, by
//	  route template ("/v1/Trunks/TK*"; "unmatched" for a path no route
//	  has — never the path itself, which holds sids), method and HTTP
//	  status.
//	xtrunk_api_request_seconds{route}: from the request read to the
//	  handler's return.
//	xtrunk_api_store_errors_total: requests that failed on an internal
//	  error — the store's (database down, disk full, constraint broken),
//	  answered 500.
type apiMetrics struct {
	requests  *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	storeErrs prometheus.Counter
	// writesLimited counts subaccount writes refused by the write limit.
	writesLimited prometheus.Counter
}

// WithRegistry registers the API's metrics in reg.
func WithRegistry(reg prometheus.Registerer) Option {
	return func(s *Server) {
		m := &apiMetrics{
			requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "xtrunk_api_requests_total",
				Help: "API requests answered, by route template, method and HTTP status."}, []string{"route", "method", "status"}),
			latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "xtrunk_api_request_seconds",
				Help: "API request latency, by route template.", Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}}, []string{"route"}),
			storeErrs: prometheus.NewCounter(prometheus.CounterOpts{Name: "xtrunk_api_store_errors_total",
				Help: "API requests that failed on an internal (store) error."}),
		}
		m.writesLimited = prometheus.NewCounter(prometheus.CounterOpts{Name: "xtrunk_api_tenant_writes_limited_total",
			Help: "Subaccount writes (POST, DELETE) refused with 429 by the per-account write limit (--tenant-write-rate, --tenant-write-burst)."})
		reg.MustRegister(m.requests, m.latency, m.storeErrs, m.writesLimited)
		s.metrics = m
	}
}

// observe counts one request.
func (s *Server) observe(hr *http.Request, status int, took time.Duration) {
	if s.metrics == nil {
		return
	}
	tmpl := "unmatched"
	if rt, _, ok := s.match(hr.URL.Path); ok {
		tmpl = rt.tmpl
	}
	method := hr.Method
	switch method {
	case http.MethodGet, http.MethodPost, http.MethodDelete, http.MethodPut, http.MethodHead, http.MethodOptions, http.MethodPatch:
	default:
		method = "other"
	}
	if status == 0 {
		status = http.StatusOK
	}
	s.metrics.requests.WithLabelValues(tmpl, method, strconv.Itoa(status)).Inc()
	s.metrics.latency.WithLabelValues(tmpl).Observe(took.Seconds())
}

// writeLimited counts a subaccount write refused by the write limit.
func (s *Server) writeLimited() {
	if s.metrics != nil {
		s.metrics.writesLimited.Inc()
	}
}

// storeFailed counts an internal error.
func (s *Server) storeFailed() {
	if s.metrics != nil {
		s.metrics.storeErrs.Inc()
	}
}
