package agent

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/procurement"
)

// warmRegistry returns a Registry whose caches already know n orders
// (client-i → order-i), as after each order's first request, and a
// TokenChecker that is a map lookup (token-i → client-i), the cheapest
// an app's check can be.
func warmRegistry(n int) (*Registry, TokenChecker) {
	r := &Registry{now: time.Now}
	now := time.Now()
	tokens := map[string]string{}
	for i := range n {
		id := strconv.Itoa(i)
		c := &Caller{Order: Order{ID: "order-" + id, AccountID: "acct-" + id, EntitlementID: "ent-" + id},
			Entitlement: marketplace.Entitlement{ID: "ent-" + id, State: procurement.EntitlementActive}}
		r.ident.putClient("client-"+id, c.Order.ID)
		r.ident.putCaller(c.Order.ID, c, now.Add(time.Hour), r.ident.generation())
		r.ident.putStatement(r.ident.statementKey(benchStatement(i)),
			verifiedStatement{orderID: c.Order.ID, accountID: c.Order.AccountID, exp: now.Add(time.Hour)}, now)
		tokens["token-"+id] = "client-" + id
	}
	return r, TokenCheckerFunc(func(_ context.Context, tok string) (string, error) {
		if c, ok := tokens[tok]; ok {
			return c, nil
		}
		return "", ErrInvalidToken
	})
}

// benchStatement is the i-th statement of warmRegistry, as long as a real
// one (about 1 KiB), since hashing it is the statement path's cost.
func benchStatement(i int) string { return strconv.Itoa(i) + "." + strings.Repeat("s", 1024) }

// BenchmarkIdentify measures per-request identification with a warm cache
// against a bare map lookup (the floor: what the TokenChecker alone costs
// in warmRegistry), in the same run. Each sub-benchmark also reports the
// median of individually timed calls (p50-ns).
func BenchmarkIdentify(b *testing.B) {
	const orders = 1000
	r, tc := warmRegistry(orders)
	ctx := context.Background()
	headers := make([]string, orders)
	statements := make([]string, orders)
	for i := range orders {
		headers[i] = "Bearer token-" + strconv.Itoa(i)
		statements[i] = benchStatement(i)
	}
	bare := map[string]*Caller{}
	for i := range orders {
		bare["token-"+strconv.Itoa(i)] = &Caller{}
	}
	// p50-ns is the median over batches of `batch` requests of the time
	// per request: timing calls one by one would measure the clock (about
	// a microsecond per read on some virtual machines), not the lookup.
	const batch = 64
	run := func(b *testing.B, f func(i int)) {
		b.Helper()
		var samples []time.Duration
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if i%batch == 0 {
				t0 := time.Now()
				for j := range batch {
					f(i + j)
				}
				samples = append(samples, time.Since(t0)/batch)
			}
			i++
		}
		b.StopTimer()
		slices.Sort(samples)
		if len(samples) > 0 {
			b.ReportMetric(float64(samples[len(samples)/2].Nanoseconds()), "p50-ns")
		}
	}
	b.Run("baseline-map-lookup", func(b *testing.B) {
		run(b, func(i int) {
			if bare["token-"+strconv.Itoa(i%orders)] == nil {
				b.Fatal("miss")
			}
		})
	})
	b.Run("warm-bearer", func(b *testing.B) {
		run(b, func(i int) {
			if _, err := r.identifyBearer(ctx, tc, headers[i%orders]); err != nil {
				b.Fatal(err)
			}
		})
	})
	b.Run("warm-statement", func(b *testing.B) {
		run(b, func(i int) {
			if _, err := r.IdentifyStatement(ctx, statements[i%orders]); err != nil {
				b.Fatal(err)
			}
		})
	})
	h := r.Middleware(tc)(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if _, ok := CallerFrom(req.Context()); !ok {
			b.Fatal("no caller")
		}
	}))
	b.Run("warm-middleware", func(b *testing.B) {
		req := httptest.NewRequest(http.MethodPost, "/", nil)
		w := httptest.NewRecorder()
		run(b, func(i int) {
			req.Header.Set("Authorization", headers[i%orders])
			h.ServeHTTP(w, req)
		})
	})
}
