package usage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"time"

	"github.com/gcpmarketplace/gcpmarketplace/usage/ledger"
)

// EndConfirmer tells the Reporter, before it seals a consumer's window,
// whether the entitlement has ended (was cancelled, suspended or deleted)
// according to the source of truth, Google's Procurement API: a
// cancellation message may arrive, or be processed, after the window it
// ends was due to be sealed, and a sealed window cannot be un-billed.
//
// ConfirmEnds returns an entry for every id in entitlementIDs that has
// ended: its end time, or the zero time when the entitlement is gone and
// its end is unknown (the Reporter then keeps the End registered with
// Register, and holds a consumer that has none until one is registered).
// An id without an entry is confirmed not ended at the time of the call.
// An error confirms nothing: the consumers wait for a later flush.
//
// *procurement.Client implements it with one filtered entitlements.list
// per call (and a GET for each id the listing does not name).
type EndConfirmer interface {
	ConfirmEnds(ctx context.Context, entitlementIDs []string) (map[string]time.Time, error)
}

// SealHolder tells the Reporter which consumers must not be sealed yet
// because a change to their entitlement is being processed. The
// marketplace Processor is one: it holds an entitlement while a message
// about it is in flight or failed and awaits redelivery.
type SealHolder interface {
	HoldSeal(entitlementID string) bool
}

// BilledAfterEnd tells the application that an entitlement's end was
// learned after windows reaching past it were sealed (Register, or the
// EndConfirmer, set an End earlier than the consumer's frontier): those
// windows are or will be billed, and the customer is owed a credit for the
// usage after End.
type BilledAfterEnd struct {
	EntitlementID string
	End           time.Time
	// OperationIDs are the windows sealed for billing (any state but
	// Rejected) that end after End.
	OperationIDs []string
	// Values are those windows' values summed per metric: what was billed
	// after End, exactly for windows starting at or after End, and an upper
	// bound for the window containing End (it also carries usage from
	// before End).
	Values []MetricValue
}

// ConfirmEndsWith sets the EndConfirmer if none was set in
// Config.EndConfirmer. The marketplace Processor calls it with its
// Procurement client when given the Reporter.
func (r *Reporter) ConfirmEndsWith(c EndConfirmer) {
	r.guardMu.Lock()
	defer r.guardMu.Unlock()
	if r.confirmer == nil {
		r.confirmer = c
	}
}

// HoldSealsWith adds a SealHolder: a consumer it holds is not sealed by
// this Reporter until it releases it. Holders are per process; replicas
// sharing a ledger rely on the EndConfirmer.
func (r *Reporter) HoldSealsWith(h SealHolder) {
	if h == nil {
		return
	}
	r.guardMu.Lock()
	defer r.guardMu.Unlock()
	r.holders = append(r.holders, h)
}

func (r *Reporter) guards() (EndConfirmer, []SealHolder) {
	r.guardMu.Lock()
	defer r.guardMu.Unlock()
	return r.confirmer, r.holders
}

// sealDue reports whether Seal under p would seal at least one window of c.
func sealDue(p ledger.SealParams, c ledger.ConsumerState) bool {
	if !c.End.IsZero() && !c.Frontier.Before(c.End) {
		return false
	}
	return c.Frontier.Before(p.Before) || p.EndedBy(c.Consumer)
}

// prepareSeal runs before Seal: it finds the consumers Seal would seal,
// holds those a SealHolder holds, confirms the others' ends with the
// EndConfirmer (recording an end it learns, so that Seal bills only up to
// it) and holds them all if that fails. It returns SealParams.Held. Only a
// ledger failure is an error.
func (r *Reporter) prepareSeal(ctx context.Context, p ledger.SealParams, now time.Time) (map[string]bool, error) {
	confirmer, holders := r.guards()
	if confirmer == nil && len(holders) == 0 {
		r.warnUnconfirmed.Do(func() {
			r.log.WarnContext(ctx, "usage: no EndConfirmer: windows are sealed without confirming that their entitlements had not ended; a cancellation learned later is billed (set Config.EndConfirmer)")
		})
		return nil, nil
	}
	all, err := r.ledger.ListConsumers(ctx, ledger.ConsumerQuery{})
	if err != nil {
		return nil, fmt.Errorf("usage: flush: list consumers to confirm: %w", err)
	}
	var due []ledger.ConsumerState
	held := map[string]bool{}
	for _, c := range all {
		if !sealDue(p, c) {
			continue
		}
		for _, h := range holders {
			if h.HoldSeal(c.EntitlementID) {
				held[c.EntitlementID] = true
				break
			}
		}
		if !held[c.EntitlementID] {
			due = append(due, c)
		}
	}
	reasons := map[string]string{}
	for id := range held {
		reasons[id] = "a change to the entitlement is being processed"
	}
	if confirmer != nil && len(due) > 0 {
		if err := r.confirm(ctx, confirmer, p, due, held, reasons); err != nil {
			return nil, err
		}
	}
	r.alertHeld(ctx, all, held, reasons, now)
	return held, nil
}

// confirm asks the confirmer about due and records the ends it learns. If
// the confirmer fails, every live consumer of due is held: its window waits
// rather than be sealed blind. A consumer already ended by p keeps being
// sealed through its registered End.
func (r *Reporter) confirm(ctx context.Context, confirmer EndConfirmer, p ledger.SealParams, due []ledger.ConsumerState, held map[string]bool, reasons map[string]string) error {
	ids := make([]string, len(due))
	for i, c := range due {
		ids[i] = c.EntitlementID
	}
	start := time.Now()
	ends, err := confirmer.ConfirmEnds(ctx, ids)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("usage: flush: confirm ends: %w", err)
		}
		n := 0
		for _, c := range due {
			if !p.EndedBy(c.Consumer) {
				held[c.EntitlementID] = true
				reasons[c.EntitlementID] = "its end cannot be confirmed: " + shortText(err.Error(), 200)
				n++
			}
		}
		r.log.WarnContext(ctx, "usage: cannot confirm entitlement ends; their windows wait",
			slog.Int("consumers", n), slog.Any("error", err))
		return nil
	}
	r.log.DebugContext(ctx, "usage: entitlement ends confirmed", slog.Int("consumers", len(ids)),
		slog.Int("ended", len(ends)), slog.Duration("took", time.Since(start)))
	for _, c := range due {
		end, ok := ends[c.EntitlementID]
		if !ok {
			continue
		}
		if end.IsZero() {
			// Gone, and when it ended is no longer readable: an End already
			// in effect stands; otherwise (none, or a future one such as a
			// pending cancellation's term end, which does not bound this
			// window) wait for one (the Processor registers it when it
			// handles the deletion) rather than guess.
			if !p.EndedBy(c.Consumer) {
				held[c.EntitlementID] = true
				reasons[c.EntitlementID] = "the entitlement was deleted and its end is not registered yet"
			}
			continue
		}
		end = end.UTC()
		if !c.End.IsZero() && !end.Before(c.End) {
			continue
		}
		if err := r.learnEnd(ctx, c, end); err != nil {
			return err
		}
		r.log.InfoContext(ctx, "usage: entitlement end confirmed by Procurement before sealing",
			slog.String("entitlement", c.EntitlementID), slog.Time("end", end))
	}
	return nil
}

// learnEnd records end as the consumer's End (prev is the consumer as the
// ledger had it) and raises BilledAfterEnd if windows past end were
// already sealed.
func (r *Reporter) learnEnd(ctx context.Context, prev ledger.ConsumerState, end time.Time) error {
	c := prev.Consumer
	c.End = end
	if !c.Start.IsZero() && end.Before(c.Start) {
		c.End = c.Start
	}
	if err := r.ledger.PutConsumer(ctx, c, prev.Frontier); err != nil {
		return fmt.Errorf("usage: record the end of %s: %w", c.EntitlementID, err)
	}
	r.checkBilledAfterEnd(ctx, prev, c.End)
	return nil
}

// checkBilledAfterEnd raises BilledAfterEnd when end, newly learned for
// prev (already recorded), is before windows already sealed. A failure to
// list them is logged, not returned: the end is recorded, and a retry
// would no longer see it as new.
func (r *Reporter) checkBilledAfterEnd(ctx context.Context, prev ledger.ConsumerState, end time.Time) {
	if end.IsZero() || !end.Before(prev.Frontier) || (!prev.End.IsZero() && !end.Before(prev.End)) {
		return
	}
	ws, err := r.ledger.ListWindows(ctx, ledger.WindowQuery{EntitlementID: prev.EntitlementID})
	if err != nil {
		r.log.ErrorContext(ctx, "usage: entitlement end learned after usage past it may have been sealed; cannot list its windows: check them for a credit",
			slog.String("entitlement", prev.EntitlementID), slog.Time("end", end), slog.Any("error", err))
		return
	}
	a := BilledAfterEnd{EntitlementID: prev.EntitlementID, End: end}
	sums := map[string]*MetricValue{}
	for _, w := range ws {
		// A Pending window was never billed (every refusal that leaves one
		// Pending is without effect), and is never sent now: a flush
		// claiming it rejects it (flush.pastEnd), and a flush that claimed
		// it already re-reads the ends after marking it sent (dropPastEnd),
		// so it is Unknown here if that flush may still send it. Only what
		// may have been billed is owed back.
		if w.State == StateRejected || w.State == StatePending || !w.End.After(end) || !billsSomething(w) {
			continue
		}
		a.OperationIDs = append(a.OperationIDs, w.OperationID)
		for _, v := range w.Values {
			s, ok := sums[v.Metric]
			if !ok {
				s = &MetricValue{Metric: v.Metric, Kind: v.Kind}
				sums[v.Metric] = s
			}
			s.Int64 += v.Int64
			s.Double += v.Double
		}
	}
	if len(a.OperationIDs) == 0 {
		return
	}
	for _, s := range sums {
		a.Values = append(a.Values, *s)
	}
	sort.Slice(a.Values, func(i, j int) bool { return a.Values[i].Metric < a.Values[j].Metric })
	r.log.ErrorContext(ctx, "usage: entitlement end learned after usage past it was sealed for billing; the customer is owed a credit",
		slog.String("entitlement", a.EntitlementID), slog.Time("end", end),
		slog.Any("operation_ids", a.OperationIDs), slog.Any("values", a.Values))
	if r.cfg.onBilledAfterEnd != nil {
		r.cfg.onBilledAfterEnd(ctx, a)
	}
}

// alertHeld raises DeadlineAlert for a held consumer whose next window is
// near or past its deadline. Holding is preferred to sealing blind: a
// window reported late can still be billed (or settled by the operator),
// but usage billed after a cancellation can only be credited back. The
// alert's Window is the unsealed window (no operation id, state "") and
// its Held says why.
func (r *Reporter) alertHeld(ctx context.Context, all []ledger.ConsumerState, held map[string]bool, reasons map[string]string, now time.Time) {
	if len(held) == 0 {
		return
	}
	for _, c := range all {
		if !held[c.EntitlementID] {
			continue
		}
		start := c.Frontier
		end := r.windowStart(start).Add(r.cfg.window)
		if !c.End.IsZero() && c.End.Before(end) {
			end = c.End
		}
		w := Window{
			EntitlementID: c.EntitlementID, ConsumerID: c.UsageReportingID, Start: start, End: end,
			Deadline: Deadline(start, end), Reason: "not sealed: " + reasons[c.EntitlementID],
		}
		if r.alertUnsealed(ctx, w, errors.New(reasons[c.EntitlementID]), now) {
			r.log.WarnContext(ctx, "usage: window held unsealed near or past its deadline",
				slog.String("entitlement", c.EntitlementID), slog.Time("deadline", w.Deadline), slog.String("reason", w.Reason))
		}
	}
}

// consumerBeforeEnd returns the consumer as the ledger has it when
// Register is about to set an End on a known consumer (known false
// otherwise), so that an End learned after sealing can be surfaced.
func (r *Reporter) consumerBeforeEnd(ctx context.Context, c Consumer) (prev ledger.ConsumerState, known bool, err error) {
	prev, err = r.ledger.GetConsumer(ctx, c.EntitlementID)
	if errors.Is(err, ErrUnknownConsumer) {
		return ledger.ConsumerState{}, false, nil
	}
	if err != nil {
		return ledger.ConsumerState{}, false, err
	}
	return prev, true, nil
}

// billsSomething reports whether w carries any usage: an idle window's zero
// operation owes nobody a credit.
func billsSomething(w Window) bool {
	for _, v := range w.Values {
		if v.Int64 != 0 || v.Double != 0 {
			return true
		}
	}
	return false
}
