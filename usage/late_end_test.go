package usage_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gcpmarketplace/gcpmarketplace"
	mt "github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
	"github.com/gcpmarketplace/gcpmarketplace/procurement"
	"github.com/gcpmarketplace/gcpmarketplace/usage"
)

// An End confirmed by Procurement (and sealed through) is moved
// later by a subsequent Register (what the marketplace Processor does when
// it handles a cancellation message after the entitlement was deleted:
// End = prev.CancelTime, zero, so End = now). The reporter then accepts
// and billed usage between the real end and the new End. An End in
// effect is now kept.
func TestConfirmedEndNotMovedLaterByRegister(t *testing.T) {
	for _, mode := range usageModes {
		t.Run(mode, func(t *testing.T) {
			e := newEnvMode(t, mode, 0, nil)
			e.confirmed()
			ctx := context.Background()
			t0 := e.clock.Now()
			c := e.consumer(time.Time{}, time.Time{})
			e.use(c, "requests", 10, t0.Add(10*time.Minute), nil)
			require.NoError(t, e.clock.Set(t0.Add(20*time.Minute)))
			require.NoError(t, e.srv.Cancel(ctx, c.EntitlementID, true))
			end := e.clock.Now()

			// The flush at +62m learns the end from Procurement: bills 10.
			require.NoError(t, e.clock.Set(t0.Add(62*time.Minute)))
			e.drain(time.Minute, 5)
			require.Equal(t, int64(10), billedOnce(e.srv, c.UsageReportingID, metricRequests))
			st, err := e.ledger.GetConsumer(ctx, c.EntitlementID)
			require.NoError(t, err)
			require.WithinDuration(t, end, st.End, time.Millisecond)

			// Entitlement deleted; the processor, which never saw the
			// cancellation, registers End = now.
			require.NoError(t, e.srv.DeleteEntitlement(ctx, c.EntitlementID))
			require.NoError(t, e.clock.Set(t0.Add(70*time.Minute)))
			late := c
			late.End = e.clock.Now()
			require.NoError(t, e.rep.Register(ctx, late))

			// Usage after the real end (the vendor kept serving / its table has it).
			if e.table != nil {
				e.table.add(c.EntitlementID, metricRequests, 400, t0.Add(30*time.Minute), nil)
			} else {
				err = e.rep.Record(ctx, usage.Record{EntitlementID: c.EntitlementID, Metric: "requests", Int64: 400, Time: t0.Add(30 * time.Minute)})
				assert.ErrorIs(t, err, usage.ErrAfterEnd, "usage after the confirmed end must be refused")
			}
			require.NoError(t, e.clock.Set(t0.Add(75*time.Minute)))
			e.drain(time.Minute, 5)
			assert.Equal(t, int64(10), billedOnce(e.srv, c.UsageReportingID, metricRequests), "billed past the confirmed cancellation")
		})
	}
}

// The same through a cancellation at the end of the term: the
// reporter confirms End = offerEndTime while the entitlement is still
// PENDING_CANCELLATION; Google flips it to CANCELLED later, and the
// Processor registers End = updateTime (prev.CancelTime is zero for a
// pending cancellation): End moved later and usage in between was billed.
func TestTermEndCancellationNotMovedLater(t *testing.T) {
	e := newEnv(t, nil)
	e.confirmed()
	ctx := context.Background()
	t0 := e.clock.Now()
	id, err := e.srv.Purchase(ctx, mt.PurchaseParams{UsageBased: true, OfferEndTime: e.clock.Now().Add(3*time.Hour + 30*time.Minute)})
	require.NoError(t, err)
	pc0, err := procurement.NewClientWithConfig(ctx, e.srv.ProviderID(), &procurement.Config{Runtime: gcpmarketplace.Runtime{Clock: e.clock.Now}}, e.srv.ClientOptions()...)
	require.NoError(t, err)
	ent0, _ := e.srv.Entitlement(id)
	_, err = pc0.ApproveAccountSignup(ctx, ent0.AccountID)
	require.NoError(t, err)
	_, err = pc0.ApproveEntitlement(ctx, id, nil)
	require.NoError(t, err)
	ent, _ := e.srv.Entitlement(id)
	c := usage.Consumer{EntitlementID: id, UsageReportingID: ent.UsageReportingID}
	require.NoError(t, e.rep.Register(ctx, c))
	offerEnd := ent.OfferEndTime
	require.False(t, offerEnd.IsZero(), "purchase has an offer end")
	t.Logf("t0 %v offerEnd %v", t0, offerEnd)
	require.NoError(t, e.srv.Cancel(ctx, c.EntitlementID, false))
	// the processor registers the pending cancellation's end
	pc := c
	pc.End = offerEnd
	require.NoError(t, e.rep.Register(ctx, pc))
	e.record(c, "requests", 10, offerEnd.Add(-10*time.Minute), nil)
	require.NoError(t, e.clock.Set(offerEnd.Add(2*time.Minute)))
	e.drain(time.Minute, 60)
	// Google flips it to CANCELLED 40 minutes after the term's end.
	require.NoError(t, e.clock.Set(offerEnd.Add(40*time.Minute)))
	require.NoError(t, e.srv.EndTerm(ctx, c.EntitlementID))
	ent, _ = e.srv.Entitlement(c.EntitlementID)
	cc := c
	cc.End = ent.UpdateTime // registerUsage: CANCELLED, prev.CancelTime zero
	require.NoError(t, e.rep.Register(ctx, cc))
	err = e.rep.Record(ctx, usage.Record{EntitlementID: c.EntitlementID, Metric: "requests", Int64: 400, Time: offerEnd.Add(20 * time.Minute)})
	assert.ErrorIs(t, err, usage.ErrAfterEnd)
	require.NoError(t, e.clock.Set(offerEnd.Add(2*time.Hour)))
	e.drain(time.Minute, 5)
	assert.Equal(t, int64(10), billedOnce(e.srv, c.UsageReportingID, metricRequests))
}

// An entitlement with a registered future End (a pending
// cancellation at its term end) is cancelled and deleted at once (the
// customer closes the account: DeleteAccount). ConfirmEnds answers the zero
// time (404), prepareSeal "keeps the registered End" although it does not
// bound the window being sealed, and the usage after the deletion was
// billed. The consumer is now held until an End in effect is registered.
func TestDeletedWithFutureEndHeld(t *testing.T) {
	e := newEnv(t, nil)
	e.confirmed()
	ctx := context.Background()
	t0 := e.clock.Now()
	c := e.consumer(time.Time{}, time.Time{})
	c.End = t0.Add(30 * 24 * time.Hour) // pending cancellation at the term end
	require.NoError(t, e.rep.Register(ctx, c))
	e.record(c, "requests", 10, t0.Add(10*time.Minute), nil)
	require.NoError(t, e.clock.Set(t0.Add(20*time.Minute)))
	ent, _ := e.srv.Entitlement(c.EntitlementID)
	require.NoError(t, e.srv.DeleteAccount(ctx, ent.AccountID))
	e.record(c, "requests", 400, t0.Add(30*time.Minute), nil)
	require.NoError(t, e.clock.Set(t0.Add(62*time.Minute)))
	e.drain(time.Minute, 5)
	assert.Equal(t, int64(0), billedOnce(e.srv, c.UsageReportingID, metricRequests), "held until an End in effect is registered")

	// The processor handles the deletion and registers its end.
	gone := c
	gone.End = t0.Add(20 * time.Minute)
	require.NoError(t, e.rep.Register(ctx, gone))
	require.NoError(t, e.clock.Set(t0.Add(64*time.Minute)))
	e.drain(time.Minute, 5)
	assert.Equal(t, int64(10), billedOnce(e.srv, c.UsageReportingID, metricRequests), "only the usage before the deletion")
}

// An End registered while a flush is about to send a window past it (the
// Processor's Register does not wait for flushes) must stop the send: the
// flush re-reads the ends after marking the window sent.
func TestEndRegisteredDuringFlushStopsSend(t *testing.T) {
	var (
		e    *env
		c    usage.Consumer
		t0   time.Time
		once sync.Once
	)
	hook := func() {
		once.Do(func() {
			ended := c
			ended.End = t0.Add(20 * time.Minute)
			require.NoError(t, e.rep.Register(context.Background(), ended))
		})
	}
	e = newEnv(t, nil, usage.WithBeforeSendHook(hook))
	t0 = e.clock.Now()
	c = e.consumer(time.Time{}, time.Time{})
	e.record(c, "requests", 10, t0.Add(10*time.Minute), nil)
	e.record(c, "requests", 400, t0.Add(30*time.Minute), nil)
	require.NoError(t, e.clock.Set(t0.Add(62*time.Minute)))
	e.drain(time.Minute, 5)
	for _, op := range e.srv.Reports() {
		if op.ConsumerID == c.UsageReportingID {
			assert.False(t, op.End.After(t0.Add(20*time.Minute)), "window [%v, %v) reported past the end", op.Start, op.End)
		}
	}
	assert.Equal(t, int64(0), billedOnce(e.srv, c.UsageReportingID, metricRequests))
	ws := e.windows(c)
	require.NotEmpty(t, ws)
	assert.Equal(t, usage.StateRejected, ws[0].State)
}

// A zero End (a stale registration from before the cancellation) does not
// clear an End already in effect; it clears one still in the future (a
// reverted pending cancellation).
func TestZeroEndKeepsEndInEffect(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	t0 := e.clock.Now()
	c := e.consumer(time.Time{}, time.Time{})
	ended := c
	ended.End = t0.Add(10 * time.Minute)
	require.NoError(t, e.rep.Register(ctx, ended))
	require.NoError(t, e.clock.Set(t0.Add(20*time.Minute)))
	require.NoError(t, e.rep.Register(ctx, c))
	st, err := e.ledger.GetConsumer(ctx, c.EntitlementID)
	require.NoError(t, err)
	assert.True(t, st.End.Equal(ended.End), "End in effect cleared: %v", st.End)
	err = e.rep.Record(ctx, usage.Record{EntitlementID: c.EntitlementID, Metric: "requests", Int64: 400, Time: t0.Add(15 * time.Minute)})
	assert.ErrorIs(t, err, usage.ErrAfterEnd)

	other := e.consumer(time.Time{}, time.Time{})
	pending := other
	pending.End = t0.Add(48 * time.Hour)
	require.NoError(t, e.rep.Register(ctx, pending))
	require.NoError(t, e.rep.Register(ctx, other))
	st, err = e.ledger.GetConsumer(ctx, other.EntitlementID)
	require.NoError(t, err)
	assert.True(t, st.End.IsZero(), "a future End is cleared by a reverted cancellation")
}

// A window sent with an unknown outcome that runs past an End learned
// afterwards is not resent (it would be billed if the first attempt was
// not applied): it is expired for reconciliation.
func TestUnknownPastLateEndExpired(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	t0 := e.clock.Now()
	c := e.consumer(time.Time{}, time.Time{})
	e.record(c, "requests", 10, t0.Add(10*time.Minute), nil)
	require.NoError(t, e.clock.Set(t0.Add(62*time.Minute)))
	e.srv.InjectFault(mt.Fault{Method: mt.MethodServicesReport, Kind: mt.FaultStatus, Status: 503, Times: 1})
	e.flush()
	ws := e.windows(c)
	require.Len(t, ws, 1)
	require.Equal(t, usage.StateUnknown, ws[0].State)
	ended := c
	ended.End = t0.Add(20 * time.Minute)
	require.NoError(t, e.rep.Register(ctx, ended))
	calls := e.srv.Calls(mt.MethodServicesReport)
	e.clock.Advance(10 * time.Minute)
	e.flush()
	assert.Equal(t, calls, e.srv.Calls(mt.MethodServicesReport), "resent past the end")
	ws = e.windows(c)
	require.Len(t, ws, 1)
	assert.Equal(t, usage.StateExpired, ws[0].State)
}

// A request refused whole as too large (413: Google's "1MB" read
// differently) is halved like a 400, in the same flush.
func TestReportBisectsOn413(t *testing.T) {
	e := newEnv(t, nil)
	t0 := e.clock.Now()
	a, b := e.consumer(time.Time{}, time.Time{}), e.consumer(time.Time{}, time.Time{})
	e.record(a, "requests", 3, t0.Add(10*time.Minute), nil)
	e.record(b, "requests", 4, t0.Add(10*time.Minute), nil)
	require.NoError(t, e.clock.Set(t0.Add(62*time.Minute)))
	e.srv.InjectFault(mt.Fault{Method: mt.MethodServicesReport, Kind: mt.FaultStatus, Status: 413, Times: 1})
	e.flush()
	assert.Empty(t, e.open(), "both halves reported in the same flush")
	assert.Equal(t, int64(3), billedOnce(e.srv, a.UsageReportingID, metricRequests))
	assert.Equal(t, int64(4), billedOnce(e.srv, b.UsageReportingID, metricRequests))
}
