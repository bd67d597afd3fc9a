package usage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/gcpmarketplace/gcpmarketplace/usage/ledger"
)

// Source gives a consumer's usage totals from the vendor's own records (a
// metering table, a warehouse), for vendors that already meter there and do
// not want to call Record. See Config.Source.
//
// Totals returns, for the consumer q names, the total of each metric per
// set of user labels over [q.Start, q.End): at most one Total per metric
// and label set (duplicates are added up), none for a metric without usage.
// It is called once per window and consumer when the window is due to be
// sealed (its end plus the seal grace, Config.SealGrace), from several
// goroutines at once, each call bounded by Config.RPCTimeout. Its answer is
// final: once sealed, the window's numbers are persisted and sent under one
// operation id, and usage the vendor's records gain later for that interval
// is never billed. Give late writes time with Config.SealGrace.
//
// An error (or a timeout) holds the consumer: none of its windows is
// sealed, it is asked again at the next flush, and a DeadlineAlert with
// Held set fires as the window's reporting deadline nears and passes.
type Source interface {
	Totals(ctx context.Context, q SourceQuery) ([]Total, error)
}

// SourceFunc adapts a function to Source.
type SourceFunc func(ctx context.Context, q SourceQuery) ([]Total, error)

// Totals calls f(ctx, q).
func (f SourceFunc) Totals(ctx context.Context, q SourceQuery) ([]Total, error) { return f(ctx, q) }

// SourceQuery is one window of one consumer.
type SourceQuery struct {
	EntitlementID    string
	UsageReportingID string
	// Start and End bound the window, [Start, End): never before the
	// window of the consumer's first registration nor after its End.
	Start, End time.Time
}

// Total is a Source's total of one metric with one set of user labels.
type Total struct {
	// Metric is the full metric name or the metric id, one of the metrics
	// Config.SourceMetrics gave the source.
	Metric string
	// Int64 is the total of an Int64 metric, not negative.
	Int64 int64
	// Double is the total of a Double metric, finite and not negative.
	Double float64
	// Labels are the operation's userLabels, as in Record.Labels.
	Labels map[string]string
}

// ErrBadTotal: a Source returned a total the reporter cannot bill (a
// negative or non-finite value, a metric that is not the source's, bad user
// labels). The consumer's windows wait, as for any source error; nothing is
// dropped or clamped.
var ErrBadTotal = errors.New("usage: usage source returned an invalid total")

// SourceError is why a consumer's windows were not sealed: its Source
// failed or answered a total wrapping ErrBadTotal for the window [Start,
// End). It is logged and carried by DeadlineAlert.Held.
type SourceError struct {
	EntitlementID string
	Start, End    time.Time
	Err           error
}

func (e *SourceError) Error() string {
	return fmt.Sprintf("usage: usage source for %s, window [%s, %s): %v", e.EntitlementID,
		e.Start.Format(time.RFC3339), e.End.Format(time.RFC3339), e.Err)
}

func (e *SourceError) Unwrap() error { return e.Err }

// sourceWindow is one window whose totals were read from the source before
// Seal, kept as the usage rows Seal's fn folds into the window.
type sourceWindow struct {
	start, end time.Time
	rows       []ledger.Row
}

// sourceTotals is what the source answered for the consumers due to be
// sealed in one Flush, by entitlement id. It is read by the SealFunc, which
// must not do I/O.
type sourceTotals map[string][]sourceWindow

// errSourceStale: a consumer changed between the source read and Seal (a
// concurrent Register moved its End, another replica sealed it), so the
// totals read are not for the windows to seal; Flush reads again.
var errSourceStale = errors.New("usage: consumer changed since its usage source was read")

// readSource asks the source for the totals of every window due to be
// sealed under p, before Seal, since I/O must stay outside the ledger's
// transaction. A consumer whose source fails is added to p.Held (logged,
// and alerted as its oldest window's deadline nears). It returns nil when
// the reporter has no source.
func (r *Reporter) readSource(ctx context.Context, p *ledger.SealParams, now time.Time) (sourceTotals, error) {
	if r.cfg.source == nil {
		return nil, nil
	}
	consumers, err := r.ledger.ListConsumers(ctx, ledger.ConsumerQuery{})
	if err != nil {
		return nil, fmt.Errorf("usage: flush: list consumers for the usage source: %w", err)
	}
	type failure struct {
		c   ledger.ConsumerState
		due [][2]time.Time
		err error
	}
	out := sourceTotals{}
	var failed []failure
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, r.cfg.concurrency)
	for _, c := range consumers {
		due := r.dueWindows(c, *p)
		if len(due) == 0 || p.Held[c.EntitlementID] {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			ws, err := r.readConsumer(ctx, c, due)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed = append(failed, failure{c, due, err})
				return
			}
			out[c.EntitlementID] = ws
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("usage: flush: reading the usage source: %w", err)
	}
	if len(failed) > 0 {
		// One line per flush, not per consumer: a warehouse outage would
		// otherwise log every consumer every minute.
		r.log.WarnContext(ctx, "usage source failed: these consumers' windows wait", slog.Int("consumers", len(failed)),
			slog.String("first", failed[0].c.EntitlementID), slog.Any("error", failed[0].err))
	}
	for _, f := range failed {
		r.holdForSource(ctx, p, f.c, f.due, f.err, now)
	}
	return out, nil
}

// readConsumer reads and validates the totals of c's due windows.
func (r *Reporter) readConsumer(ctx context.Context, c ledger.ConsumerState, due [][2]time.Time) ([]sourceWindow, error) {
	out := make([]sourceWindow, 0, len(due))
	for _, d := range due {
		q := SourceQuery{EntitlementID: c.EntitlementID, UsageReportingID: c.UsageReportingID, Start: d[0], End: d[1]}
		qctx, cancel := context.WithTimeout(ctx, r.cfg.rpcTimeout)
		totals, err := r.cfg.source.Totals(qctx, q)
		cancel()
		if err == nil {
			var rows []ledger.Row
			rows, err = r.rowsOfTotals(d[0], totals)
			if err == nil {
				out = append(out, sourceWindow{start: d[0], end: d[1], rows: rows})
				continue
			}
		}
		return nil, &SourceError{EntitlementID: c.EntitlementID, Start: d[0], End: d[1], Err: err}
	}
	return out, nil
}

// rowsOfTotals validates a source's answer for the window starting at start
// and turns it into usage rows, one per metric and label set.
func (r *Reporter) rowsOfTotals(start time.Time, totals []Total) ([]ledger.Row, error) {
	type key struct{ metric, labels string }
	idx := map[key]int{}
	var rows []ledger.Row
	for _, t := range totals {
		metric := t.Metric
		if !strings.Contains(metric, "/") {
			metric = r.service + "/" + metric
		}
		if !r.cfg.fromSource[metric] {
			return nil, fmt.Errorf("metric %q is not one of the source's metrics: %w", shorten(t.Metric), ErrBadTotal)
		}
		kind := r.cfg.metrics[metric]
		switch {
		case kind == Int64 && (t.Int64 < 0 || t.Double != 0):
			return nil, fmt.Errorf("int64 metric %s: value %d, double value %v: %w", metric, t.Int64, t.Double, ErrBadTotal)
		case kind == Double && (math.IsNaN(t.Double) || math.IsInf(t.Double, 0) || t.Double < 0 || t.Int64 != 0):
			return nil, fmt.Errorf("double metric %s: value %d, double value %v: %w", metric, t.Int64, t.Double, ErrBadTotal)
		}
		if err := validateLabels(t.Labels); err != nil {
			return nil, fmt.Errorf("metric %s: %v: %w", metric, err, ErrBadTotal)
		}
		k := key{metric, encodeLabels(t.Labels)}
		i, ok := idx[k]
		if !ok {
			idx[k], i = len(rows), len(rows)
			rows = append(rows, ledger.Row{Bucket: start, Metric: metric, Kind: kind, Labels: k.labels})
		}
		if kind == Int64 && rows[i].Int64 > math.MaxInt64-t.Int64 {
			return nil, fmt.Errorf("metric %s: totals overflow int64: %w", metric, ErrBadTotal)
		}
		rows[i].Int64 += t.Int64
		rows[i].Double += t.Double
		if math.IsInf(rows[i].Double, 0) {
			return nil, fmt.Errorf("metric %s: totals overflow float64: %w", metric, ErrBadTotal)
		}
	}
	return rows, nil
}

// holdForSource keeps c out of this flush's Seal and alerts as
// the deadline of its oldest due window nears or passes.
func (r *Reporter) holdForSource(ctx context.Context, p *ledger.SealParams, c ledger.ConsumerState, due [][2]time.Time, err error, now time.Time) {
	if p.Held == nil {
		p.Held = map[string]bool{}
	}
	p.Held[c.EntitlementID] = true
	w := Window{EntitlementID: c.EntitlementID, ConsumerID: c.UsageReportingID, Start: due[0][0], End: due[0][1],
		Deadline: Deadline(due[0][0], due[0][1]), Reason: err.Error()}
	r.log.DebugContext(ctx, "usage source failed: the consumer's windows wait", slog.String("entitlement", c.EntitlementID),
		slog.Time("window_start", w.Start), slog.Time("deadline", w.Deadline), slog.Any("error", err))
	if r.cfg.onAlert != nil {
		r.alertUnsealed(ctx, w, err, now)
	}
}

// sourceRows is the hook of sealFunc: the rows the source answered for c's
// windows, which must be exactly the windows sealFunc is about to seal.
func (t sourceTotals) sourceRows(r *Reporter, c ledger.ConsumerState, p ledger.SealParams) ([]ledger.Row, error) {
	if t == nil {
		return nil, nil
	}
	due := r.dueWindows(c, p)
	got := t[c.EntitlementID]
	if len(got) != len(due) {
		return nil, fmt.Errorf("%s: %d windows due, %d read: %w", c.EntitlementID, len(due), len(got), errSourceStale)
	}
	var rows []ledger.Row
	for i, d := range due {
		if !got[i].start.Equal(d[0]) || !got[i].end.Equal(d[1]) {
			return nil, fmt.Errorf("%s: window [%v, %v) due, [%v, %v) read: %w", c.EntitlementID, d[0], d[1], got[i].start, got[i].end, errSourceStale)
		}
		rows = append(rows, got[i].rows...)
	}
	return rows, nil
}
