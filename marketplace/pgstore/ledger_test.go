package pgstore_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/pgstore"
	"github.com/gcpmarketplace/gcpmarketplace/usage/ledger"
)

var _ ledger.Ledger = (*pgstore.Store)(nil)

const metric = "example.googleapis.com/requests"

func hour(n int) time.Time { return base.Truncate(time.Hour).Add(time.Duration(n) * time.Hour) }

// sealHourly is a SealFunc: one window per consumer, hour and labels,
// holding the hour's usage, and the frontier moved to before (capped at the
// consumer's end).
func sealHourly(before time.Time) ledger.SealFunc {
	return func(c ledger.ConsumerState, rows []ledger.Row) (ledger.Sealed, error) {
		type key struct {
			start  time.Time
			labels string
		}
		byKey := map[key]*ledger.Window{}
		var order []key
		for _, r := range rows {
			k := key{r.Bucket, r.Labels}
			w, ok := byKey[k]
			if !ok {
				w = &ledger.Window{
					OperationID:   fmt.Sprintf("%s/%d/%s", c.EntitlementID, r.Bucket.Unix(), r.Labels),
					EntitlementID: c.EntitlementID, ConsumerID: c.UsageReportingID,
					Start: r.Bucket, End: r.Bucket.Add(time.Hour), Labels: r.Labels,
					State: ledger.StatePending, Deadline: r.Bucket.Add(2 * time.Hour), SealedAt: before,
				}
				byKey[k] = w
				order = append(order, k)
			}
			w.Values = append(w.Values, ledger.MetricValue{Metric: r.Metric, Kind: r.Kind, Int64: r.Int64, Double: r.Double})
		}
		out := ledger.Sealed{Frontier: before}
		if !c.End.IsZero() && c.End.Before(before) {
			out.Frontier = c.End
		}
		for _, k := range order {
			out.Windows = append(out.Windows, *byKey[k])
		}
		return out, nil
	}
}

func ledgerStore(t *testing.T) *pgstore.Store {
	t.Helper()
	return newStore(t, sharedPool(t), freshSchema(t))
}

func TestLedgerConsumers(t *testing.T) {
	t.Parallel()
	s := ledgerStore(t)
	ctx := context.Background()
	_, err := s.GetConsumer(ctx, "ent-1")
	require.ErrorIs(t, err, ledger.ErrUnknownConsumer)
	require.ErrorIs(t, s.PutConsumer(ctx, ledger.Consumer{}, hour(0)), ledger.ErrInvalid)
	require.ErrorIs(t, s.SetBlock(ctx, "ent-1", ledger.Block{Code: "X"}), ledger.ErrUnknownConsumer)

	c := ledger.Consumer{EntitlementID: "ent-b", UsageReportingID: "project_number:1", Start: hour(-5).In(time.FixedZone("X", 3600))}
	require.NoError(t, s.PutConsumer(ctx, c, hour(0)))
	require.NoError(t, s.PutConsumer(ctx, ledger.Consumer{EntitlementID: "ent-a", UsageReportingID: "project_number:2"}, hour(1)))
	require.NoError(t, s.SetBlock(ctx, "ent-b", ledger.Block{Code: "BILLING_DISABLED", Detail: "bad\x00detail\xff", Since: hour(2)}))

	// Update: reporting id and times replaced, frontier and block kept.
	c.UsageReportingID, c.End = "project_number:3", hour(10)
	require.NoError(t, s.PutConsumer(ctx, c, hour(7)))
	got, err := s.GetConsumer(ctx, "ent-b")
	require.NoError(t, err)
	assert.Equal(t, "project_number:3", got.UsageReportingID)
	assert.True(t, got.Start.Equal(hour(-5)) && got.Start.Location() == time.UTC, "Start %v", got.Start)
	assert.True(t, got.End.Equal(hour(10)))
	assert.True(t, got.Frontier.Equal(hour(0)), "frontier kept: %v", got.Frontier)
	assert.Equal(t, "BILLING_DISABLED", got.Block.Code)
	assert.Equal(t, "bad\uFFFDdetail\uFFFD", got.Block.Detail, "unstorable bytes replaced")
	assert.True(t, got.Block.Since.Equal(hour(2)))

	all, err := s.ListConsumers(ctx, ledger.ConsumerQuery{})
	require.NoError(t, err)
	require.Len(t, all, 2)
	assert.Equal(t, "ent-a", all[0].EntitlementID)
	assert.True(t, all[0].Start.IsZero() && all[0].End.IsZero(), "zero times round-trip")
	blocked, err := s.ListConsumers(ctx, ledger.ConsumerQuery{BlockedOnly: true})
	require.NoError(t, err)
	require.Len(t, blocked, 1)
	assert.Equal(t, "ent-b", blocked[0].EntitlementID)

	require.NoError(t, s.SetBlock(ctx, "ent-b", ledger.Block{}))
	blocked, err = s.ListConsumers(ctx, ledger.ConsumerQuery{BlockedOnly: true})
	require.NoError(t, err)
	assert.Empty(t, blocked)
}

func TestLedgerAddUsage(t *testing.T) {
	t.Parallel()
	s := ledgerStore(t)
	ctx := context.Background()
	require.NoError(t, s.PutConsumer(ctx, ledger.Consumer{EntitlementID: "ent-1", Start: hour(0), End: hour(5)}, hour(2)))

	add := func(at time.Time, n int64) (time.Time, error) {
		return s.AddUsage(ctx, ledger.Usage{EntitlementID: "ent-1", At: at, Bucket: at.Truncate(time.Hour), Metric: metric, Labels: "{}", Int64: n})
	}
	w, err := add(hour(3).Add(time.Minute), 2)
	require.NoError(t, err)
	assert.True(t, w.Equal(hour(3)) && w.Location() == time.UTC, "window %v", w)
	_, err = add(hour(3).Add(2*time.Minute), 5)
	require.NoError(t, err)
	// Late usage goes to the first unsealed window.
	w, err = add(hour(1), 1)
	require.NoError(t, err)
	assert.True(t, w.Equal(hour(2)), "late usage window %v", w)

	_, err = add(hour(0).Add(-time.Second), 1)
	assert.ErrorIs(t, err, ledger.ErrBeforeStart)
	_, err = add(hour(5), 1)
	assert.ErrorIs(t, err, ledger.ErrAfterEnd)
	_, err = s.AddUsage(ctx, ledger.Usage{EntitlementID: "ent-nope", At: hour(1), Bucket: hour(1), Metric: metric, Labels: "{}"})
	assert.ErrorIs(t, err, ledger.ErrUnknownConsumer)
	_, err = s.AddUsage(ctx, ledger.Usage{At: hour(1)})
	assert.ErrorIs(t, err, ledger.ErrInvalid)
	_, err = s.AddUsage(ctx, ledger.Usage{EntitlementID: "ent-1", At: hour(3), Bucket: hour(3), Metric: "m\x00", Labels: "{}"})
	assert.ErrorIs(t, err, ledger.ErrInvalid)

	var seen []ledger.Row
	n, err := s.Seal(ctx, ledger.SealParams{Before: hour(4)}, func(c ledger.ConsumerState, rows []ledger.Row) (ledger.Sealed, error) {
		seen = rows
		return sealHourly(hour(4))(c, rows)
	})
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	require.Len(t, seen, 2)
	assert.True(t, seen[0].Bucket.Equal(hour(2)) && seen[0].Int64 == 1, "%+v", seen[0])
	assert.True(t, seen[1].Bucket.Equal(hour(3)) && seen[1].Int64 == 7, "aggregated: %+v", seen[1])

	// The final window [4h, 5h) is not sealed yet: usage before End is
	// taken; once sealed up to End, it is refused.
	_, err = add(hour(4).Add(time.Minute), 1)
	require.NoError(t, err)
	_, err = s.Seal(ctx, ledger.SealParams{Before: hour(9)}, sealHourly(hour(9)))
	require.NoError(t, err)
	c, err := s.GetConsumer(ctx, "ent-1")
	require.NoError(t, err)
	assert.True(t, c.Frontier.Equal(hour(5)), "frontier capped at End: %v", c.Frontier)
	_, err = add(hour(4).Add(2*time.Minute), 1)
	assert.ErrorIs(t, err, ledger.ErrWindowSealed)
}

func TestLedgerSeal(t *testing.T) {
	t.Parallel()
	s := ledgerStore(t)
	ctx := context.Background()
	for _, id := range []string{"ent-1", "ent-2", "ent-3"} {
		require.NoError(t, s.PutConsumer(ctx, ledger.Consumer{EntitlementID: id, UsageReportingID: "c-" + id}, hour(0)))
	}
	for _, u := range []ledger.Usage{
		{EntitlementID: "ent-1", At: hour(0), Bucket: hour(0), Metric: metric, Labels: "{}", Int64: 3},
		{EntitlementID: "ent-1", At: hour(1), Bucket: hour(1), Metric: metric, Labels: `{"k":"v"}`, Int64: 4},
		{EntitlementID: "ent-2", At: hour(0), Bucket: hour(0), Metric: metric, Kind: ledger.Double, Labels: "{}", Double: 0.5},
		{EntitlementID: "ent-2", At: hour(3), Bucket: hour(3), Metric: metric, Labels: "{}", Int64: 9}, // not sealed yet
	} {
		_, err := s.AddUsage(ctx, u)
		require.NoError(t, err)
	}

	// A failing SealFunc changes nothing.
	errSeal := errors.New("seal failed")
	_, err := s.Seal(ctx, ledger.SealParams{Before: hour(2)}, func(ledger.ConsumerState, []ledger.Row) (ledger.Sealed, error) {
		return ledger.Sealed{}, errSeal
	})
	require.ErrorIs(t, err, errSeal)
	ws, err := s.ListWindows(ctx, ledger.WindowQuery{})
	require.NoError(t, err)
	assert.Empty(t, ws)

	n, err := s.Seal(ctx, ledger.SealParams{Before: hour(2), Limit: 2}, sealHourly(hour(2)))
	require.NoError(t, err)
	assert.Equal(t, 2, n, "limited")
	n, err = s.Seal(ctx, ledger.SealParams{Before: hour(2)}, sealHourly(hour(2)))
	require.NoError(t, err)
	assert.Equal(t, 1, n, "the rest")
	n, err = s.Seal(ctx, ledger.SealParams{Before: hour(2)}, sealHourly(hour(2)))
	require.NoError(t, err)
	assert.Zero(t, n, "nothing left")

	ws, err = s.ListWindows(ctx, ledger.WindowQuery{})
	require.NoError(t, err)
	require.Len(t, ws, 3)
	for i := 1; i < len(ws); i++ {
		assert.True(t, !ws[i].Start.Before(ws[i-1].Start), "ordered by start")
	}
	byID := map[string]ledger.Window{}
	for _, w := range ws {
		byID[w.OperationID] = w
	}
	w2 := byID[fmt.Sprintf("ent-2/%d/{}", hour(0).Unix())]
	require.Len(t, w2.Values, 1)
	assert.Equal(t, ledger.MetricValue{Metric: metric, Kind: ledger.Double, Double: 0.5}, w2.Values[0])
	assert.Equal(t, "c-ent-2", w2.ConsumerID)
	assert.Equal(t, ledger.StatePending, w2.State)
	assert.True(t, w2.Deadline.Equal(hour(2)) && w2.LastAttempt.IsZero() && w2.LeaseUntil.IsZero())

	// Re-sealing a window whose operation id exists leaves it as it is.
	_, err = s.AddUsage(ctx, ledger.Usage{EntitlementID: "ent-2", At: hour(3), Bucket: hour(3), Metric: metric, Labels: "{}", Int64: 1})
	require.NoError(t, err)
	_, err = s.Seal(ctx, ledger.SealParams{Before: hour(4)}, func(c ledger.ConsumerState, rows []ledger.Row) (ledger.Sealed, error) {
		res, err := sealHourly(hour(4))(c, rows)
		if c.EntitlementID == "ent-2" {
			dup := w2
			dup.Values = []ledger.MetricValue{{Metric: metric, Int64: 999}}
			res.Windows = append(res.Windows, dup)
		}
		return res, err
	})
	require.NoError(t, err)
	again, err := s.ListWindows(ctx, ledger.WindowQuery{OperationID: w2.OperationID})
	require.NoError(t, err)
	require.Len(t, again, 1)
	assert.Equal(t, w2.Values, again[0].Values)
	hour3, err := s.ListWindows(ctx, ledger.WindowQuery{EntitlementID: "ent-2", States: []ledger.WindowState{ledger.StatePending}, Limit: 5})
	require.NoError(t, err)
	require.Len(t, hour3, 2)
	assert.Equal(t, int64(10), hour3[1].Values[0].Int64, "usage added to a row before sealing")
	none, err := s.ListWindows(ctx, ledger.WindowQuery{States: []ledger.WindowState{}})
	require.NoError(t, err)
	assert.Empty(t, none)
}

// seedWindows registers a consumer and seals n hourly windows for it.
func seedWindows(t *testing.T, s *pgstore.Store, id string, n int) {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, s.PutConsumer(ctx, ledger.Consumer{EntitlementID: id, UsageReportingID: "c-" + id}, hour(0)))
	for i := range n {
		_, err := s.AddUsage(ctx, ledger.Usage{EntitlementID: id, At: hour(i), Bucket: hour(i), Metric: metric, Labels: "{}", Int64: 1})
		require.NoError(t, err)
	}
	_, err := s.Seal(ctx, ledger.SealParams{Before: hour(n)}, sealHourly(hour(n)))
	require.NoError(t, err)
}

func TestLedgerClaimUpdatePrune(t *testing.T) {
	t.Parallel()
	s := ledgerStore(t)
	ctx := context.Background()
	seedWindows(t, s, "ent-1", 3)
	now := hour(10)

	got, err := s.ClaimWindows(ctx, ledger.ClaimParams{Owner: "a", Now: now, LeaseUntil: now.Add(time.Minute), Limit: 2})
	require.NoError(t, err)
	require.Len(t, got, 2)
	assert.True(t, got[0].Start.Equal(hour(0)) && got[1].Start.Equal(hour(1)), "oldest first")
	assert.Equal(t, "a", got[0].LeaseOwner)
	assert.True(t, got[0].LeaseUntil.Equal(now.Add(time.Minute)))

	// Update by the owner; by someone else: lost; unknown id: lost.
	lost, err := s.UpdateWindows(ctx, "a", []ledger.WindowUpdate{
		{OperationID: got[0].OperationID, State: ledger.StateReported, Attempts: 1, LastAttempt: now, ReportedAt: now, LeaseToken: got[0].LeaseToken},
		{OperationID: "no-such-op", State: ledger.StateReported},
	})
	require.NoError(t, err)
	assert.Equal(t, []string{"no-such-op"}, lost)
	lost, err = s.UpdateWindows(ctx, "b", []ledger.WindowUpdate{{OperationID: got[1].OperationID, State: ledger.StateRejected}})
	require.NoError(t, err)
	assert.Equal(t, []string{got[1].OperationID}, lost)
	_, err = s.UpdateWindows(ctx, "a", []ledger.WindowUpdate{{}})
	require.ErrorIs(t, err, ledger.ErrInvalid)

	// A window released with a later LeaseUntil is not claimed before it.
	lost, err = s.UpdateWindows(ctx, "a", []ledger.WindowUpdate{{OperationID: got[1].OperationID, State: ledger.StateUnknown, Reason: "timeout", Attempts: 1, LeaseUntil: now.Add(time.Hour), LeaseToken: got[1].LeaseToken}})
	require.NoError(t, err)
	assert.Empty(t, lost)
	more, err := s.ClaimWindows(ctx, ledger.ClaimParams{Owner: "b", Now: now.Add(2 * time.Minute), LeaseUntil: now.Add(3 * time.Minute)})
	require.NoError(t, err)
	require.Len(t, more, 1, "only the never-claimed window")
	assert.True(t, more[0].Start.Equal(hour(2)))
	more, err = s.ClaimWindows(ctx, ledger.ClaimParams{Owner: "b", Now: now.Add(time.Hour), LeaseUntil: now.Add(2 * time.Hour)})
	require.NoError(t, err)
	require.Len(t, more, 2, "hour 1 after its not-before time, hour 2 after its lease")
	assert.Equal(t, got[1].OperationID, more[0].OperationID)
	assert.Equal(t, "timeout", more[0].Reason)
	assert.Equal(t, ledger.StateUnknown, more[0].State)

	// An operator's override ignores the lease.
	lost, err = s.UpdateWindows(ctx, "", []ledger.WindowUpdate{{OperationID: more[0].OperationID, State: ledger.StateRejected, Reason: "operator"}})
	require.NoError(t, err)
	assert.Empty(t, lost)

	// Prune: reported and rejected windows sealed (at hour 3) strictly
	// before the cutoff only.
	n, err := s.PruneWindows(ctx, hour(3))
	require.NoError(t, err)
	assert.Zero(t, n, "sealed at the cutoff")
	n, err = s.PruneWindows(ctx, hour(3).Add(time.Microsecond))
	require.NoError(t, err)
	assert.Equal(t, 2, n)
	left, err := s.ListWindows(ctx, ledger.WindowQuery{})
	require.NoError(t, err)
	require.Len(t, left, 1)
	assert.True(t, left[0].Start.Equal(hour(2)))
}

// Two replicas on one schema: a window is leased to one of them at a time,
// and the lease of a replica that died is taken over once it expires.
func TestLedgerReplicasLeaseTakeover(t *testing.T) {
	t.Parallel()
	rs := replicas(t, 4)
	a, b := rs[0], rs[1]
	ctx := context.Background()
	seedWindows(t, a, "ent-1", 4)
	now := hour(10) // the manual clock
	lease := 30 * time.Second

	claimedA, err := a.ClaimWindows(ctx, ledger.ClaimParams{Owner: "replica-a", Now: now, LeaseUntil: now.Add(lease)})
	require.NoError(t, err)
	require.Len(t, claimedA, 4)

	// While A's lease runs, B gets nothing.
	now = now.Add(lease - time.Microsecond)
	claimedB, err := b.ClaimWindows(ctx, ledger.ClaimParams{Owner: "replica-b", Now: now, LeaseUntil: now.Add(lease)})
	require.NoError(t, err)
	assert.Empty(t, claimedB)

	// A reports one window, then dies. Its lease expires; B takes over the rest.
	lost, err := a.UpdateWindows(ctx, "replica-a", []ledger.WindowUpdate{{OperationID: claimedA[0].OperationID, State: ledger.StateReported, Attempts: 1, LastAttempt: now, ReportedAt: now, LeaseToken: claimedA[0].LeaseToken}})
	require.NoError(t, err)
	require.Empty(t, lost)
	now = now.Add(time.Microsecond) // exactly at the lease end
	claimedB, err = b.ClaimWindows(ctx, ledger.ClaimParams{Owner: "replica-b", Now: now, LeaseUntil: now.Add(lease)})
	require.NoError(t, err)
	require.Len(t, claimedB, 3)
	for i, w := range claimedB {
		assert.Equal(t, claimedA[i+1].OperationID, w.OperationID)
		assert.Equal(t, "replica-b", w.LeaseOwner)
	}

	// A comes back late: its updates are lost, B's are applied.
	lost, err = a.UpdateWindows(ctx, "replica-a", []ledger.WindowUpdate{{OperationID: claimedA[1].OperationID, State: ledger.StateReported, LeaseToken: claimedA[1].LeaseToken}})
	require.NoError(t, err)
	assert.Equal(t, []string{claimedA[1].OperationID}, lost)
	lost, err = b.UpdateWindows(ctx, "replica-b", []ledger.WindowUpdate{{OperationID: claimedB[0].OperationID, State: ledger.StateReported, Attempts: 1, ReportedAt: now, LeaseToken: claimedB[0].LeaseToken}})
	require.NoError(t, err)
	assert.Empty(t, lost)
	w, err := a.ListWindows(ctx, ledger.WindowQuery{OperationID: claimedB[0].OperationID})
	require.NoError(t, err)
	require.Len(t, w, 1)
	assert.Equal(t, ledger.StateReported, w[0].State)
	assert.Equal(t, "replica-b", w[0].LeaseOwner)
}

// Many concurrent claimers on two replicas: every window goes to exactly
// one of them.
func TestLedgerReplicasConcurrentClaims(t *testing.T) {
	t.Parallel()
	rs := replicas(t, 6)
	ctx := context.Background()
	const windows = 40
	seedWindows(t, rs[0], "ent-1", windows)
	now := hour(100)
	var mu sync.Mutex
	owners := map[string][]string{}
	var wg sync.WaitGroup
	for i := range 8 {
		s := rs[i%2]
		owner := fmt.Sprintf("worker-%d", i)
		wg.Go(func() {
			for {
				got, err := s.ClaimWindows(ctx, ledger.ClaimParams{Owner: owner, Now: now, LeaseUntil: now.Add(time.Hour), Limit: 3})
				if !assert.NoError(t, err) || len(got) == 0 {
					return
				}
				mu.Lock()
				for _, w := range got {
					owners[w.OperationID] = append(owners[w.OperationID], owner)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	require.Len(t, owners, windows, "windows claimed")
	for id, os := range owners {
		assert.Len(t, os, 1, "claimers of %s: %v", id, os)
	}
	// Each window's recorded owner is the one that got it.
	ws, err := rs[1].ListWindows(ctx, ledger.WindowQuery{})
	require.NoError(t, err)
	for _, w := range ws {
		assert.Equal(t, owners[w.OperationID][0], w.LeaseOwner)
	}
}

// AddUsage on both replicas while both seal: every unit of usage ends up in
// exactly one window or unsealed row, and no consumer is sealed twice over.
func TestLedgerReplicasSealWhileAdding(t *testing.T) {
	t.Parallel()
	rs := replicas(t, 6)
	ctx := context.Background()
	consumers := []string{"ent-1", "ent-2", "ent-3"}
	for _, id := range consumers {
		require.NoError(t, rs[0].PutConsumer(ctx, ledger.Consumer{EntitlementID: id, UsageReportingID: "c-" + id}, hour(0)))
	}
	const adders, adds = 4, 30
	var added atomic.Int64
	stop := make(chan struct{})
	var sealers, wg sync.WaitGroup
	var sealErrs atomic.Int32
	for i := range 2 {
		s := rs[i]
		sealers.Go(func() {
			for h := 1; ; h++ {
				select {
				case <-stop:
					return
				default:
				}
				before := hour(min(h, 50))
				if _, err := s.Seal(ctx, ledger.SealParams{Before: before}, sealHourly(before)); err != nil {
					if !pgstore.IsRetryable(err) {
						t.Errorf("Seal: %v", err)
					}
					sealErrs.Add(1)
				}
			}
		})
	}
	for i := range adders {
		s := rs[i%2]
		wg.Go(func() {
			for j := range adds {
				id := consumers[(i+j)%len(consumers)]
				at := hour(j % 40)
				_, err := s.AddUsage(ctx, ledger.Usage{EntitlementID: id, At: at, Bucket: at, Metric: metric, Labels: "{}", Int64: 1})
				if !assert.NoError(t, err) {
					return
				}
				added.Add(1)
			}
		})
	}
	wg.Wait()
	close(stop)
	sealers.Wait()
	// Seal everything left.
	_, err := rs[1].Seal(ctx, ledger.SealParams{Before: hour(60)}, sealHourly(hour(60)))
	require.NoError(t, err)

	ws, err := rs[0].ListWindows(ctx, ledger.WindowQuery{})
	require.NoError(t, err)
	var total int64
	spans := map[string][]time.Time{}
	for _, w := range ws {
		for _, v := range w.Values {
			total += v.Int64
		}
		spans[w.EntitlementID] = append(spans[w.EntitlementID], w.Start)
	}
	assert.Equal(t, added.Load(), total, "usage in windows (seal retries: %d)", sealErrs.Load())
	for id, starts := range spans {
		sort.Slice(starts, func(i, j int) bool { return starts[i].Before(starts[j]) })
		for i := 1; i < len(starts); i++ {
			assert.False(t, starts[i].Equal(starts[i-1]), "%s: two windows start at %v", id, starts[i])
		}
	}
}

func TestLedgerClosed(t *testing.T) {
	t.Parallel()
	s, err := pgstore.New(context.Background(), sharedPool(t), pgstore.WithSchema(freshSchema(t)))
	require.NoError(t, err)
	require.NoError(t, s.Close())
	_, err = s.ListWindows(context.Background(), ledger.WindowQuery{})
	require.ErrorIs(t, err, marketplace.ErrClosed)
}
