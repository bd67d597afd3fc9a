package usage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"google.golang.org/api/googleapi"
	servicecontrol "google.golang.org/api/servicecontrol/v1"
)

// Batch sizes of the flush loop's ledger calls.
const (
	sealBatch  = 1000
	claimBatch = 20000
)

// operationName is sent as Operation.operationName ("reserved for future
// use" by Service Control).
const operationName = "gcpmarketplace usage report"

// Run flushes now and then every flush interval until ctx is done; it then
// returns nil. Flush errors are logged and retried at the next tick: nothing
// is lost, since the ledger keeps every window until it is confirmed.
func (r *Reporter) Run(ctx context.Context) error {
	t := time.NewTicker(r.cfg.interval)
	defer t.Stop()
	for {
		if err := r.Flush(ctx); err != nil && ctx.Err() == nil {
			r.log.ErrorContext(ctx, "usage flush failed; retrying at the next tick", slog.Any("error", err))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Flush seals every closed window (catching up all the windows missed while
// nothing flushed), then checks (each with its own operation id, up to
// WithMaxChecksPerFlush calls) and reports every window not yet confirmed
// whose lease is free. It returns after one pass; windows that could not be
// sent (blocked consumer, transient failure, check budget spent) wait for a
// later Flush. If ctx ends during the pass, Flush returns an error wrapping
// ctx.Err().
func (r *Reporter) Flush(ctx context.Context) error {
	r.flushMu.Lock()
	defer r.flushMu.Unlock()
	now := r.cfg.now().UTC()
	ended := now.Add(-r.cfg.grace)
	before := r.windowStart(ended)
	p := SealParams{Before: before, Ended: ended, Limit: sealBatch}
	held, err := r.prepareSeal(ctx, p, now)
	if err != nil {
		return err
	}
	p.Held = held
	if err := r.seal(ctx, p, now); err != nil {
		return err
	}
	blocked, err := r.ledger.ListConsumers(ctx, ConsumerQuery{BlockedOnly: true})
	if err != nil {
		return fmt.Errorf("usage: flush: list blocked consumers: %w", err)
	}
	f := &flush{r: r, now: now, blocked: map[string]Block{}, checksLeft: r.cfg.maxChecks}
	for _, c := range blocked {
		f.blocked[c.EntitlementID] = c.Block
	}
	for {
		ws, err := r.ledger.ClaimWindows(ctx, ClaimParams{Owner: r.cfg.owner, Now: now, LeaseUntil: now.Add(r.cfg.lease), Limit: claimBatch})
		if err != nil {
			return fmt.Errorf("usage: flush: claim windows: %w", err)
		}
		if len(ws) == 0 {
			break
		}
		if err := f.process(ctx, ws); err != nil {
			return err
		}
		// Once the check budget is spent, the windows released unchecked
		// would only be claimed again: they wait for the next flush.
		if len(ws) < claimBatch || f.checksLeft == 0 {
			break
		}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("usage: flush interrupted: %w", err)
	}
	return r.prune(ctx, now)
}

func (r *Reporter) prune(ctx context.Context, now time.Time) error {
	r.mu.Lock()
	due := now.Sub(r.lastPrune) >= time.Hour
	if due {
		r.lastPrune = now
	}
	r.mu.Unlock()
	if !due {
		return nil
	}
	if _, err := r.ledger.PruneWindows(ctx, now.Add(-r.cfg.retention)); err != nil {
		return fmt.Errorf("usage: flush: prune windows: %w", err)
	}
	return nil
}

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
func (r *Reporter) sealFunc(p SealParams, now time.Time, src sourceTotals) SealFunc {
	allMetrics := make([]string, 0, len(r.cfg.metrics))
	for m := range r.cfg.metrics {
		allMetrics = append(allMetrics, m)
	}
	sort.Strings(allMetrics)
	return func(c ConsumerState, rows []UsageRow) (Sealed, error) {
		extra, err := src.sourceRows(r, c, p)
		if err != nil {
			return Sealed{}, err
		}
		if len(extra) > 0 {
			rows = slices.Concat(rows, extra) // a copy: rows belongs to the ledger
		}
		type key struct {
			start  int64
			labels string
		}
		groups := map[key][]UsageRow{}
		afterEnd := map[key][]UsageRow{}
		var afterEndKeys []key
		for _, row := range rows {
			// Rows are buckets of a window (bucketStart); a bucket that
			// starts at or after End is usage the consumer's end refuses.
			k := key{r.windowStart(row.Window).UnixNano(), row.Labels}
			if !c.End.IsZero() && !row.Window.Before(c.End) {
				if _, ok := afterEnd[k]; !ok {
					afterEndKeys = append(afterEndKeys, k)
				}
				afterEnd[k] = append(afterEnd[k], row)
				continue
			}
			if k.start < c.Frontier.UnixNano() {
				k.start = c.Frontier.UnixNano() // the frontier's window, begun mid-window (Start or End)
			}
			groups[k] = append(groups[k], row)
		}
		var out Sealed
		out.Frontier = c.Frontier
		newWindow := func(start, end time.Time, labels string, vals []MetricValue) Window {
			names := make([]string, len(vals))
			for i, v := range vals {
				names[i] = v.Metric
			}
			return Window{
				OperationID:   OperationID(c.EntitlementID, start, names, labels),
				EntitlementID: c.EntitlementID,
				ConsumerID:    c.UsageReportingID,
				Start:         start,
				End:           end,
				Labels:        labels,
				Values:        vals,
				State:         StatePending,
				Deadline:      Deadline(start, end),
				SealedAt:      now,
			}
		}
		for _, due := range r.dueWindows(c, p) {
			ws, we := due[0], due[1]
			var labelSets []string
			for k := range groups {
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
				out.Windows = append(out.Windows, newWindow(ws, we, noLabels, vals))
			}
			for _, labels := range labelSets {
				k := key{ws.UnixNano(), labels}
				out.Windows = append(out.Windows, newWindow(ws, we, labels, sumRows(groups[k])))
				delete(groups, k)
			}
			out.Frontier = we
		}
		if len(groups) > 0 {
			// Every row must end up in a window: refuse to seal (and so to
			// delete the rows) rather than lose usage.
			return Sealed{}, fmt.Errorf("usage: seal %s: %d usage rows fall in no window (frontier %v, end %v)", c.EntitlementID, len(groups), c.Frontier, c.End)
		}
		for _, k := range afterEndKeys {
			start := time.Unix(0, k.start).UTC()
			w := newWindow(start, r.windowStart(start).Add(r.cfg.window), k.labels, sumRows(afterEnd[k]))
			names := make([]string, len(w.Values))
			for i, v := range w.Values {
				names[i] = v.Metric
			}
			w.OperationID = afterEndOperationID(c.EntitlementID, start, names, k.labels, now)
			w.State = StateRejected
			w.Reason = fmt.Sprintf("usage recorded at or after the entitlement's end %s (registered after the usage); never reported", c.End.Format(time.RFC3339))
			out.Windows = append(out.Windows, w)
		}
		return out, nil
	}
}

// sumRows turns a window's rows for one label set into metric values sorted
// by metric.
func sumRows(rows []UsageRow) []MetricValue {
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

// flush is the state of one Flush pass.
type flush struct {
	r          *Reporter
	now        time.Time
	blocked    map[string]Block // entitlement id → block, as the ledger has it
	checksLeft int              // services.check calls this pass may still make
}

func (f *flush) process(ctx context.Context, ws []Window) error {
	var updates []WindowUpdate
	live := ws[:0:0]
	for _, w := range ws {
		if w.State == StateUnknown && f.now.After(w.Deadline) && w.Attempts >= minAttemptsBeforeExpiry {
			w.State, w.LeaseUntil = StateExpired, time.Time{}
			w.Reason = "outcome unknown and the reporting deadline passed: not resent automatically; reconcile, then Settle or Retry (last: " + w.Reason + ")"
			updates = append(updates, updateOf(w))
			f.alert(ctx, w, true)
			continue
		}
		live = append(live, w)
	}
	if err := f.update(ctx, updates); err != nil {
		return err
	}

	results := f.checkAll(ctx, live)
	if err := f.applyServing(ctx, live, results); err != nil {
		return err
	}
	var send []Window
	updates = updates[:0]
	for _, w := range live {
		res, checked := results[w.OperationID]
		switch {
		case !checked:
			// Over this pass's check budget (or cancelled): back to the
			// pool for the next flush, unchanged.
			updates = append(updates, f.released(w))
		case res.ok:
			send = append(send, w)
		default:
			updates = append(updates, updateOf(f.hold(ctx, w, res)))
		}
	}
	// Releasing what was not checked is written even if ctx was
	// cancelled: it frees the windows for the next flush at once instead
	// of after the lease.
	if err := f.update(context.WithoutCancel(ctx), updates); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("usage: flush interrupted: %w", err)
	}
	return f.report(ctx, send)
}

// update writes window updates; a lost lease is logged (another replica
// took the window over after our lease expired; it resends the same id).
func (f *flush) update(ctx context.Context, updates []WindowUpdate) error {
	_, err := f.updateLost(ctx, updates)
	return err
}

// minAttemptsBeforeExpiry is how many times an Unknown window is sent before
// its deadline can expire it. A window sealed after its deadline (catch-up
// after downtime) would otherwise expire after one ambiguous failure,
// without the resends a window sealed in time gets.
const minAttemptsBeforeExpiry = 3

// backoff is the delay before a window that failed attempts times is tried
// again: 5 s doubling to at most 5 minutes.
func backoff(attempts int) time.Duration {
	d := 5 * time.Second
	for i := 1; i < attempts && d < 5*time.Minute; i++ {
		d *= 2
	}
	return min(d, 5*time.Minute)
}

// alertIfLate tells the application about a window still not reported near
// or after its deadline, once per window and kind.
func (f *flush) alertIfLate(ctx context.Context, w Window) {
	switch {
	case f.now.After(w.Deadline):
		f.alert(ctx, w, true)
	case w.Deadline.Sub(f.now) <= f.r.cfg.alertMargin:
		f.alert(ctx, w, false)
	}
}

func (f *flush) alert(ctx context.Context, w Window, missed bool) {
	r := f.r
	if r.cfg.onAlert == nil {
		return
	}
	k := w.OperationID + "/near"
	if missed {
		k = w.OperationID + "/missed"
	}
	r.mu.Lock()
	seen := r.alerted[k]
	r.alerted[k] = true
	r.mu.Unlock()
	if !seen {
		r.cfg.onAlert(ctx, DeadlineAlert{Window: w, Missed: missed})
	}
}

// report sends the windows in requests of at most maxBytes and records each
// outcome.
func (f *flush) report(ctx context.Context, ws []Window) error {
	type encoded struct {
		w    Window
		op   *servicecontrol.Operation
		size int
	}
	var batch []encoded
	size := len(`{"operations":[]}`)
	flushBatch := func() error {
		if len(batch) == 0 {
			return nil
		}
		b := batch
		batch, size = nil, len(`{"operations":[]}`)
		windows := make([]Window, len(b))
		ops := make([]*servicecontrol.Operation, len(b))
		for i, e := range b {
			windows[i], ops[i] = e.w, e.op
		}
		return f.send(ctx, windows, ops)
	}
	for _, w := range ws {
		op, err := operationOf(w)
		if err != nil {
			return err
		}
		raw, err := json.Marshal(op)
		if err != nil {
			return fmt.Errorf("usage: flush: encode operation %s: %w", w.OperationID, err)
		}
		n := len(raw) + 1 // and a comma
		if len(batch) > 0 && size+n > f.r.cfg.maxBytes {
			if err := flushBatch(); err != nil {
				return err
			}
		}
		batch = append(batch, encoded{w, op, n})
		size += n
	}
	return flushBatch()
}

func operationOf(w Window) (*servicecontrol.Operation, error) {
	labels, err := decodeLabels(w.Labels)
	if err != nil {
		return nil, err
	}
	op := &servicecontrol.Operation{
		OperationId:   w.OperationID,
		OperationName: operationName,
		ConsumerId:    w.ConsumerID,
		StartTime:     w.Start.UTC().Format(time.RFC3339Nano),
		EndTime:       w.End.UTC().Format(time.RFC3339Nano),
		UserLabels:    labels,
	}
	for _, v := range w.Values {
		mv := &servicecontrol.MetricValue{}
		if v.Kind == Double {
			d := v.Double
			mv.DoubleValue = &d
		} else {
			n := v.Int64
			mv.Int64Value = &n
		}
		op.MetricValueSets = append(op.MetricValueSets, &servicecontrol.MetricValueSet{
			MetricName: v.Metric, MetricValues: []*servicecontrol.MetricValue{mv},
		})
	}
	return op, nil
}

// send reports one request's windows: it records them as sent (Unknown)
// before the call, so that a crash during the call leaves them to be resent
// with the same ids, and records each outcome after it.
func (f *flush) send(ctx context.Context, ws []Window, ops []*servicecontrol.Operation) error {
	r := f.r
	ws, ops, err := f.markSent(ctx, ws, ops)
	if err != nil || len(ws) == 0 {
		return err
	}

	rctx, cancel := context.WithTimeout(ctx, r.cfg.rpcTimeout)
	start := time.Now()
	resp, err := r.svc.Services.Report(r.service, &servicecontrol.ReportRequest{Operations: ops}).Context(rctx).Do()
	cancel()
	r.metrics.call(ctx, methodReport, start, err)
	if r.cfg.afterReport != nil {
		r.cfg.afterReport()
	}
	// The outcome is written even if ctx was cancelled meanwhile: it is
	// what keeps a confirmed window from being sent again.
	wctx := context.WithoutCancel(ctx)

	if err != nil {
		var gerr *googleapi.Error
		if errors.As(err, &gerr) && gerr.Code == http.StatusBadRequest && len(ws) > 1 {
			// The whole request was refused before any operation was
			// applied: find the bad operation by halving.
			mid := len(ws) / 2
			if err := f.send(ctx, ws[:mid], ops[:mid]); err != nil {
				return err
			}
			return f.send(ctx, ws[mid:], ops[mid:])
		}
		updates := make([]WindowUpdate, len(ws))
		for i, w := range ws {
			w = outcomeOfCallError(w, err, f.now)
			updates[i] = updateOf(w)
			f.alertIfLate(ctx, w)
		}
		return f.update(wctx, updates)
	}

	failed := map[string]*servicecontrol.Status{}
	unattributed := false
	for _, re := range resp.ReportErrors {
		if re.OperationId == "" {
			unattributed = true
			continue
		}
		failed[re.OperationId] = re.Status
	}
	updates := make([]WindowUpdate, len(ws))
	for i, w := range ws {
		st, isFailed := failed[w.OperationID]
		switch {
		case isFailed:
			w = f.outcomeOfReportError(w, st)
		case unattributed:
			w.Reason = "report answered an error without an operation id: outcome unknown"
			w.LeaseUntil = f.now.Add(backoff(w.Attempts))
		default:
			w.State, w.Reason, w.ReportedAt, w.LeaseUntil = StateReported, "", f.now, time.Time{}
		}
		updates[i] = updateOf(w)
		if w.State != StateReported && w.State != StateRejected {
			f.alertIfLate(ctx, w)
		}
	}
	return f.update(wctx, updates)
}

// google.rpc.Code values that say an operation failed without effect and
// may succeed later.
var retryableCodes = map[int64]bool{8: true, 10: true, 13: true, 14: true}

// outcomeOfReportError handles one reportError: transient → Pending (resent
// later with the same id); NOT_FOUND, PERMISSION_DENIED and UNAUTHENTICATED
// → Pending, as the same refusals of the whole call (404, 403, 401) are: an
// IAM change takes about a minute to apply; DEADLINE_EXCEEDED, UNKNOWN and
// an error without a status → Unknown; FAILED_PRECONDITION → Pending and the
// consumer is checked again (it is usually blocked); anything else →
// Rejected, permanently, with the reason.
func (f *flush) outcomeOfReportError(w Window, st *servicecontrol.Status) Window {
	var code int64
	msg := ""
	if st != nil {
		code, msg = st.Code, shortText(st.Message, 200)
	}
	reason := fmt.Sprintf("reportError code %d: %s", code, msg)
	switch {
	case retryableCodes[code], code == 5, code == 7, code == 16:
		w.State, w.LeaseUntil = StatePending, f.now.Add(backoff(w.Attempts))
	case code == 4 || code == 2 || code == 0:
		w.State, w.LeaseUntil = StateUnknown, f.now.Add(backoff(w.Attempts))
	case code == 9:
		w.State, w.LeaseUntil = StatePending, f.now.Add(backoff(w.Attempts))
		f.r.mu.Lock()
		delete(f.r.checks, w.OperationID)
		f.r.mu.Unlock()
	default:
		w.State, w.LeaseUntil = StateRejected, time.Time{}
	}
	w.Reason = reason
	return w
}

// outcomeOfCallError handles a failed report call. A 400 for a single
// operation is a rejection; 401, 403, 404 and 429 are refusals before any
// work (Pending); anything else (5xx, timeouts, connection errors) may have
// been applied: Unknown, resent later with the same id.
func outcomeOfCallError(w Window, err error, now time.Time) Window {
	w.Reason = "services.report: " + shortError(err)
	w.LeaseUntil = now.Add(backoff(w.Attempts))
	var gerr *googleapi.Error
	if errors.As(err, &gerr) {
		switch gerr.Code {
		case http.StatusBadRequest:
			w.State, w.LeaseUntil = StateRejected, time.Time{}
			return w
		case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound, http.StatusTooManyRequests:
			w.State = StatePending
			return w
		}
	}
	w.State = StateUnknown
	return w
}

func shortError(err error) string {
	var gerr *googleapi.Error
	if errors.As(err, &gerr) {
		return fmt.Sprintf("HTTP %d: %s", gerr.Code, shortText(gerr.Message, 200))
	}
	return shortText(err.Error(), 200)
}

func shortText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
