package signalling

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// CNAM (REQUIREMENTS §3.9): on a trunk with CnamLookupEnabled, a US or
// Canadian caller's name is looked up at --cnam-url (Twilio Lookup v2's
// answer) and put in the display name of From, Contact and
// P-Asserted-Identity toward the PBX. The lookup runs while the relay
// prepares the call's media and never holds the call longer than
// --cnam-timeout from its start; names (and the absence of one) are
// cached.

// Results of a CNAM lookup, the result label of
// xtrunk_sip_cnam_lookups_total.
const (
	cnamHit     = "hit"     // the source gave a name
	cnamMiss    = "miss"    // the source answered without a name (or 404)
	cnamCached  = "cached"  // answered from the cache (a name or its absence)
	cnamTimeout = "timeout" // no answer within --cnam-timeout
	cnamError   = "error"   // HTTP error, bad JSON, unreachable source
)

// Defaults of the CNAM flags.
const (
	defaultCNAMTimeout   = 500 * time.Millisecond
	defaultCNAMTTL       = 24 * time.Hour
	defaultCNAMCacheSize = 100000
	// maxCNAMNegativeTTL bounds how long "no name" is remembered: a
	// number may get a CNAM listing, and a miss costs only a lookup.
	maxCNAMNegativeTTL = time.Hour
	// maxCNAMBody bounds the Lookup answer read.
	maxCNAMBody = 64 << 10
)

// validateCNAM checks the CNAM settings when a URL is set: an http(s)
// URL template with {number}, a positive timeout, a TTL and cache size
// not negative.
func (c Config) validateCNAM() error {
	if c.CNAMURL == "" {
		return nil // no lookups: the other settings are unused
	}
	if c.CNAMTimeout <= 0 || c.CNAMTTL < 0 || c.CNAMCacheSize < 0 {
		return fmt.Errorf("%w: cnam_timeout must be positive, cnam_ttl and cnam_cache_size not negative", ErrConfig)
	}
	if !strings.Contains(c.CNAMURL, "{number}") {
		return fmt.Errorf("%w: cnam_url has no {number}", ErrConfig)
	}
	u, err := url.Parse(cnamURL(c.CNAMURL, "+12125550100"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%w: cnam_url is not an http(s) URL", ErrConfig)
	}
	return nil
}

// cnamURL is the lookup URL for number: {number} replaced by the number,
// escaped for a path or a query alike (the + of E.164 becomes %2B).
func cnamURL(tmpl, number string) string {
	return strings.ReplaceAll(tmpl, "{number}", url.QueryEscape(number))
}

// cnamClient looks caller names up for the calls, one request per
// number at a time, with an LRU cache.
type cnamClient struct {
	life    context.Context // the server's: lookups end with it
	tmpl    string
	timeout time.Duration
	ttl     time.Duration
	negTTL  time.Duration
	hc      *http.Client
	log     zerolog.Logger
	// lookups is xtrunk_sip_cnam_lookups_total{trunk,result}: CNAM
	// lookups for calls, by trunk (sid) and result (hit, miss, cached,
	// timeout, error), counted whether or not a name was found.
	lookups *prometheus.CounterVec
	cache   *cnamCache

	mu       sync.Mutex
	inflight map[string]*cnamFlight
}

// cnamFlight is one request in progress, which lookups of the same
// number wait for instead of sending their own.
type cnamFlight struct {
	done   chan struct{}
	name   string
	result string
}

// newCNAMClient is nil when cfg has no --cnam-url (no lookups at all).
func newCNAMClient(life context.Context, cfg Config, reg prometheus.Registerer, log zerolog.Logger) *cnamClient {
	if cfg.CNAMURL == "" {
		return nil
	}
	c := &cnamClient{life: life, tmpl: cfg.CNAMURL, timeout: cfg.CNAMTimeout, ttl: cfg.CNAMTTL, negTTL: min(cfg.CNAMTTL, maxCNAMNegativeTTL),
		hc:  &http.Client{Timeout: cfg.CNAMTimeout, Transport: http.DefaultTransport.(*http.Transport).Clone()},
		log: log, inflight: map[string]*cnamFlight{}, cache: newCNAMCache(cfg.CNAMCacheSize)}
	c.lookups = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "xtrunk_sip_cnam_lookups_total",
		Help: "CNAM lookups for calls, by trunk and result (hit, miss, cached, timeout, error)."}, []string{"trunk", "result"})
	reg.MustRegister(c.lookups)
	return c
}

// lookup returns number's caller name ("" for none), within the
// client's timeout from now. It counts one lookup for trunk.
func (c *cnamClient) lookup(ctx context.Context, trunk, number string) string {
	if name, ok := c.cache.get(number, time.Now()); ok {
		c.lookups.WithLabelValues(trunk, cnamCached).Inc()
		return name
	}
	c.mu.Lock()
	f, joined := c.inflight[number]
	if !joined {
		f = &cnamFlight{done: make(chan struct{})}
		c.inflight[number] = f
		go c.fetch(number, f)
	}
	c.mu.Unlock()
	timer := time.NewTimer(c.timeout)
	defer timer.Stop()
	select {
	case <-f.done:
	case <-timer.C:
		c.lookups.WithLabelValues(trunk, cnamTimeout).Inc()
		return ""
	case <-ctx.Done():
		return "" // the call ended; nothing to count for it
	}
	result := f.result
	if joined && (result == cnamHit || result == cnamMiss) {
		result = cnamCached // answered by another call's request
	}
	c.lookups.WithLabelValues(trunk, result).Inc()
	return f.name
}

// fetch makes the request of flight f, caches its answer and releases
// the lookups waiting for it. It is bounded by the client's timeout (an
// answer that comes later is not waited for by anyone).
func (c *cnamClient) fetch(number string, f *cnamFlight) {
	defer func() {
		c.mu.Lock()
		delete(c.inflight, number)
		c.mu.Unlock()
		close(f.done)
	}()
	ctx, cancel := context.WithTimeout(c.life, c.timeout)
	defer cancel()
	name, err := c.get(ctx, number)
	switch {
	case errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil:
		f.result = cnamTimeout
	case err != nil:
		f.result = cnamError
		c.log.Warn().Err(err).Msg("CNAM lookup failed")
	case name == "":
		f.result = cnamMiss
		c.cache.put(number, "", time.Now().Add(c.negTTL))
	default:
		f.result, f.name = cnamHit, name
		c.cache.put(number, name, time.Now().Add(c.ttl))
	}
}

// get asks the source for number's name: 200 with a Lookup v2 body, or
// 404 (Twilio's answer for a number it does not know) for none.
func (c *cnamClient) get(ctx context.Context, number string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, cnamURL(c.tmpl, number), nil)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrCNAM, redactURLError(err))
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "xtrunk")
	res, err := c.hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) && ue.Timeout() {
			return "", fmt.Errorf("%w: %w", ErrCNAM, context.DeadlineExceeded)
		}
		return "", fmt.Errorf("%w: %w", ErrCNAM, redactURLError(err))
	}
	defer res.Body.Close()
	switch {
	case res.StatusCode == http.StatusNotFound:
		return "", nil
	case res.StatusCode != http.StatusOK:
		return "", fmt.Errorf("%w: HTTP %d", ErrCNAM, res.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(res.Body, maxCNAMBody))
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrCNAM, err)
	}
	return parseLookupV2(body)
}

// redactURLError drops the URL (which may carry the source's
// credentials) from a client error, keeping its cause.
func redactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// startCNAM starts the caller's lookup when the call's trunk asks for
// CNAM and the caller is a US/Canadian number; the returned wait (call it
// from the call's goroutine before dialling) sets the name for the B-leg.
func (c *call) startCNAM() (wait func()) {
	cn := c.s.cnam
	if cn == nil || c.p.customerIsA() || !c.p.trunk.CnamLookupEnabled || !isUSCanadaNumber(c.p.from) {
		return func() {}
	}
	ch := make(chan string, 1)
	go func() { ch <- cn.lookup(c.ctx, c.p.trunk.Sid, c.p.from) }()
	return func() {
		select {
		case name := <-ch:
			if name != "" {
				c.log.Debug().Str("caller_name", name).Msg("CNAM")
			}
			c.mu.Lock()
			c.cnamName = name
			c.mu.Unlock()
		case <-c.ctx.Done():
		}
	}
}

// callerName is the caller's CNAM name ("" for none).
func (c *call) callerName() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cnamName
}

// cnamCache is an LRU of numbers' names (or their absence, name "") with
// an expiry each; at its size the least recently used goes.
type cnamCache struct {
	mu    sync.Mutex
	size  int
	ll    *list.List
	items map[string]*list.Element
}

type cnamEntry struct {
	number, name string
	exp          time.Time
}

// newCNAMCache makes a cache of size entries (0: no caching).
func newCNAMCache(size int) *cnamCache {
	return &cnamCache{size: size, ll: list.New(), items: map[string]*list.Element{}}
}

func (c *cnamCache) get(number string, now time.Time) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.items[number]
	if !ok {
		return "", false
	}
	ent := e.Value.(*cnamEntry)
	if !now.Before(ent.exp) {
		c.ll.Remove(e)
		delete(c.items, number)
		return "", false
	}
	c.ll.MoveToFront(e)
	return ent.name, true
}

func (c *cnamCache) put(number, name string, exp time.Time) {
	if c.size <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[number]; ok {
		ent := e.Value.(*cnamEntry)
		ent.name, ent.exp = name, exp
		c.ll.MoveToFront(e)
		return
	}
	c.items[number] = c.ll.PushFront(&cnamEntry{number: number, name: name, exp: exp})
	for c.ll.Len() > c.size {
		last := c.ll.Back()
		c.ll.Remove(last)
		delete(c.items, last.Value.(*cnamEntry).number)
	}
}

func (c *cnamCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ll.Len()
}
