package storetest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/gcpmarketplace/gcpmarketplace/usage/ledger"
)

// mustNotSeal is a SealFunc for calls that must select no consumer.
func mustNotSeal(c ledger.ConsumerState, _ []ledger.Row) (ledger.Sealed, error) {
	return ledger.Sealed{}, fmt.Errorf("consumer %s must not be sealed", c.EntitlementID)
}

// testLedgerSealEnded: a consumer whose End is not after SealParams.Ended
// is sealed through End, its rows of the current window included; one whose
// End is later, and a live one, keep their open window's rows.
func testLedgerSealEnded(t *testing.T, h Harness) {
	l := newLedger(t, h)
	end := hour(1).Add(30 * time.Second)
	ends := map[string]time.Time{"ent-a": end, "ent-b": hour(1).Add(45 * time.Minute), "ent-c": {}}
	for _, id := range []string{"ent-a", "ent-b", "ent-c"} {
		noErr(t, l.PutConsumer(bg, ledger.Consumer{EntitlementID: id, UsageReportingID: "c-" + id, End: ends[id]}, hour(0)), "PutConsumer")
		addUsage(t, l, id, hour(0).Add(10*time.Minute), "m", "{}", 1)
		addUsage(t, l, id, hour(1).Add(10*time.Second), "m", "{}", 2)
	}
	// Without Ended only the windows before Before are sealed.
	got := sealWith(t, l, ledger.SealParams{Before: hour(1)})
	equal(t, len(got), 3, "consumers sealed before hour 1")
	for id, rows := range got {
		equal(t, len(rows), 1, "rows of "+id)
		sameTime(t, rows[0].Bucket, hour(0), "row window of "+id)
	}
	// Nobody has ended by just before ent-a's End.
	n, err := l.Seal(bg, ledger.SealParams{Before: hour(1), Ended: end.Add(-time.Microsecond)}, mustNotSeal)
	noErr(t, err, "Seal before the end")
	equal(t, n, 0, "consumers sealed before any end")

	got = sealWith(t, l, ledger.SealParams{Before: hour(1), Ended: end})
	equal(t, len(got), 1, "consumers sealed at ent-a's end")
	rows := got["ent-a"]
	equal(t, len(rows), 1, "ent-a's rows of its final window")
	sameTime(t, rows[0].Bucket, hour(1), "final window")
	equal(t, rows[0].Int64, int64(2), "final window's usage")
	c, err := l.GetConsumer(bg, "ent-a")
	noErr(t, err, "GetConsumer")
	sameTime(t, c.Frontier, end, "frontier at End")
	_, err = l.AddUsage(bg, ledger.Usage{EntitlementID: "ent-a", At: hour(1).Add(20 * time.Second), Bucket: hour(1), Metric: "m", Labels: "{}", Int64: 1})
	isErr(t, err, ledger.ErrWindowSealed, "usage before End after the final window was sealed")
	n, err = l.Seal(bg, ledger.SealParams{Before: hour(1), Ended: hour(1).Add(30 * time.Minute)}, mustNotSeal)
	noErr(t, err, "Seal again")
	equal(t, n, 0, "an ended consumer is sealed once")

	// The others' open-window rows were left for their own window.
	got = sealWith(t, l, ledger.SealParams{Before: hour(2), Ended: hour(2)})
	equal(t, len(got), 2, "consumers sealed before hour 2")
	for _, id := range []string{"ent-b", "ent-c"} {
		rows := got[id]
		equal(t, len(rows), 1, "rows of "+id)
		sameTime(t, rows[0].Bucket, hour(1), "row window of "+id)
		equal(t, rows[0].Int64, int64(2), "usage of "+id)
	}
	c, err = l.GetConsumer(bg, "ent-b")
	noErr(t, err, "GetConsumer")
	sameTime(t, c.Frontier, ends["ent-b"], "ent-b's frontier at its End")
}

// testLedgerSealEndedEveryRow: an ended consumer hands fn every row it has,
// also those of windows not before Before and those past a frontier already
// beyond End (usage recorded before the cancellation was registered).
func testLedgerSealEndedEveryRow(t *testing.T, h Harness) {
	l := newLedger(t, h)
	c := ledger.Consumer{EntitlementID: "ent-1", UsageReportingID: "c"}
	noErr(t, l.PutConsumer(bg, c, hour(0)), "PutConsumer")
	sealAll(t, l, hour(1))
	addUsage(t, l, "ent-1", hour(1).Add(5*time.Minute), "m", "{}", 3)
	addUsage(t, l, "ent-1", hour(2).Add(5*time.Minute), "m", "{}", 4)
	c.End = hour(0).Add(30 * time.Minute)
	noErr(t, l.PutConsumer(bg, c, hour(9)), "PutConsumer with an End before the frontier")
	n, err := l.Seal(bg, ledger.SealParams{Before: hour(1), Ended: hour(0).Add(29 * time.Minute)}, mustNotSeal)
	noErr(t, err, "Seal before the end")
	equal(t, n, 0, "consumers sealed before the end")
	rows := sealWith(t, l, ledger.SealParams{Before: hour(1), Ended: hour(3)})["ent-1"]
	equal(t, len(rows), 2, "every row")
	sameTime(t, rows[0].Bucket, hour(1), "first row")
	sameTime(t, rows[1].Bucket, hour(2), "second row")
	got, err := l.GetConsumer(bg, "ent-1")
	noErr(t, err, "GetConsumer")
	sameTime(t, got.Frontier, hour(1), "frontier kept")
	n, err = l.Seal(bg, ledger.SealParams{Before: hour(5), Ended: hour(5)}, mustNotSeal)
	noErr(t, err, "Seal again")
	equal(t, n, 0, "nothing left")
}

// testLedgerSealEndedLimit: ended consumers count towards Limit like the
// others, and a live consumer's open window is never passed.
func testLedgerSealEndedLimit(t *testing.T, h Harness) {
	l := newLedger(t, h)
	ids := []string{"ent-a", "ent-b", "ent-c", "ent-d"}
	for i, id := range ids {
		c := ledger.Consumer{EntitlementID: id, UsageReportingID: "c-" + id}
		if i < 3 {
			c.End = hour(1).Add(time.Duration(i+1) * time.Minute)
		}
		noErr(t, l.PutConsumer(bg, c, hour(1)), "PutConsumer")
		addUsage(t, l, id, hour(1), "m", "{}", int64(i+1))
	}
	p := ledger.SealParams{Before: hour(1), Ended: hour(1).Add(10 * time.Minute), Limit: 2}
	var seen []string
	for range 4 {
		n, err := l.Seal(bg, p, func(c ledger.ConsumerState, rows []ledger.Row) (ledger.Sealed, error) {
			seen = append(seen, c.EntitlementID)
			if c.End.IsZero() {
				return ledger.Sealed{}, fmt.Errorf("live consumer %s sealed", c.EntitlementID)
			}
			if len(rows) != 1 {
				return ledger.Sealed{}, fmt.Errorf("%s: %d rows, want 1", c.EntitlementID, len(rows))
			}
			w := ledger.Window{OperationID: "op-" + c.EntitlementID, EntitlementID: c.EntitlementID, Start: hour(1), End: c.End, Labels: "{}",
				Values: []ledger.MetricValue{{Metric: "m", Int64: rows[0].Int64}}, State: ledger.StatePending, SealedAt: p.Ended}
			return ledger.Sealed{Windows: []ledger.Window{w}, Frontier: c.End}, nil
		})
		noErr(t, err, "Seal")
		if n < p.Limit {
			equal(t, n, 1, "the rest")
			break
		}
	}
	equal(t, fmt.Sprint(seen), "[ent-a ent-b ent-c]", "ended consumers sealed once each, in order")
	ws, err := l.ListWindows(bg, ledger.WindowQuery{})
	noErr(t, err, "ListWindows")
	equal(t, len(ws), 3, "windows")
	rows := sealAll(t, l, hour(2))["ent-d"]
	equal(t, len(rows), 1, "live consumer's row kept")
	equal(t, rows[0].Int64, int64(4), "live consumer's usage")
}

func testLedgerSeal(t *testing.T, h Harness) {
	l := newLedger(t, h)
	for _, id := range []string{"ent-a", "ent-b", "ent-c"} {
		noErr(t, l.PutConsumer(bg, ledger.Consumer{EntitlementID: id, UsageReportingID: "c-" + id}, hour(0)), "PutConsumer")
	}
	addUsage(t, l, "ent-a", hour(0), "m", "{}", 1)
	addUsage(t, l, "ent-a", hour(1), "m", "{}", 2) // not yet closed
	// Limit: one consumer per call, in frontier then id order.
	var seen []string
	for {
		n, err := l.Seal(bg, ledger.SealParams{Before: hour(1), Limit: 1}, func(c ledger.ConsumerState, rows []ledger.Row) (ledger.Sealed, error) {
			seen = append(seen, c.EntitlementID)
			ws := []ledger.Window{{OperationID: "op-" + c.EntitlementID, EntitlementID: c.EntitlementID, Start: hour(0), End: hour(1), Labels: "{}", State: ledger.StatePending, SealedAt: hour(1)}}
			if len(rows) > 0 {
				ws[0].Values = []ledger.MetricValue{{Metric: "m", Int64: rows[0].Int64}}
			}
			return ledger.Sealed{Windows: ws, Frontier: hour(1)}, nil
		})
		noErr(t, err, "Seal")
		if n == 0 {
			break
		}
		equal(t, n, 1, "limit")
	}
	equal(t, fmt.Sprint(seen), "[ent-a ent-b ent-c]", "consumers sealed once each, in order")
	c, err := l.GetConsumer(bg, "ent-a")
	noErr(t, err, "GetConsumer")
	sameTime(t, c.Frontier, hour(1), "frontier advanced")
	ws, err := l.ListWindows(bg, ledger.WindowQuery{EntitlementID: "ent-a"})
	noErr(t, err, "ListWindows")
	equal(t, len(ws), 1, "windows of ent-a")
	equal(t, ws[0].Values[0].Int64, int64(1), "sealed value")
	equal(t, ws[0].State, ledger.StatePending, "state")
	// A window id already present is left as it is.
	_, err = l.Seal(bg, ledger.SealParams{Before: hour(2)}, func(c ledger.ConsumerState, rows []ledger.Row) (ledger.Sealed, error) {
		return ledger.Sealed{Windows: []ledger.Window{{OperationID: "op-" + c.EntitlementID, EntitlementID: "changed", Start: hour(1), End: hour(2), Labels: "{}", State: ledger.StateRejected}}, Frontier: hour(2)}, nil
	})
	noErr(t, err, "Seal")
	ws, err = l.ListWindows(bg, ledger.WindowQuery{OperationID: "op-ent-a"})
	noErr(t, err, "ListWindows")
	equal(t, ws[0].EntitlementID, "ent-a", "existing window kept")
	equal(t, ws[0].State, ledger.StatePending, "existing window state kept")
}

func testLedgerSealError(t *testing.T, h Harness) {
	l := newLedger(t, h)
	noErr(t, l.PutConsumer(bg, ledger.Consumer{EntitlementID: "ent-1", UsageReportingID: "c"}, hour(0)), "PutConsumer")
	addUsage(t, l, "ent-1", hour(0), "m", "{}", 4)
	errBoom := errors.New("boom")
	_, err := l.Seal(bg, ledger.SealParams{Before: hour(1)}, func(ledger.ConsumerState, []ledger.Row) (ledger.Sealed, error) {
		return ledger.Sealed{}, errBoom
	})
	isErr(t, err, errBoom, "Seal error")
	rows := sealAll(t, l, hour(1))["ent-1"]
	equal(t, len(rows), 1, "rows kept after a failed seal")
	equal(t, rows[0].Int64, int64(4), "value kept")
}

// testLedgerSealHeld: consumers in SealParams.Held are left untouched (rows,
// frontier, no window) and do not count against Limit; a later call without
// them seals them.
func testLedgerSealHeld(t *testing.T, h Harness) {
	l := newLedger(t, h)
	ids := []string{"ent-a", "ent-b", "ent-c"}
	for i, id := range ids {
		noErr(t, l.PutConsumer(bg, ledger.Consumer{EntitlementID: id, UsageReportingID: "c-" + id}, hour(0)), "PutConsumer")
		addUsage(t, l, id, hour(0).Add(time.Minute), "m", "{}", int64(i+1))
	}
	held := map[string]bool{"ent-a": true, "ent-b": true}
	var seen []string
	fn := func(c ledger.ConsumerState, rows []ledger.Row) (ledger.Sealed, error) {
		seen = append(seen, c.EntitlementID)
		w := ledger.Window{OperationID: "op-" + c.EntitlementID, EntitlementID: c.EntitlementID, Start: hour(0), End: hour(1), Labels: "{}",
			Values: []ledger.MetricValue{{Metric: "m", Int64: rows[0].Int64}}, State: ledger.StatePending, SealedAt: hour(1)}
		return ledger.Sealed{Windows: []ledger.Window{w}, Frontier: hour(1)}, nil
	}
	n, err := l.Seal(bg, ledger.SealParams{Before: hour(1), Limit: 1, Held: held}, fn)
	noErr(t, err, "Seal with held consumers")
	equal(t, n, 1, "sealed consumers (held ones do not count)")
	equal(t, fmt.Sprint(seen), "[ent-c]", "only the consumer not held is sealed")
	for _, id := range []string{"ent-a", "ent-b"} {
		c, err := l.GetConsumer(bg, id)
		noErr(t, err, "GetConsumer")
		equal(t, c.Frontier.Equal(hour(0)), true, id+": frontier untouched")
	}
	n, err = l.Seal(bg, ledger.SealParams{Before: hour(1), Held: held}, mustNotSeal)
	noErr(t, err, "Seal with only held consumers left")
	equal(t, n, 0, "nothing to seal but held consumers")
	got := sealAll(t, l, hour(1))
	equal(t, len(got["ent-a"]), 1, "ent-a's row kept while held, sealed once released")
	equal(t, got["ent-b"][0].Int64, int64(2), "ent-b's usage kept while held")
}
