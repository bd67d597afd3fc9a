package usage

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"time"

	"github.com/gcpmarketplace/gcpmarketplace/usage/ledger"
)

// Read-back page sizes (ReadBackQuery.Limit).
const (
	defaultReadBackLimit = 1000
	maxReadBackLimit     = 10000
)

// ReadBackQuery selects the windows Reporter.ReadBack lists and
// Reporter.Export writes. Its zero value selects every window the ledger
// holds; set fields narrow the result (they are ANDed).
type ReadBackQuery struct {
	EntitlementID string        // "" = every consumer
	States        []WindowState // nil = every state
	// From and To bound the windows' Start: From <= Start < To (a zero time
	// leaves that side open). To reconcile a billing month, pass its first
	// instant and the next month's, in UTC.
	From, To time.Time
	// After resumes a listing after this window (the key ReadBack returned
	// for the next page); zero: from the first window.
	After WindowKey
	// Limit is the page size of ReadBack, and the size of the pages Export
	// reads: <= 0 means 1,000; more than 10,000 is
	// refused.
	Limit int
}

func (q ReadBackQuery) check() (ledger.WindowQuery, error) {
	var errs []error
	for _, s := range q.States {
		if !slices.Contains([]WindowState{StatePending, StateUnknown, StateReported, StateRejected, StateExpired}, s) {
			errs = append(errs, fmt.Errorf("unknown state %q", shorten(string(s))))
		}
	}
	if !q.From.IsZero() && !q.To.IsZero() && q.To.Before(q.From) {
		errs = append(errs, fmt.Errorf("to %v before from %v", q.To.UTC(), q.From.UTC()))
	}
	limit := q.Limit
	switch {
	case limit <= 0:
		limit = defaultReadBackLimit
	case limit > maxReadBackLimit:
		errs = append(errs, fmt.Errorf("limit %d above %d", limit, maxReadBackLimit))
	}
	if err := errors.Join(errs...); err != nil {
		return ledger.WindowQuery{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return ledger.WindowQuery{
		States: q.States, EntitlementID: q.EntitlementID, From: q.From, To: q.To, After: q.After,
		// One more than the page, to know whether another page follows
		// without an extra query that would always come back empty.
		Limit: limit + 1,
	}, nil
}

// ReadBack lists, oldest first (by window Start, then operation id), the
// sealed windows q selects: what was reported (or is still to be, or was
// refused) per consumer, window and set of labels, with each window's
// operation id, metric values, state, attempts and times. It returns at
// most q.Limit windows and the key to pass as q.After for the next page,
// zero when there is none. Paging by key never lists a window twice nor
// skips one that existed throughout, however windows are sealed or pruned
// meanwhile; but each page is read at its own moment (a window's state may
// have moved on since an earlier page), and a window sealed during the
// listing with a Start before the cursor is not in it.
//
// The ledger keeps Reported and Rejected windows for Config.Retention
// (40 days by default, after they were sealed) and Flush then
// prunes them: export what you need to keep longer (see Export).
func (r *Reporter) ReadBack(ctx context.Context, q ReadBackQuery) (ws []Window, next WindowKey, err error) {
	wq, err := q.check()
	if err != nil {
		return nil, WindowKey{}, fmt.Errorf("usage: read back: %w", err)
	}
	ws, err = r.ledger.ListWindows(ctx, wq)
	if err != nil {
		return nil, WindowKey{}, fmt.Errorf("usage: read back: %w", err)
	}
	if len(ws) == wq.Limit {
		ws = ws[:wq.Limit-1]
		next = ws[len(ws)-1].Key()
	}
	return ws, next, nil
}

// ExportFormat is the encoding Export writes.
type ExportFormat string

// Export formats.
const (
	// ExportCSV is RFC 4180 CSV with a header line of ExportColumns.
	ExportCSV ExportFormat = "csv"
	// ExportJSONLines is one JSON object per line (JSON Lines) whose keys
	// are ExportColumns; labels is a JSON object, attempts a number and
	// every other field a string.
	ExportJSONLines ExportFormat = "jsonl"
)

// ParseExportFormat returns the format named s ("csv" or "jsonl"), or an
// error wrapping ErrInvalid.
func ParseExportFormat(s string) (ExportFormat, error) {
	switch f := ExportFormat(s); f {
	case ExportCSV, ExportJSONLines:
		return f, nil
	}
	return "", fmt.Errorf("usage: export format %q: want csv or jsonl: %w", shorten(s), ErrInvalid)
}

// ExportColumns returns the columns of Export, in CSV order, one line per
// metric of each window. They are stable: columns may be added at the end,
// never renamed, removed or reordered.
//
//   - operationId: the Service Control operation id (check and report).
//   - entitlementId: the Procurement entitlement id.
//   - consumerId: the Service Control consumerId the window was sealed
//     with (the entitlement's usageReportingId).
//   - metric: the full metric name, "<service>/<metric>".
//   - value: the amount reported, in decimal; a string in JSON too, as
//     Google encodes int64 values, so no digit is lost. An idle hour's
//     operation carries every declared metric at 0.
//   - labels: the operation's user labels as a JSON object ("{}": none).
//   - windowStart, windowEnd: the operation's interval [start, end), RFC
//     3339 in UTC.
//   - state: pending, unknown, reported, rejected or expired (see the
//     package documentation). Only reported lines were confirmed billed;
//     unknown and expired ones may have been.
//   - reportedAt: when Google accepted it (RFC 3339 UTC), empty otherwise.
//   - attempts: how many report calls carried it.
//   - reason: why it is not reported (last error, rejection), or an
//     operator's settlement.
func ExportColumns() []string {
	return []string{
		"operationId", "entitlementId", "consumerId", "metric", "value", "labels",
		"windowStart", "windowEnd", "state", "reportedAt", "attempts", "reason",
	}
}

// exportLine is one line of Export, in the order of ExportColumns.
type exportLine struct {
	OperationID   string          `json:"operationId"`
	EntitlementID string          `json:"entitlementId"`
	ConsumerID    string          `json:"consumerId"`
	Metric        string          `json:"metric"`
	Value         string          `json:"value"`
	Labels        json.RawMessage `json:"labels"`
	WindowStart   string          `json:"windowStart"`
	WindowEnd     string          `json:"windowEnd"`
	State         WindowState     `json:"state"`
	ReportedAt    string          `json:"reportedAt"`
	Attempts      int             `json:"attempts"`
	Reason        string          `json:"reason"`
}

func (l exportLine) csv() []string {
	return []string{
		l.OperationID, l.EntitlementID, l.ConsumerID, l.Metric, l.Value, string(l.Labels),
		l.WindowStart, l.WindowEnd, string(l.State), l.ReportedAt, strconv.Itoa(l.Attempts), l.Reason,
	}
}

func exportTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// exportLines is w's lines, one per metric.
func exportLines(w Window) []exportLine {
	labels := json.RawMessage(w.Labels)
	if !json.Valid(labels) {
		// The ledger only holds canonical labels; never emit a line that
		// breaks the JSON Lines stream whatever a store returns.
		labels, _ = json.Marshal(w.Labels)
	}
	out := make([]exportLine, len(w.Values))
	for i, v := range w.Values {
		value := strconv.FormatInt(v.Int64, 10)
		if v.Kind == Double {
			value = strconv.FormatFloat(v.Double, 'g', -1, 64)
		}
		out[i] = exportLine{
			OperationID: w.OperationID, EntitlementID: w.EntitlementID, ConsumerID: w.ConsumerID,
			Metric: v.Metric, Value: value, Labels: labels,
			WindowStart: exportTime(w.Start), WindowEnd: exportTime(w.End),
			State: w.State, ReportedAt: exportTime(w.ReportedAt), Attempts: w.Attempts, Reason: w.Reason,
		}
	}
	return out
}

// Export writes the windows q selects (every page of ReadBack from
// q.After, q.Limit windows at a time, so memory stays bounded) to w in
// format, one line per metric of each window (see ExportColumns), and
// returns how many lines it wrote, the CSV header not counted. It is meant
// to be reconciled with Cloud Billing's export: join on the operation's
// consumer, metric and interval, and sum the reported lines.
//
// An error after the first line leaves w with a truncated export: the
// caller must discard it (an HTTP handler should abort the response rather
// than end it normally). Windows pruned after the retention (Config.Retention)
// are no longer listed.
func (r *Reporter) Export(ctx context.Context, w io.Writer, format ExportFormat, q ReadBackQuery) (lines int, err error) {
	if _, err := ParseExportFormat(string(format)); err != nil {
		return 0, err
	}
	if _, err := q.check(); err != nil {
		return 0, fmt.Errorf("usage: export: %w", err)
	}
	var write func(exportLine) error
	var flush func() error
	if format == ExportCSV {
		cw := csv.NewWriter(w)
		write = func(l exportLine) error { return cw.Write(l.csv()) }
		flush = func() error { cw.Flush(); return cw.Error() }
		if err := cw.Write(ExportColumns()); err != nil {
			return 0, fmt.Errorf("usage: export: %w", err)
		}
	} else {
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		write = func(l exportLine) error { return enc.Encode(l) }
		flush = func() error { return nil }
	}
	for {
		ws, next, err := r.ReadBack(ctx, q)
		if err != nil {
			return lines, err
		}
		for _, win := range ws {
			for _, l := range exportLines(win) {
				if err := write(l); err != nil {
					return lines, fmt.Errorf("usage: export: %w", err)
				}
				lines++
			}
		}
		if err := flush(); err != nil {
			return lines, fmt.Errorf("usage: export: %w", err)
		}
		if next.IsZero() {
			return lines, nil
		}
		q.After = next
	}
}
