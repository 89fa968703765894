package store_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/xtrunk/xtrunk/control/store"
	"github.com/xtrunk/xtrunk/control/store/storetest"
)

// BenchmarkStore measures the store alone (no HTTP): a trunk create is one
// serialized, durable write transaction with its change-feed row.
//
//	go test -run '^$' -bench BenchmarkStore ./control/store/
func BenchmarkStore(b *testing.B) {
	for _, backend := range storetest.Backends {
		b.Run(backend, func(b *testing.B) {
			s := storetest.Open(b, backend, opts)
			ctx := context.Background()
			a, _, err := s.Bootstrap(ctx, "", "", "", nil)
			if err != nil {
				b.Fatal(err)
			}
			n := 0
			create := func() error {
				n++
				t := store.NewTrunk(a.Sid)
				t.DomainName = fmt.Sprintf("s%d.pstn.example.net", n)
				_, err := s.CreateTrunk(ctx, t)
				return err
			}
			b.Run("CreateTrunk", func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					if err := create(); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "writes/s")
			})
			for n < 1000 {
				if err := create(); err != nil {
					b.Fatal(err)
				}
			}
			b.Run("ListTrunks50", func(b *testing.B) {
				p := store.Page{Size: 50}
				for i := 0; i < b.N; i++ {
					items, next, err := s.ListTrunks(ctx, a.Sid, p)
					if err != nil || len(items) != 50 {
						b.Fatal(len(items), err)
					}
					p.Token = next
					if i%10 == 9 {
						p.Token = ""
					}
				}
				b.ReportMetric(float64(b.N*50)/b.Elapsed().Seconds(), "items/s")
			})
		})
	}
}
