package usage_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gcpmarketplace/gcpmarketplace"
	"github.com/gcpmarketplace/gcpmarketplace/internal/testenv"
	mt "github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
	"github.com/gcpmarketplace/gcpmarketplace/procurement"
	"github.com/gcpmarketplace/gcpmarketplace/usage"
	"github.com/gcpmarketplace/gcpmarketplace/usage/ledger"
)

// confirmed makes e's reporter confirm ends with a Procurement client on
// the emulator, as a usage-only vendor configures it.
func (e *env) confirmed() {
	e.t.Helper()
	client := testenv.Client(e.t, e.srv, &procurement.Config{Runtime: gcpmarketplace.Runtime{Clock: e.clock.Now}, Retry: testenv.Retry()})
	e.rep.ConfirmEndsWith(client)
}

func (e *env) windows(c usage.Consumer) []usage.Window {
	e.t.Helper()
	ws, err := e.ledger.ListWindows(context.Background(), ledger.WindowQuery{EntitlementID: c.EntitlementID})
	require.NoError(e.t, err)
	return ws
}

// alerts collects a reporter's callbacks.
type alerts struct {
	mu       sync.Mutex
	deadline []usage.DeadlineAlert
	billed   []usage.BilledAfterEnd
}

func (a *alerts) options() []configFunc {
	return []configFunc{
		withDeadlineAlert(15*time.Minute, func(_ context.Context, d usage.DeadlineAlert) {
			a.mu.Lock()
			defer a.mu.Unlock()
			a.deadline = append(a.deadline, d)
		}),
		withBilledAfterEnd(func(_ context.Context, b usage.BilledAfterEnd) {
			a.mu.Lock()
			defer a.mu.Unlock()
			a.billed = append(a.billed, b)
		}),
	}
}

// add is a WithDeadlineAlert callback.
func (a *alerts) add(_ context.Context, d usage.DeadlineAlert) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.deadline = append(a.deadline, d)
}

// held returns the deadline alerts about windows that could not be sealed.
func (a *alerts) held() []usage.DeadlineAlert {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []usage.DeadlineAlert
	for _, d := range a.deadline {
		if d.Held != nil {
			out = append(out, d)
		}
	}
	return out
}

func (a *alerts) snapshot() ([]usage.DeadlineAlert, []usage.BilledAfterEnd) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]usage.DeadlineAlert(nil), a.deadline...), append([]usage.BilledAfterEnd(nil), a.billed...)
}

// A usage-only reporter confirming with Procurement never bills past a
// cancellation nobody registered: the customer cancels at 10:20, 400 units
// recorded at 10:30 are accepted, and the flush at 11:02 learns the end
// from Procurement and bills only the 10 units before it; a live consumer
// is billed as usual.
func TestEndConfirmedBeforeSealing(t *testing.T) {
	t.Parallel()
	for name, newLedger := range finalLedgers {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var al alerts
			e := newEnv(t, newLedger(t), al.options()...)
			e.confirmed()
			t0 := e.clock.Now()
			gone, live := e.consumer(time.Time{}, time.Time{}), e.consumer(time.Time{}, time.Time{})
			e.record(gone, "requests", 10, t0.Add(10*time.Minute), nil)
			e.record(live, "requests", 7, t0.Add(10*time.Minute), nil)
			require.NoError(t, e.clock.Set(t0.Add(20*time.Minute)))
			require.NoError(t, e.srv.Cancel(context.Background(), gone.EntitlementID, true))
			end := e.clock.Now()
			e.record(gone, "requests", 400, t0.Add(30*time.Minute), nil)

			require.NoError(t, e.clock.Set(t0.Add(62*time.Minute)))
			e.drain(time.Minute, 5)

			assert.Equal(t, int64(10), billedOnce(e.srv, gone.UsageReportingID, metricRequests))
			assert.Equal(t, int64(7), billedOnce(e.srv, live.UsageReportingID, metricRequests))
			requireNoDoubleBilling(t, e.srv)
			st, err := e.ledger.GetConsumer(context.Background(), gone.EntitlementID)
			require.NoError(t, err)
			assert.WithinDuration(t, end, st.End, time.Millisecond, "the end Procurement reports is recorded")
			var rejected int64
			for _, w := range e.windows(gone) {
				if w.State == usage.StateRejected {
					rejected += w.Values[0].Int64
				}
			}
			assert.Equal(t, int64(400), rejected)
			require.ErrorIs(t, e.rep.Record(context.Background(), usage.Record{EntitlementID: gone.EntitlementID, Metric: "requests", Int64: 1}), usage.ErrAfterEnd)
			_, billed := al.snapshot()
			assert.Empty(t, billed)
		})
	}
}

// If Procurement cannot be read, the window waits rather than be sealed
// blind, the operator is alerted as its deadline nears and passes, and
// once Procurement answers the window is sealed up to the end it reports.
func TestUnconfirmedWindowWaits(t *testing.T) {
	t.Parallel()
	var al alerts
	e := newEnv(t, nil, al.options()...)
	e.confirmed()
	t0 := e.clock.Now()
	c := e.consumer(time.Time{}, time.Time{})
	e.record(c, "requests", 10, t0.Add(10*time.Minute), nil)
	e.srv.InjectFault(mt.Fault{Method: mt.MethodEntitlementsList, Kind: mt.FaultStatus, Status: 503, Times: -1})

	for _, at := range []time.Duration{62 * time.Minute, 110 * time.Minute, 121 * time.Minute} {
		require.NoError(t, e.clock.Set(t0.Add(at)))
		e.flush()
		require.Empty(t, e.windows(c), "nothing sealed at +%v while Procurement is unreadable", at)
	}
	deadline, _ := al.snapshot()
	require.Len(t, deadline, 2, "near the deadline, then past it")
	assert.False(t, deadline[0].Missed)
	assert.True(t, deadline[1].Missed)
	assert.Equal(t, c.EntitlementID, deadline[0].Window.EntitlementID)
	assert.True(t, deadline[0].Window.Start.Equal(t0) && deadline[0].Window.End.Equal(t0.Add(time.Hour)))
	assert.Contains(t, deadline[0].Window.Reason, "cannot be confirmed")

	require.NoError(t, e.srv.Cancel(context.Background(), c.EntitlementID, true))
	e.srv.ClearFaults()
	e.drain(time.Minute, 5)
	assert.Equal(t, int64(10), billedOnce(e.srv, c.UsageReportingID, metricRequests))
	requireNoDoubleBilling(t, e.srv)
}

// holdFunc is a SealHolder.
type holdFunc func(string) bool

func (f holdFunc) HoldSeal(id string) bool { return f(id) }

// A SealHolder keeps its consumers unsealed until it lets go; the others
// are sealed as usual.
func TestSealHolderHolds(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	t0 := e.clock.Now()
	held, free := e.consumer(time.Time{}, time.Time{}), e.consumer(time.Time{}, time.Time{})
	var mu sync.Mutex
	holding := true
	e.rep.HoldSealsWith(holdFunc(func(id string) bool {
		mu.Lock()
		defer mu.Unlock()
		return holding && id == held.EntitlementID
	}))
	e.record(held, "requests", 3, t0.Add(time.Minute), nil)
	e.record(free, "requests", 4, t0.Add(time.Minute), nil)
	require.NoError(t, e.clock.Set(t0.Add(62*time.Minute)))
	e.flush()
	assert.Empty(t, e.windows(held))
	assert.Len(t, e.windows(free), 1)

	mu.Lock()
	holding = false
	mu.Unlock()
	e.drain(time.Minute, 5)
	assert.Equal(t, int64(3), billedOnce(e.srv, held.UsageReportingID, metricRequests))
	assert.Equal(t, int64(4), billedOnce(e.srv, free.UsageReportingID, metricRequests))
}

// An end registered after windows past it were reported raises
// BilledAfterEnd, once, with the operation ids and what they billed.
func TestBilledAfterEnd(t *testing.T) {
	t.Parallel()
	var al alerts
	e := newEnv(t, nil, al.options()...)
	t0 := e.clock.Now()
	c, idle := e.consumer(time.Time{}, time.Time{}), e.consumer(time.Time{}, time.Time{})
	e.record(c, "requests", 10, t0.Add(10*time.Minute), nil)
	e.record(c, "requests", 400, t0.Add(30*time.Minute), nil)
	require.NoError(t, e.clock.Set(t0.Add(62*time.Minute)))
	e.drain(time.Minute, 5)                 // no confirmer: sealed blind
	e.cancel(&idle, t0.Add(20*time.Minute)) // billed nothing: owed nothing
	require.Equal(t, int64(410), billedOnce(e.srv, c.UsageReportingID, metricRequests))
	ws := e.windows(c)
	require.Len(t, ws, 1)

	e.cancel(&c, t0.Add(20*time.Minute))
	e.cancel(&c, t0.Add(20*time.Minute)) // a redelivered registration raises nothing more
	_, billed := al.snapshot()
	require.Len(t, billed, 1)
	assert.Equal(t, c.EntitlementID, billed[0].EntitlementID)
	assert.True(t, billed[0].End.Equal(t0.Add(20*time.Minute)))
	assert.Equal(t, []string{ws[0].OperationID}, billed[0].OperationIDs)
	assert.Equal(t, []usage.MetricValue{{Metric: metricRequests, Kind: usage.Int64, Int64: 410}}, billed[0].Values)
}

// A deleted entitlement's end is no longer readable: its window waits for
// the end to be registered rather than guess it, then bills what came
// before it.
func TestDeletedEntitlementWaitsForItsEnd(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.confirmed()
	t0 := e.clock.Now()
	c := e.consumer(time.Time{}, time.Time{})
	e.record(c, "requests", 10, t0.Add(10*time.Minute), nil)
	require.NoError(t, e.clock.Set(t0.Add(20*time.Minute)))
	require.NoError(t, e.srv.Cancel(context.Background(), c.EntitlementID, true))
	require.NoError(t, e.srv.DeleteEntitlement(context.Background(), c.EntitlementID))
	end := e.clock.Now()
	e.record(c, "requests", 400, t0.Add(30*time.Minute), nil)
	require.NoError(t, e.clock.Set(t0.Add(62*time.Minute)))
	e.flush()
	e.flush()
	require.Empty(t, e.windows(c), "held until its end is known")

	e.cancel(&c, end) // the account flow (or the Processor) learns of the deletion
	e.drain(time.Minute, 5)
	assert.Equal(t, int64(10), billedOnce(e.srv, c.UsageReportingID, metricRequests))
	requireNoDoubleBilling(t, e.srv)
}
