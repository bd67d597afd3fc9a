package storetest

import (
	"testing"
	"time"

	"github.com/gcpmarketplace/gcpmarketplace/usage/ledger"
)

// testLedgerListRangePages: WindowQuery's From/To bound the windows' Start,
// and After resumes a listing in (Start, OperationID) order, ties on Start
// included, so that pages of any size together list every window exactly
// once (what the Reporter's read-back relies on).
func testLedgerListRangePages(t *testing.T, h Harness) {
	l := newLedger(t, h)
	for _, id := range []string{"ent-a", "ent-b", "ent-c"} {
		noErr(t, l.PutConsumer(bg, ledger.Consumer{EntitlementID: id, UsageReportingID: "c-" + id}, hour(0)), "PutConsumer")
		for h := range 3 {
			addUsage(t, l, id, hour(h).Add(5*time.Minute), "m", "{}", int64(h+1))
		}
	}
	sealAll(t, l, hour(3))
	all, err := l.ListWindows(bg, ledger.WindowQuery{})
	noErr(t, err, "ListWindows")
	equal(t, len(all), 9, "windows")

	count := func(q ledger.WindowQuery, want int, what string) []ledger.Window {
		t.Helper()
		ws, err := l.ListWindows(bg, q)
		noErr(t, err, what)
		equal(t, len(ws), want, what)
		for _, w := range ws {
			if (!q.From.IsZero() && w.Start.Before(q.From)) || (!q.To.IsZero() && !w.Start.Before(q.To)) {
				t.Fatalf("%s: window starting %v outside [%v, %v)", what, w.Start, q.From, q.To)
			}
		}
		return ws
	}
	count(ledger.WindowQuery{From: hour(1)}, 6, "From")
	count(ledger.WindowQuery{To: hour(2)}, 6, "To")
	count(ledger.WindowQuery{From: hour(1), To: hour(2)}, 3, "From and To")
	count(ledger.WindowQuery{From: hour(1).Add(time.Minute), To: hour(2)}, 0, "From inside a window")
	count(ledger.WindowQuery{From: hour(1), EntitlementID: "ent-b"}, 2, "From and entitlement")

	// A cursor between two windows of the same Start: the tie is broken by
	// the operation id.
	tie := count(ledger.WindowQuery{After: ledger.WindowKey{Start: hour(1), OperationID: "ent-b"}}, 5, "After a key between ties")
	equal(t, tie[0].Start.Equal(hour(1)), true, "first window after the cursor starts at hour 1")
	equal(t, tie[0].EntitlementID, "ent-b", "first window after the cursor")

	for _, size := range []int{1, 2, 4} {
		var got []ledger.Window
		var after ledger.WindowKey
		for pages := 0; ; pages++ {
			if pages > len(all) {
				t.Fatalf("page size %d: paging does not end", size)
			}
			page, err := l.ListWindows(bg, ledger.WindowQuery{After: after, Limit: size})
			noErr(t, err, "ListWindows page")
			if len(page) > size {
				t.Fatalf("page size %d: got %d windows", size, len(page))
			}
			if len(page) == 0 {
				break
			}
			got = append(got, page...)
			after = page[len(page)-1].Key()
		}
		equal(t, len(got), len(all), "windows over every page")
		for i := range got {
			equal(t, got[i].OperationID, all[i].OperationID, "paged order")
		}
	}

	// Paging composes with the other filters.
	var ids []string
	q := ledger.WindowQuery{EntitlementID: "ent-c", From: hour(1), Limit: 1}
	for {
		page, err := l.ListWindows(bg, q)
		noErr(t, err, "ListWindows filtered page")
		if len(page) == 0 {
			break
		}
		ids = append(ids, page[0].OperationID)
		q.After = page[0].Key()
	}
	equal(t, len(ids), 2, "filtered pages")
}
