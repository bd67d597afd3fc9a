package usage_test

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	mt "github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
	"github.com/gcpmarketplace/gcpmarketplace/usage"
	"github.com/gcpmarketplace/gcpmarketplace/usage/ledger"
)

// TestFaultsNeverLoseOrDoubleBill runs 50 consumers for 10 hours (500
// windows with usage, small requests so that there are many calls) while
// check and report fail with 503, 429, latency beyond the RPC timeout and
// lost responses. Every unit is billed exactly once per operation id, and
// no two operations overlap. It runs with Record and with a usage source
// that itself fails 10% of its calls.
func TestFaultsNeverLoseOrDoubleBill(t *testing.T) {
	t.Parallel()
	for _, mode := range usageModes {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			testFaultsNeverLoseOrDoubleBill(t, mode)
		})
	}
}

func testFaultsNeverLoseOrDoubleBill(t *testing.T, mode string) {
	e := newEnvMode(t, mode, 0.1, sqliteLedger(t, ""), withMaxRequestBytes(4000), withRPCTimeout(100*time.Millisecond))
	for _, m := range []mt.Method{mt.MethodServicesCheck, mt.MethodServicesReport} {
		e.srv.InjectFault(mt.Fault{Method: m, Kind: mt.FaultStatus, Status: 503, Times: -1, Rate: 0.08})
		e.srv.InjectFault(mt.Fault{Method: m, Kind: mt.FaultRateLimit, Times: -1, Rate: 0.05})
		e.srv.InjectFault(mt.Fault{Method: m, Kind: mt.FaultLatency, Latency: 150 * time.Millisecond, Times: -1, Rate: 0.02})
		e.srv.InjectFault(mt.Fault{Method: m, Kind: mt.FaultLostResponse, Times: -1, Rate: 0.08})
	}
	rng := rand.New(rand.NewPCG(7, 7))
	var cs []usage.Consumer
	for range 50 {
		cs = append(cs, e.consumer(time.Time{}, time.Time{}))
	}
	want := map[string]int64{}
	for range 10 {
		hour := e.clock.Now()
		for _, c := range cs {
			v := 1 + rng.Int64N(1000)
			e.use(c, "requests", v, hour.Add(time.Duration(rng.IntN(3000))*time.Millisecond), nil)
			want[c.UsageReportingID] += v
		}
		for e.clock.Now().Before(hour.Add(time.Hour)) {
			e.clock.Advance(5 * time.Minute) // Run's cadence, coarser
			e.flush()
		}
	}
	e.clock.Advance(2 * time.Minute) // close the last hour
	e.drain(30*time.Second, 200)
	expired, err := e.ledger.ListWindows(t.Context(), ledger.WindowQuery{States: []usage.WindowState{usage.StateExpired, usage.StateRejected}})
	require.NoError(t, err)
	require.Empty(t, expired)

	dups := requireNoDoubleBilling(t, e.srv)
	for _, c := range cs {
		assert.Equal(t, want[c.UsageReportingID], billedOnce(e.srv, c.UsageReportingID, metricRequests))
		if e.table != nil {
			assert.Equal(t, e.table.total(c.EntitlementID, "requests"), billedOnce(e.srv, c.UsageReportingID, metricRequests), "billed = the source's totals")
		}
	}
	windows, err := e.ledger.ListWindows(t.Context(), ledger.WindowQuery{States: []usage.WindowState{usage.StateReported}})
	require.NoError(t, err)
	assert.GreaterOrEqual(t, len(windows), 500)
	t.Logf("%d windows reported; %d report calls, %d check calls reached the emulator; %d same-id resends accepted after lost responses",
		len(windows), e.srv.Calls(mt.MethodServicesReport), e.srv.Calls(mt.MethodServicesCheck), dups)
}
