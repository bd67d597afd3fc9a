package usage

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"google.golang.org/api/googleapi"
	servicecontrol "google.golang.org/api/servicecontrol/v1"

	"github.com/gcpmarketplace/gcpmarketplace/usage/ledger"
)

// operationName is sent as Operation.operationName ("reserved for future
// use" by Service Control).
const operationName = "gcpmarketplace usage report"

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

// report sends the windows in requests of at most maxBytes on the wire
// (the protobuf size Service Control's limit is stated on: wiresize.go)
// and records each outcome.
func (f *flush) report(ctx context.Context, ws []Window) error {
	type encoded struct {
		w    Window
		op   *servicecontrol.Operation
		size int
	}
	var batch []encoded
	empty := reportRequestWireSize(f.r.service)
	size := empty
	flushBatch := func() error {
		if len(batch) == 0 {
			return nil
		}
		b := batch
		batch, size = nil, empty
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
		n := operationWireField(op)
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
	ws, ops, err = f.dropPastEnd(ctx, ws, ops)
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
		if errors.As(err, &gerr) && refusedWhole(gerr.Code) && len(ws) > 1 {
			// The whole request was refused before any operation was
			// applied: find the bad operation by halving (413: the
			// request was too large after all, the halves are not).
			mid := len(ws) / 2
			if err := f.send(ctx, ws[:mid], ops[:mid]); err != nil {
				return err
			}
			return f.send(ctx, ws[mid:], ops[mid:])
		}
		updates := make([]ledger.WindowUpdate, len(ws))
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
	updates := make([]ledger.WindowUpdate, len(ws))
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

// refusedWhole reports whether a report call's HTTP status refuses the whole
// request before any operation is applied, for something that may be in
// one of its operations: 400, or 413 for its size.
func refusedWhole(code int) bool {
	return code == http.StatusBadRequest || code == http.StatusRequestEntityTooLarge
}

// outcomeOfCallError handles a failed report call. A 400 or 413 for a
// single operation is a rejection; 401, 403, 404 and 429 are refusals before any
// work (Pending); anything else (5xx, timeouts, connection errors) may have
// been applied: Unknown, resent later with the same id.
func outcomeOfCallError(w Window, err error, now time.Time) Window {
	w.Reason = "services.report: " + shortError(err)
	w.LeaseUntil = now.Add(backoff(w.Attempts))
	var gerr *googleapi.Error
	if errors.As(err, &gerr) {
		switch gerr.Code {
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
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
