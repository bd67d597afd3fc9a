package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gcpmarketplace/gcpmarketplace/usage/ledger"
)

// ledgerCases prove the ledger.Ledger contract; they are skipped for stores
// that do not implement it.
var ledgerCases = []testCase{
	{"PutGetConsumer", testLedgerPutGetConsumer},
	{"Block", testLedgerBlock},
	{"AddUsageAggregates", testLedgerAddUsageAggregates},
	{"AddUsageRefuses", testLedgerAddUsageRefuses},
	{"AddUsageFollowsAdmit", testLedgerAddUsageAdmit},
	{"SealConsumesRowsOnce", testLedgerSeal},
	{"SealErrorRollsBack", testLedgerSealError},
	{"SealEndedThroughEnd", testLedgerSealEnded},
	{"SealEndedTakesEveryRow", testLedgerSealEndedEveryRow},
	{"SealEndedLimit", testLedgerSealEndedLimit},
	{"SealSkipsHeld", testLedgerSealHeld},
	{"ClaimLeaseUpdate", testLedgerClaim},
	{"LeaseTokenFencesStaleClaims", testLedgerLeaseToken},
	{"ListAndPrune", testLedgerListPrune},
	{"ListTimeRangeAndPages", testLedgerListRangePages},
	{"ConcurrentAddAndSealLoseNothing", testLedgerConcurrent},
	{"ReopenKeepsLedger", testLedgerReopen},
}

func newLedger(t *testing.T, h Harness) ledger.Ledger {
	t.Helper()
	l, ok := newStore(t, h).(ledger.Ledger)
	if !ok {
		t.Skip("store does not implement ledger.Ledger")
	}
	return l
}

var bg = context.Background()

func hour(n int) time.Time { return base.Truncate(time.Hour).Add(time.Duration(n) * time.Hour) }

func addUsage(t *testing.T, l ledger.Ledger, id string, at time.Time, metric, labels string, v int64) time.Time {
	t.Helper()
	w, err := l.AddUsage(bg, ledger.Usage{EntitlementID: id, At: at, Bucket: at.Truncate(time.Hour), Metric: metric, Labels: labels, Int64: v})
	noErr(t, err, "AddUsage")
	return w
}

// sealAll seals before and returns the rows each consumer's fn received,
// producing one pending window per row.
func sealAll(t *testing.T, l ledger.Ledger, before time.Time) map[string][]ledger.Row {
	t.Helper()
	return sealWith(t, l, ledger.SealParams{Before: before})
}

// sealWith is sealAll with every SealParams: an ended consumer's frontier
// goes to its End.
func sealWith(t *testing.T, l ledger.Ledger, p ledger.SealParams) map[string][]ledger.Row {
	t.Helper()
	before := p.Before
	got := map[string][]ledger.Row{}
	_, err := l.Seal(bg, p, func(c ledger.ConsumerState, rows []ledger.Row) (ledger.Sealed, error) {
		got[c.EntitlementID] = rows
		var out ledger.Sealed
		for i, r := range rows {
			out.Windows = append(out.Windows, ledger.Window{
				OperationID: fmt.Sprintf("%s/%d/%s/%d", c.EntitlementID, r.Bucket.Unix(), r.Metric, i), EntitlementID: c.EntitlementID,
				ConsumerID: c.UsageReportingID, Start: r.Bucket, End: r.Bucket.Add(time.Hour), Labels: r.Labels,
				Values: []ledger.MetricValue{{Metric: r.Metric, Kind: r.Kind, Int64: r.Int64, Double: r.Double}},
				State:  ledger.StatePending, SealedAt: before,
			})
		}
		out.Frontier = before
		if !c.End.IsZero() && (c.End.Before(before) || p.EndedBy(c.Consumer)) {
			out.Frontier = c.End
		}
		if c.Frontier.After(out.Frontier) {
			out.Frontier = c.Frontier
		}
		return out, nil
	})
	noErr(t, err, "Seal")
	return got
}

func testLedgerPutGetConsumer(t *testing.T, h Harness) {
	l := newLedger(t, h)
	_, err := l.GetConsumer(bg, "ent-1")
	isErr(t, err, ledger.ErrUnknownConsumer, "GetConsumer of an unknown consumer")
	isErr(t, l.PutConsumer(bg, ledger.Consumer{}, hour(0)), ledger.ErrInvalid, "PutConsumer with an empty id")
	c := ledger.Consumer{EntitlementID: "ent-1", UsageReportingID: "project_number:1", Start: at(0)}
	noErr(t, l.PutConsumer(bg, c, hour(0)), "PutConsumer")
	got, err := l.GetConsumer(bg, "ent-1")
	noErr(t, err, "GetConsumer")
	equal(t, got.UsageReportingID, "project_number:1", "UsageReportingID")
	sameTime(t, got.Start, at(0), "Start")
	sameTime(t, got.Frontier, hour(0), "Frontier")
	equal(t, got.End.IsZero(), true, "End zero")
	// An update replaces the registration and keeps the frontier.
	c.End, c.UsageReportingID = at(time.Hour), "project_number:2"
	noErr(t, l.PutConsumer(bg, c, hour(5)), "PutConsumer update")
	got, err = l.GetConsumer(bg, "ent-1")
	noErr(t, err, "GetConsumer")
	equal(t, got.UsageReportingID, "project_number:2", "UsageReportingID after update")
	sameTime(t, got.End, at(time.Hour), "End after update")
	sameTime(t, got.Frontier, hour(0), "Frontier kept by update")
	noErr(t, l.PutConsumer(bg, ledger.Consumer{EntitlementID: "ent-0", UsageReportingID: "x"}, hour(0)), "PutConsumer")
	all, err := l.ListConsumers(bg, ledger.ConsumerQuery{})
	noErr(t, err, "ListConsumers")
	equal(t, len(all), 2, "consumers")
	equal(t, all[0].EntitlementID, "ent-0", "sorted by id")
}

func testLedgerBlock(t *testing.T, h Harness) {
	l := newLedger(t, h)
	isErr(t, l.SetBlock(bg, "nope", ledger.Block{Code: "X"}), ledger.ErrUnknownConsumer, "SetBlock unknown")
	noErr(t, l.PutConsumer(bg, ledger.Consumer{EntitlementID: "ent-1", UsageReportingID: "c"}, hour(0)), "PutConsumer")
	noErr(t, l.PutConsumer(bg, ledger.Consumer{EntitlementID: "ent-2", UsageReportingID: "d"}, hour(0)), "PutConsumer")
	noErr(t, l.SetBlock(bg, "ent-1", ledger.Block{Code: "BILLING_DISABLED", Detail: "d", Since: at(0)}), "SetBlock")
	blocked, err := l.ListConsumers(bg, ledger.ConsumerQuery{BlockedOnly: true})
	noErr(t, err, "ListConsumers")
	equal(t, len(blocked), 1, "blocked consumers")
	equal(t, blocked[0].Block.Code, "BILLING_DISABLED", "code")
	sameTime(t, blocked[0].Block.Since, at(0), "since")
	// Re-registration keeps the block; clearing it serves again.
	noErr(t, l.PutConsumer(bg, ledger.Consumer{EntitlementID: "ent-1", UsageReportingID: "c"}, hour(3)), "PutConsumer")
	c, err := l.GetConsumer(bg, "ent-1")
	noErr(t, err, "GetConsumer")
	equal(t, c.Block.Code, "BILLING_DISABLED", "block kept")
	noErr(t, l.SetBlock(bg, "ent-1", ledger.Block{}), "SetBlock clear")
	blocked, err = l.ListConsumers(bg, ledger.ConsumerQuery{BlockedOnly: true})
	noErr(t, err, "ListConsumers")
	equal(t, len(blocked), 0, "blocked after clear")
}

func testLedgerAddUsageAggregates(t *testing.T, h Harness) {
	l := newLedger(t, h)
	noErr(t, l.PutConsumer(bg, ledger.Consumer{EntitlementID: "ent-1", UsageReportingID: "c"}, hour(1)), "PutConsumer")
	// Before the frontier: lands in the frontier's window.
	w := addUsage(t, l, "ent-1", hour(0).Add(10*time.Minute), "m", "{}", 2)
	sameTime(t, w, hour(1), "late usage window")
	addUsage(t, l, "ent-1", hour(1).Add(time.Minute), "m", "{}", 3)
	addUsage(t, l, "ent-1", hour(1).Add(2*time.Minute), "m", `{"a":"b"}`, 5)
	addUsage(t, l, "ent-1", hour(2).Add(time.Minute), "m", "{}", 7)
	_, err := l.AddUsage(bg, ledger.Usage{EntitlementID: "ent-1", At: hour(1), Bucket: hour(1), Metric: "d", Kind: ledger.Double, Labels: "{}", Double: 0.25})
	noErr(t, err, "AddUsage double")
	_, err = l.AddUsage(bg, ledger.Usage{EntitlementID: "ent-1", At: hour(1), Bucket: hour(1), Metric: "d", Kind: ledger.Double, Labels: "{}", Double: 0.5})
	noErr(t, err, "AddUsage double")
	rows := sealAll(t, l, hour(2))["ent-1"]
	equal(t, len(rows), 3, "rows of hour 1")
	equal(t, rows[0].Metric, "d", "sorted by metric")
	equal(t, rows[0].Kind, ledger.Double, "kind")
	equal(t, rows[0].Double, 0.75, "double sum")
	equal(t, rows[1].Labels, `{"a":"b"}`, "labels sorted")
	equal(t, rows[1].Int64, int64(5), "labelled row")
	equal(t, rows[2].Labels, "{}", "labels")
	equal(t, rows[2].Int64, int64(5), "sum of m {} in hour 1 (2 late + 3)")
	// Hour 2 stays unsealed; after it, usage of hour 1 goes to hour 2.
	sameTime(t, addUsage(t, l, "ent-1", hour(1).Add(59*time.Minute), "m", "{}", 1), hour(2), "late after seal")
	rows = sealAll(t, l, hour(3))["ent-1"]
	equal(t, len(rows), 1, "rows of hour 2")
	equal(t, rows[0].Int64, int64(8), "hour 2 sum")
}

func testLedgerAddUsageRefuses(t *testing.T, h Harness) {
	l := newLedger(t, h)
	noErr(t, l.PutConsumer(bg, ledger.Consumer{EntitlementID: "ent-1", UsageReportingID: "c", Start: hour(0).Add(5 * time.Minute), End: hour(1).Add(30 * time.Minute)}, hour(0)), "PutConsumer")
	try := func(at time.Time) error {
		_, err := l.AddUsage(bg, ledger.Usage{EntitlementID: "ent-1", At: at, Bucket: at.Truncate(time.Hour), Metric: "m", Labels: "{}", Int64: 1})
		return err
	}
	_, err := l.AddUsage(bg, ledger.Usage{EntitlementID: "nope", At: hour(0), Bucket: hour(0), Metric: "m", Labels: "{}", Int64: 1})
	isErr(t, err, ledger.ErrUnknownConsumer, "unknown consumer")
	_, err = l.AddUsage(bg, ledger.Usage{At: hour(0), Bucket: hour(0), Metric: "m", Labels: "{}", Int64: 1})
	isErr(t, err, ledger.ErrInvalid, "empty id")
	isErr(t, try(hour(0)), ledger.ErrBeforeStart, "before start")
	isErr(t, try(hour(1).Add(30*time.Minute)), ledger.ErrAfterEnd, "at end")
	noErr(t, try(hour(1).Add(29*time.Minute)), "just before end")
	rows := sealAll(t, l, hour(2))["ent-1"] // seals the final window [h1, end)
	equal(t, len(rows), 1, "rows")
	equal(t, rows[0].Int64, int64(1), "nothing stored by refused calls")
	isErr(t, try(hour(1).Add(10*time.Minute)), ledger.ErrWindowSealed, "final window sealed")
	// Nothing left for the consumer.
	n, err := l.Seal(bg, ledger.SealParams{Before: hour(5)}, func(ledger.ConsumerState, []ledger.Row) (ledger.Sealed, error) {
		return ledger.Sealed{}, errors.New("must not be called")
	})
	noErr(t, err, "Seal")
	equal(t, n, 0, "consumers sealed after the end")
}

// testLedgerAddUsageAdmit: AddUsage accepts and refuses exactly as
// ledger.Admit says, into the bucket it says, over every order of start,
// end, frontier and usage time around a window.
func testLedgerAddUsageAdmit(t *testing.T, h Harness) {
	l := newLedger(t, h)
	m := func(n int) time.Time { return hour(1).Add(time.Duration(n) * time.Minute) }
	var zero time.Time
	starts, ends := []time.Time{zero, m(10), m(30)}, []time.Time{zero, m(20), m(40)}
	frontiers, ats := []time.Time{m(0), m(20), m(45)}, []time.Time{m(5), m(10), m(19), m(20), m(35), m(40), m(50)}
	n := 0
	for _, start := range starts {
		for _, end := range ends {
			if !start.IsZero() && !end.IsZero() && end.Before(start) {
				continue
			}
			for _, frontier := range frontiers {
				n++
				id := fmt.Sprint("ent-", n)
				c := ledger.Consumer{EntitlementID: id, UsageReportingID: "c", Start: start, End: end}
				noErr(t, l.PutConsumer(bg, c, frontier), "PutConsumer")
				state, err := l.GetConsumer(bg, id)
				noErr(t, err, "GetConsumer")
				for _, at := range ats {
					u := ledger.Usage{EntitlementID: id, At: at, Bucket: at.Truncate(time.Minute), Metric: "m", Labels: "{}", Int64: 1}
					want, wantErr := ledger.Admit(state, u)
					got, err := l.AddUsage(bg, u)
					what := fmt.Sprintf("start %v, end %v, frontier %v, usage at %v", start, end, frontier, at)
					for _, sentinel := range []error{ledger.ErrBeforeStart, ledger.ErrAfterEnd, ledger.ErrWindowSealed} {
						equal(t, errors.Is(err, sentinel), errors.Is(wantErr, sentinel), fmt.Sprintf("%v: AddUsage error %v, Admit %v", what, err, wantErr))
					}
					if wantErr == nil {
						noErr(t, err, what)
						sameTime(t, got, want, "bucket: "+what)
					}
				}
			}
		}
	}
}

func testLedgerClaim(t *testing.T, h Harness) {
	l := newLedger(t, h)
	noErr(t, l.PutConsumer(bg, ledger.Consumer{EntitlementID: "ent-1", UsageReportingID: "c"}, hour(0)), "PutConsumer")
	for i := range 3 {
		addUsage(t, l, "ent-1", hour(i), "m", "{}", int64(i+1))
	}
	sealAll(t, l, hour(3))
	now := hour(4)
	a, err := l.ClaimWindows(bg, ledger.ClaimParams{Owner: "a", Now: now, LeaseUntil: now.Add(time.Minute), Limit: 2})
	noErr(t, err, "ClaimWindows")
	equal(t, len(a), 2, "claimed with limit")
	sameTime(t, a[0].Start, hour(0), "oldest first")
	equal(t, a[0].LeaseOwner, "a", "owner")
	b, err := l.ClaimWindows(bg, ledger.ClaimParams{Owner: "b", Now: now, LeaseUntil: now.Add(time.Minute)})
	noErr(t, err, "ClaimWindows")
	equal(t, len(b), 1, "leased windows are not claimed twice")
	// Only the owner updates; "" overrides.
	lost, err := l.UpdateWindows(bg, "b", []ledger.WindowUpdate{{OperationID: a[0].OperationID, State: ledger.StateReported}, {OperationID: b[0].OperationID, State: ledger.StateUnknown, Attempts: 1, LastAttempt: now, LeaseUntil: now.Add(time.Hour), LeaseToken: b[0].LeaseToken}, {OperationID: "missing"}})
	noErr(t, err, "UpdateWindows")
	equal(t, fmt.Sprint(lost), "["+a[0].OperationID+" missing]", "lost updates")
	lost, err = l.UpdateWindows(bg, "a", []ledger.WindowUpdate{{OperationID: a[0].OperationID, State: ledger.StateReported, Attempts: 1, LastAttempt: now, ReportedAt: now, LeaseToken: a[0].LeaseToken}})
	noErr(t, err, "UpdateWindows")
	equal(t, len(lost), 0, "owner update")
	// After the lease: a[1] is claimable again, b[0] only after its
	// not-before time, a[0] (reported) never.
	later := now.Add(2 * time.Minute)
	c, err := l.ClaimWindows(bg, ledger.ClaimParams{Owner: "c", Now: later, LeaseUntil: later.Add(time.Minute)})
	noErr(t, err, "ClaimWindows")
	equal(t, len(c), 1, "claimable after lease expiry")
	equal(t, c[0].OperationID, a[1].OperationID, "expired lease taken over")
	c, err = l.ClaimWindows(bg, ledger.ClaimParams{Owner: "c", Now: now.Add(time.Hour), LeaseUntil: now.Add(2 * time.Hour)})
	noErr(t, err, "ClaimWindows")
	equal(t, len(c), 2, "claimable after not-before")
	ws, err := l.ListWindows(bg, ledger.WindowQuery{OperationID: b[0].OperationID})
	noErr(t, err, "ListWindows")
	equal(t, ws[0].State, ledger.StateUnknown, "state")
	equal(t, ws[0].Attempts, 1, "attempts")
	sameTime(t, ws[0].LastAttempt, now, "last attempt")
	equal(t, ws[0].Values[0].Int64, int64(3), "content unchanged by updates")
	lost, err = l.UpdateWindows(bg, "", []ledger.WindowUpdate{{OperationID: b[0].OperationID, State: ledger.StateRejected, Reason: "operator"}})
	noErr(t, err, "UpdateWindows override")
	equal(t, len(lost), 0, "override")
}

// testLedgerLeaseToken: an update applies only under the claim it comes
// from. A reporter that stalled past its lease must not mark a window sent
// (or record an outcome) once the window was claimed again, even by a
// reporter with the same owner name (a restarted replica); an operator's
// override fences the lease holder out too.
func testLedgerLeaseToken(t *testing.T, h Harness) {
	l := newLedger(t, h)
	noErr(t, l.PutConsumer(bg, ledger.Consumer{EntitlementID: "ent-1", UsageReportingID: "c"}, hour(0)), "PutConsumer")
	addUsage(t, l, "ent-1", hour(0), "m", "{}", 1)
	addUsage(t, l, "ent-1", hour(1), "m", "{}", 2)
	sealAll(t, l, hour(2))
	now := hour(3)
	first, err := l.ClaimWindows(bg, ledger.ClaimParams{Owner: "a", Now: now, LeaseUntil: now.Add(time.Minute)})
	noErr(t, err, "ClaimWindows")
	equal(t, len(first), 2, "claimed")
	if first[0].LeaseToken == 0 {
		t.Fatalf("ClaimWindows returned lease token 0; want it incremented by the claim")
	}
	// The lease expires; the same owner (restarted) and then another claim
	// again. Each claim increments the token.
	later := now.Add(2 * time.Minute)
	second, err := l.ClaimWindows(bg, ledger.ClaimParams{Owner: "a", Now: later, LeaseUntil: later.Add(time.Minute)})
	noErr(t, err, "ClaimWindows again")
	equal(t, len(second), 2, "claimed after expiry")
	equal(t, second[0].LeaseToken, first[0].LeaseToken+1, "token incremented by each claim")
	sent := func(w ledger.Window) ledger.WindowUpdate {
		return ledger.WindowUpdate{OperationID: w.OperationID, State: ledger.StateUnknown, Attempts: 1, LastAttempt: later, LeaseUntil: later.Add(time.Minute), LeaseToken: w.LeaseToken}
	}
	lost, err := l.UpdateWindows(bg, "a", []ledger.WindowUpdate{sent(first[0]), sent(second[1])})
	noErr(t, err, "UpdateWindows")
	equal(t, fmt.Sprint(lost), "["+first[0].OperationID+"]", "stale claim's update lost, current one applied")
	ws, err := l.ListWindows(bg, ledger.WindowQuery{OperationID: first[0].OperationID})
	noErr(t, err, "ListWindows")
	equal(t, ws[0].State, ledger.StatePending, "stale update not applied")
	equal(t, ws[0].Attempts, 0, "stale update not applied")
	// An operator's override applies and fences the current holder out.
	lost, err = l.UpdateWindows(bg, "", []ledger.WindowUpdate{{OperationID: second[0].OperationID, State: ledger.StateRejected, Reason: "operator"}})
	noErr(t, err, "UpdateWindows override")
	equal(t, len(lost), 0, "override applied")
	lost, err = l.UpdateWindows(bg, "a", []ledger.WindowUpdate{sent(second[0])})
	noErr(t, err, "UpdateWindows after override")
	equal(t, len(lost), 1, "holder fenced out by the override")
	ws, err = l.ListWindows(bg, ledger.WindowQuery{OperationID: second[0].OperationID})
	noErr(t, err, "ListWindows")
	equal(t, ws[0].State, ledger.StateRejected, "override kept")
}

func testLedgerListPrune(t *testing.T, h Harness) {
	l := newLedger(t, h)
	for _, id := range []string{"ent-1", "ent-2"} {
		noErr(t, l.PutConsumer(bg, ledger.Consumer{EntitlementID: id, UsageReportingID: "c"}, hour(0)), "PutConsumer")
		addUsage(t, l, id, hour(0), "m", "{}", 1)
		addUsage(t, l, id, hour(1), "m", "{}", 1)
	}
	sealAll(t, l, hour(2))
	all, err := l.ListWindows(bg, ledger.WindowQuery{})
	noErr(t, err, "ListWindows")
	equal(t, len(all), 4, "windows")
	for i := 1; i < len(all); i++ {
		if all[i].Start.Before(all[i-1].Start) {
			t.Fatalf("ListWindows not ordered by start")
		}
	}
	_, err = l.UpdateWindows(bg, "", []ledger.WindowUpdate{{OperationID: all[0].OperationID, State: ledger.StateReported}, {OperationID: all[1].OperationID, State: ledger.StateRejected}, {OperationID: all[2].OperationID, State: ledger.StateExpired}})
	noErr(t, err, "UpdateWindows")
	some, err := l.ListWindows(bg, ledger.WindowQuery{States: []ledger.WindowState{ledger.StatePending, ledger.StateExpired}, EntitlementID: all[3].EntitlementID})
	noErr(t, err, "ListWindows filtered")
	for _, w := range some {
		if w.EntitlementID != all[3].EntitlementID || (w.State != ledger.StatePending && w.State != ledger.StateExpired) {
			t.Fatalf("filter returned %+v", w)
		}
	}
	limited, err := l.ListWindows(bg, ledger.WindowQuery{Limit: 1})
	noErr(t, err, "ListWindows limit")
	equal(t, len(limited), 1, "limit")
	n, err := l.PruneWindows(bg, hour(3))
	noErr(t, err, "PruneWindows")
	equal(t, n, 2, "pruned reported and rejected")
	left, err := l.ListWindows(bg, ledger.WindowQuery{})
	noErr(t, err, "ListWindows")
	equal(t, len(left), 2, "expired and pending kept")
}

// testLedgerConcurrent adds usage from many goroutines while sealing: every
// unit ends up in exactly one window or one remaining row.
func testLedgerConcurrent(t *testing.T, h Harness) {
	l := newLedger(t, h)
	const consumers, workers, perWorker = 4, 8, 100
	for i := range consumers {
		noErr(t, l.PutConsumer(bg, ledger.Consumer{EntitlementID: fmt.Sprint("ent-", i), UsageReportingID: "c"}, hour(0)), "PutConsumer")
	}
	var wg sync.WaitGroup
	errs := make(chan error, workers+1)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				at := hour(i % 4)
				if _, err := l.AddUsage(bg, ledger.Usage{EntitlementID: fmt.Sprint("ent-", (w+i)%consumers), At: at, Bucket: at, Metric: "m", Labels: "{}", Int64: 1}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	var mu sync.Mutex
	sealed := int64(0)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for k := 1; k <= 4; k++ {
			_, err := l.Seal(bg, ledger.SealParams{Before: hour(k)}, func(c ledger.ConsumerState, rows []ledger.Row) (ledger.Sealed, error) {
				var out ledger.Sealed
				for i, r := range rows {
					mu.Lock()
					sealed += r.Int64
					mu.Unlock()
					out.Windows = append(out.Windows, ledger.Window{OperationID: fmt.Sprintf("%s-%d-%d", c.EntitlementID, k, i), EntitlementID: c.EntitlementID, Start: r.Bucket, End: r.Bucket.Add(time.Hour), Labels: "{}", State: ledger.StatePending})
				}
				out.Frontier = hour(k)
				return out, nil
			})
			if err != nil {
				errs <- err
				return
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		noErr(t, err, "concurrent AddUsage/Seal")
	}
	rest := sealAll(t, l, hour(10))
	for _, rows := range rest {
		for _, r := range rows {
			sealed += r.Int64
		}
	}
	equal(t, sealed, int64(workers*perWorker), "units sealed exactly once")
}

func testLedgerReopen(t *testing.T, h Harness) {
	if h.Reopen == nil {
		t.Skip("store is not durable (Harness.Reopen is nil)")
	}
	s := newStore(t, h)
	l, ok := s.(ledger.Ledger)
	if !ok {
		t.Skip("store does not implement ledger.Ledger")
	}
	noErr(t, l.PutConsumer(bg, ledger.Consumer{EntitlementID: "ent-1", UsageReportingID: "c", End: hour(9)}, hour(0)), "PutConsumer")
	noErr(t, l.SetBlock(bg, "ent-1", ledger.Block{Code: "BILLING_DISABLED", Since: at(0)}), "SetBlock")
	addUsage(t, l, "ent-1", hour(0), "m", `{"k":"v"}`, 3)
	addUsage(t, l, "ent-1", hour(1), "m", "{}", 4)
	sealAll(t, l, hour(1))
	r := reopen(t, h, s).(ledger.Ledger)
	c, err := r.GetConsumer(bg, "ent-1")
	noErr(t, err, "GetConsumer")
	sameTime(t, c.Frontier, hour(1), "frontier")
	sameTime(t, c.End, hour(9), "end")
	equal(t, c.Block.Code, "BILLING_DISABLED", "block")
	ws, err := r.ListWindows(bg, ledger.WindowQuery{})
	noErr(t, err, "ListWindows")
	equal(t, len(ws), 1, "windows")
	equal(t, ws[0].Labels, `{"k":"v"}`, "labels")
	equal(t, ws[0].Values[0].Int64, int64(3), "value")
	rows := sealAll(t, r, hour(2))["ent-1"]
	equal(t, len(rows), 1, "unsealed rows kept")
	equal(t, rows[0].Int64, int64(4), "row value")
}
