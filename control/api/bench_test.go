package api_test

import (
	"fmt"
	"net/http"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xtrunk/xtrunk/control/store"
	"github.com/xtrunk/xtrunk/control/store/storetest"
)

// BenchmarkAPI measures create, fetch and list throughput through the HTTP
// API (loopback, keep-alive) on both backends:
//
//	go test -run '^$' -bench BenchmarkAPI ./control/api/
func BenchmarkAPI(b *testing.B) {
	for _, backend := range storetest.Backends {
		b.Run(backend, func(b *testing.B) {
			e := newEnv(b, backend)
			c := &apiClient{base: e.srv.URL, sid: e.main.Sid, token: e.main.AuthToken,
				hc: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
			var seq atomic.Int64
			create := func(b *testing.B) {
				n := seq.Add(1)
				code, m, err := c.do(http.MethodPost, "/v1/Trunks", url.Values{"FriendlyName": {fmt.Sprint("bench ", n)}, "DomainName": {fmt.Sprintf("b%d.pstn.example.net", n)}})
				if err != nil || code != 201 {
					b.Fatal(code, m, err)
				}
			}
			perSec := func(b *testing.B) { b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s") }
			b.Run("CreateTrunk", func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					create(b)
				}
				perSec(b)
			})
			b.Run("CreateTrunk8Clients", func(b *testing.B) {
				b.SetParallelism(4) // 4 × GOMAXPROCS(2) = 8 concurrent clients
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						create(b)
					}
				})
				perSec(b)
			})
			for seq.Load() < 1000 {
				create(b)
			}
			tr, _, err := e.st.ListTrunks(ctxT(b), e.main.Sid, store.Page{Size: 1})
			if err != nil {
				b.Fatal(err)
			}
			b.Run("FetchTrunk", func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					if code, _, err := c.do(http.MethodGet, "/v1/Trunks/"+tr[0].Sid, nil); err != nil || code != 200 {
						b.Fatal(code, err)
					}
				}
				perSec(b)
			})
			b.Run("ListTrunks50", func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					code, m, err := c.do(http.MethodGet, fmt.Sprintf("/v1/Trunks?PageSize=50&Page=%d", i%10), nil)
					if err != nil || code != 200 || len(m["trunks"].([]any)) != 50 {
						b.Fatal(code, err)
					}
				}
				b.ReportMetric(float64(b.N*50)/b.Elapsed().Seconds(), "items/s")
				perSec(b)
			})
		})
	}
}
