package usage_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	mt "github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
	"github.com/gcpmarketplace/gcpmarketplace/usage"
	"github.com/gcpmarketplace/gcpmarketplace/usage/ledger"
)

// The source's totals are billed per window, with their labels, beside the
// metrics still recorded; Record refuses the source's metric; what the
// vendor's table gains after a window was sealed is not billed, and a
// resend after a lost response carries the sealed numbers under the same id.
func TestSourceTotalsArePersistedAtSealAndResentUnchanged(t *testing.T) {
	t.Parallel()
	e := newEnvMode(t, "source", 0, sqliteLedger(t, ""))
	t0 := e.clock.Now()
	c := e.consumer(time.Time{}, time.Time{})
	err := e.rep.Record(t.Context(), usage.Record{EntitlementID: c.EntitlementID, Metric: "requests", Int64: 1})
	require.ErrorIs(t, err, usage.ErrInvalid, "the source's metric is not recorded")

	e.use(c, "requests", 5, t0.Add(10*time.Minute), nil)
	e.use(c, "requests", 7, t0.Add(20*time.Minute), map[string]string{usage.LabelResourceName: "db-1"})
	e.use(c, "requests", 3, t0.Add(59*time.Minute), nil)
	e.record(c, "storage_gib", 2, t0.Add(30*time.Minute), nil)

	// The first report's response is lost: the window is Unknown, resent.
	e.srv.InjectFault(mt.Fault{Method: mt.MethodServicesReport, Kind: mt.FaultLostResponse})
	require.NoError(t, e.clock.Set(t0.Add(time.Hour+time.Minute)))
	e.flush()
	e.table.add(c.EntitlementID, "requests", 1000, t0.Add(30*time.Minute), nil) // written after the seal
	e.drain(time.Minute, 20)
	e.use(c, "requests", 11, t0.Add(70*time.Minute), nil)
	require.NoError(t, e.clock.Set(t0.Add(2*time.Hour+time.Minute)))
	e.drain(time.Minute, 20)

	assert.Equal(t, int64(5+7+3+11), billedOnce(e.srv, c.UsageReportingID, metricRequests), "the late 1000 is not billed")
	assert.Equal(t, int64(2), billedOnce(e.srv, c.UsageReportingID, metricStorage))
	assert.Positive(t, requireNoDoubleBilling(t, e.srv), "the lost response was resent with the same id")
	requireContiguous(t, e.srv, c.UsageReportingID, t0, t0.Add(2*time.Hour))
	var labelled bool
	for _, op := range reportsOf(e.srv, c.UsageReportingID) {
		if op.UserLabels[usage.LabelResourceName] == "db-1" {
			labelled = true
		}
	}
	assert.True(t, labelled, "the source's labels are the operation's userLabels")
}

// A source that fails holds its consumer's windows (others are sealed and
// reported), alerts with Held as the deadline nears and when it passes,
// and once it answers the windows are sealed and billed in full,
// contiguous, late but not lost.
func TestSourceErrorHoldsTheWindowWithinItsDeadline(t *testing.T) {
	t.Parallel()
	var got alerts
	var down sync.Map // entitlement id → true while its source fails
	table := &vendorTable{}
	src := usage.SourceFunc(func(ctx context.Context, q usage.SourceQuery) ([]usage.Total, error) {
		if _, ok := down.Load(q.EntitlementID); ok {
			return nil, errors.New("warehouse unavailable")
		}
		return table.Totals(ctx, q)
	})
	e := newEnv(t, nil, withSource(src, "requests"), withDeadlineAlert(15*time.Minute, got.add))
	e.table = table
	t0 := e.clock.Now()
	bad := e.consumer(time.Time{}, time.Time{})
	good := e.consumer(time.Time{}, time.Time{})
	e.use(bad, "requests", 40, t0.Add(5*time.Minute), nil)
	e.use(good, "requests", 2, t0.Add(5*time.Minute), nil)
	down.Store(bad.EntitlementID, true)

	for e.clock.Now().Before(t0.Add(2*time.Hour + 5*time.Minute)) { // past the deadline, t0 + 2h
		e.clock.Advance(time.Minute)
		e.flush()
	}
	assert.Empty(t, reportsOf(e.srv, bad.UsageReportingID), "nothing sealed while the source fails")
	ws, err := e.ledger.ListWindows(t.Context(), ledger.WindowQuery{EntitlementID: bad.EntitlementID})
	require.NoError(t, err)
	assert.Empty(t, ws)
	assert.Equal(t, int64(2), billedOnce(e.srv, good.UsageReportingID, metricRequests))
	held := got.held()
	require.Len(t, held, 2, "one alert as the deadline nears, one when it passes")
	assert.False(t, held[0].Missed)
	assert.True(t, held[1].Missed)
	assert.Equal(t, bad.EntitlementID, held[0].Window.EntitlementID)
	assert.True(t, held[0].Window.Start.Equal(t0) && held[0].Window.Deadline.Equal(t0.Add(2*time.Hour)))
	var se *usage.SourceError
	require.ErrorAs(t, held[0].Held, &se)
	assert.Equal(t, bad.EntitlementID, se.EntitlementID)

	down.Delete(bad.EntitlementID)
	e.clock.Advance(time.Minute)
	e.drain(time.Minute, 10)
	assert.Equal(t, int64(40), billedOnce(e.srv, bad.UsageReportingID, metricRequests))
	requireContiguous(t, e.srv, bad.UsageReportingID, t0, t0.Add(2*time.Hour))
	requireNoDoubleBilling(t, e.srv)
}

// What the source answers is validated: a negative or non-finite value, a
// metric that is not the source's, bad labels hold the window with an error
// wrapping ErrBadTotal; nothing is clamped or dropped, and the corrected
// answer is billed.
func TestSourceBadTotalsHoldTheWindow(t *testing.T) {
	t.Parallel()
	bad := map[string]usage.Total{
		"negative":       {Metric: "requests", Int64: -1},
		"double in int":  {Metric: "requests", Double: 1.5},
		"recorded":       {Metric: "storage_gib", Int64: 1},
		"undeclared":     {Metric: "cpu", Int64: 1},
		"bad label":      {Metric: "requests", Int64: 1, Labels: map[string]string{"Bad Key": "x"}},
		"other service":  {Metric: "other.example.com/requests", Int64: 1},
		"label too long": {Metric: "requests", Int64: 1, Labels: map[string]string{"k": strings.Repeat("a", 300)}},
	}
	for name, total := range bad {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var got alerts
			var mu sync.Mutex
			answer := []usage.Total{{Metric: "requests", Int64: 9}, total}
			src := usage.SourceFunc(func(context.Context, usage.SourceQuery) ([]usage.Total, error) {
				mu.Lock()
				defer mu.Unlock()
				return answer, nil
			})
			e := newEnv(t, nil, withSource(src, "requests"), withDeadlineAlert(time.Hour, got.add))
			t0 := e.clock.Now()
			c := e.consumer(time.Time{}, time.Time{})
			require.NoError(t, e.clock.Set(t0.Add(time.Hour+time.Minute)))
			e.flush()
			assert.Empty(t, reportsOf(e.srv, c.UsageReportingID))
			held := got.held()
			require.Len(t, held, 1)
			require.ErrorIs(t, held[0].Held, usage.ErrBadTotal)

			mu.Lock()
			answer = answer[:1]
			mu.Unlock()
			e.drain(time.Minute, 10)
			assert.Equal(t, int64(9), billedOnce(e.srv, c.UsageReportingID, metricRequests))
			requireNoDoubleBilling(t, e.srv)
		})
	}
}

// The source is never asked about time after the consumer's End, and the
// usage its table holds after End is not billed, also when the End arrives
// between the source read and the seal (the read is then repeated).
func TestSourceHonoursEnd(t *testing.T) {
	t.Parallel()
	for _, late := range []bool{false, true} {
		for store, ledger := range finalLedgers {
			name := store + "/known"
			if late {
				name = store + "/registered during the source read" // Seal rolls back, the read is repeated
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				testSourceHonoursEnd(t, ledger(t), late)
			})
		}
	}
}

func testSourceHonoursEnd(t *testing.T, ledger ledger.Ledger, late bool) {
	table := &vendorTable{}
	var e *env
	var c usage.Consumer
	var once sync.Once
	end := time.Time{}
	src := usage.SourceFunc(func(ctx context.Context, q usage.SourceQuery) ([]usage.Total, error) {
		if late {
			// The processor learns the cancellation while the
			// flush reads the source.
			once.Do(func() { e.cancel(&c, end) })
		}
		return table.Totals(ctx, q)
	})
	e = newEnv(t, ledger, withSource(src, "requests"))
	e.table = table
	t0 := e.clock.Now()
	c = e.consumer(time.Time{}, time.Time{})
	end = t0.Add(90 * time.Minute)
	e.use(c, "requests", 4, t0.Add(10*time.Minute), nil)
	e.use(c, "requests", 6, t0.Add(80*time.Minute), nil)
	e.use(c, "requests", 100, t0.Add(100*time.Minute), nil) // after End
	if !late {
		e.cancel(&c, end)
	}
	require.NoError(t, e.clock.Set(t0.Add(2*time.Hour+time.Minute)))
	e.drain(time.Minute, 10)
	assert.Equal(t, int64(10), billedOnce(e.srv, c.UsageReportingID, metricRequests))
	requireContiguous(t, e.srv, c.UsageReportingID, t0, end)
	table.mu.Lock()
	defer table.mu.Unlock()
	asked := table.queries
	if late {
		asked = asked[2:] // the read that learned of End, before it was known
	}
	for _, q := range asked {
		assert.False(t, q.End.After(end), "asked for [%v, %v) past End %v", q.Start, q.End, end)
	}
	requireNoDoubleBilling(t, e.srv)
}
