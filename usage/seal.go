package usage

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/gcpmarketplace/gcpmarketplace/usage/ledger"
)

// sealBatch is how many consumers one Ledger.Seal call seals.
const sealBatch = 1000

// sealFunc builds the windows of one consumer: every window from its
// frontier up to p.Before (or its End) gets one operation per set of user
// labels that has usage, or one zero operation over every declared metric
// when it has none, so that each consumer's reported windows are contiguous.
// A consumer ended by p (SealParams.EndedBy) is sealed through End even
// when p.Before is earlier: its final window can take no more usage, and its
// deadline runs from End, not from the next window boundary. Rows of
// windows at or after End (recorded before the cancellation was registered)
// become one Rejected window each: Google must never bill them.
//
// With a usage source, src holds its totals for the windows due (read by
// readSource before Seal): they are folded in as rows of those windows, so
// Seal persists them with the windows, atomically.
func (r *Reporter) sealFunc(p ledger.SealParams, now time.Time, src sourceTotals) ledger.SealFunc {
	allMetrics := make([]string, 0, len(r.cfg.metrics))
	for m := range r.cfg.metrics {
		allMetrics = append(allMetrics, m)
	}
	sort.Strings(allMetrics)
	return func(c ledger.ConsumerState, rows []ledger.Row) (ledger.Sealed, error) {
		extra, err := src.sourceRows(r, c, p)
		if err != nil {
			return ledger.Sealed{}, err
		}
		if len(extra) > 0 {
			rows = slices.Concat(rows, extra) // a copy: rows belongs to the ledger
		}
		g := r.groupRows(c, rows)
		s := sealing{c: c, now: now}
		out := ledger.Sealed{Frontier: c.Frontier}
		for _, due := range r.dueWindows(c, p) {
			ws, we := due[0], due[1]
			var labelSets []string
			for k := range g.live {
				if k.start == ws.UnixNano() {
					labelSets = append(labelSets, k.labels)
				}
			}
			sort.Strings(labelSets)
			if len(labelSets) == 0 {
				vals := make([]MetricValue, len(allMetrics))
				for i, m := range allMetrics {
					vals[i] = MetricValue{Metric: m, Kind: r.cfg.metrics[m]}
				}
				out.Windows = append(out.Windows, s.window(ws, we, noLabels, vals))
			}
			for _, labels := range labelSets {
				k := rowGroup{ws.UnixNano(), labels}
				out.Windows = append(out.Windows, s.window(ws, we, labels, sumRows(g.live[k])))
				delete(g.live, k)
			}
			out.Frontier = we
		}
		if len(g.live) > 0 {
			// Every row must end up in a window: refuse to seal (and so to
			// delete the rows) rather than lose usage.
			return ledger.Sealed{}, fmt.Errorf("usage: seal %s: %d usage rows fall in no window (frontier %v, end %v)", c.EntitlementID, len(g.live), c.Frontier, c.End)
		}
		for _, k := range g.afterEndKeys {
			start := time.Unix(0, k.start).UTC()
			out.Windows = append(out.Windows, s.afterEndWindow(start, r.windowStart(start).Add(r.cfg.window), k.labels, sumRows(g.afterEnd[k])))
		}
		return out, nil
	}
}

// rowGroup is a window start (Unix ns) and a label set: the rows of one
// operation.
type rowGroup struct {
	start  int64
	labels string
}

// groupedRows are a consumer's rows by the operation they go to.
type groupedRows struct {
	live         map[rowGroup][]ledger.Row // rows before End, by window and labels
	afterEnd     map[rowGroup][]ledger.Row // rows at or after End
	afterEndKeys []rowGroup                // afterEnd's keys, in the order met
}

// groupRows sorts c's rows into the windows they belong to. Rows are
// buckets of a window (bucketStart); a bucket that starts at or after End
// is usage the consumer's end refuses.
func (r *Reporter) groupRows(c ledger.ConsumerState, rows []ledger.Row) groupedRows {
	g := groupedRows{live: map[rowGroup][]ledger.Row{}, afterEnd: map[rowGroup][]ledger.Row{}}
	for _, row := range rows {
		k := rowGroup{r.windowStart(row.Bucket).UnixNano(), row.Labels}
		if !c.End.IsZero() && !row.Bucket.Before(c.End) {
			if _, ok := g.afterEnd[k]; !ok {
				g.afterEndKeys = append(g.afterEndKeys, k)
			}
			g.afterEnd[k] = append(g.afterEnd[k], row)
			continue
		}
		if k.start < c.Frontier.UnixNano() {
			k.start = c.Frontier.UnixNano() // the frontier's window, begun mid-window (Start or End)
		}
		g.live[k] = append(g.live[k], row)
	}
	return g
}

// sealing builds the windows of one consumer sealed at now.
type sealing struct {
	c   ledger.ConsumerState
	now time.Time
}

// window is the Pending window [start, end) of the consumer with labels
// and vals.
func (s sealing) window(start, end time.Time, labels string, vals []MetricValue) Window {
	return Window{
		OperationID:   OperationID(s.c.EntitlementID, start, metricNames(vals), labels),
		EntitlementID: s.c.EntitlementID,
		ConsumerID:    s.c.UsageReportingID,
		Start:         start,
		End:           end,
		Labels:        labels,
		Values:        vals,
		State:         StatePending,
		Deadline:      Deadline(start, end),
		SealedAt:      s.now,
	}
}

// afterEndWindow is the Rejected window of usage recorded at or after the
// consumer's End, under an id no billable window can have.
func (s sealing) afterEndWindow(start, end time.Time, labels string, vals []MetricValue) Window {
	w := s.window(start, end, labels, vals)
	w.OperationID = afterEndOperationID(s.c.EntitlementID, start, metricNames(vals), labels, s.now)
	w.State = StateRejected
	w.Reason = fmt.Sprintf("usage recorded at or after the entitlement's end %s (registered after the usage); never reported", s.c.End.Format(time.RFC3339))
	return w
}

func metricNames(vals []MetricValue) []string {
	names := make([]string, len(vals))
	for i, v := range vals {
		names[i] = v.Metric
	}
	return names
}

// sumRows turns a window's rows for one label set into metric values sorted
// by metric.
func sumRows(rows []ledger.Row) []MetricValue {
	byMetric := map[string]*MetricValue{}
	for _, row := range rows {
		v, ok := byMetric[row.Metric]
		if !ok {
			v = &MetricValue{Metric: row.Metric, Kind: row.Kind}
			byMetric[row.Metric] = v
		}
		v.Int64 += row.Int64
		v.Double += row.Double
	}
	out := make([]MetricValue, 0, len(byMetric))
	for _, v := range byMetric {
		out = append(out, *v)
	}
	slices.SortFunc(out, func(a, b MetricValue) int { return strings.Compare(a.Metric, b.Metric) })
	return out
}

// dueWindows lists the windows sealFunc seals for c under p: from its
// frontier to p.Before, or to its End when that is earlier or c is ended.
// The source is asked for exactly these.
func (r *Reporter) dueWindows(c ledger.ConsumerState, p ledger.SealParams) [][2]time.Time {
	limit := p.Before
	if !c.End.IsZero() && (c.End.Before(limit) || p.EndedBy(c.Consumer)) {
		limit = c.End
	}
	var out [][2]time.Time
	for ws := c.Frontier; ws.Before(limit); {
		we := r.windowStart(ws).Add(r.cfg.window)
		if !c.End.IsZero() && c.End.Before(we) {
			we = c.End
		}
		out = append(out, [2]time.Time{ws, we})
		ws = we
	}
	return out
}

// seal seals every window due under p, first reading the usage source (if
// any) for them. A consumer that changed between that read and Seal makes
// Seal roll back its batch (errSourceStale); the read is then repeated, a
// few times, rather than failing the whole flush.
func (r *Reporter) seal(ctx context.Context, p ledger.SealParams, now time.Time) error {
	for attempt := 1; ; attempt++ {
		q := p
		q.Held = maps.Clone(p.Held)
		src, err := r.readSource(ctx, &q, now)
		if err != nil {
			return err
		}
		fn := r.sealFunc(q, now, src)
		for {
			var n int
			n, err = r.ledger.Seal(ctx, q, fn)
			if err != nil || n < sealBatch {
				break
			}
		}
		if errors.Is(err, errSourceStale) && attempt < 3 {
			continue
		}
		if err != nil {
			return fmt.Errorf("usage: flush: seal windows before %v and consumers ended by %v: %w", p.Before, p.Ended, err)
		}
		return nil
	}
}
