package usage

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/gcpmarketplace/gcpmarketplace/usage/ledger"
)

// flush.go: one Flush pass. The pass seals (seal.go), checks (check.go)
// and reports (report.go, fence.go).

// claimBatch is how many windows one Ledger.ClaimWindows call claims.
const claimBatch = 20000

// Flush seals every closed window (catching up all the windows missed while
// nothing flushed), then checks (each with its own operation id, up to
// Config.MaxChecksPerFlush calls) and reports every window not yet confirmed
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
	p := ledger.SealParams{Before: before, Ended: ended, Limit: sealBatch}
	held, err := r.prepareSeal(ctx, p, now)
	if err != nil {
		return err
	}
	p.Held = held
	if err := r.seal(ctx, p, now); err != nil {
		return err
	}
	blocked, err := r.ledger.ListConsumers(ctx, ledger.ConsumerQuery{BlockedOnly: true})
	if err != nil {
		return fmt.Errorf("usage: flush: list blocked consumers: %w", err)
	}
	f := &flush{r: r, now: now, blocked: map[string]Block{}, checksLeft: r.cfg.maxChecks}
	for _, c := range blocked {
		f.blocked[c.EntitlementID] = c.Block
	}
	if f.ends, err = r.consumerEnds(ctx); err != nil {
		return err
	}
	for {
		ws, err := r.ledger.ClaimWindows(ctx, ledger.ClaimParams{Owner: r.cfg.owner, Now: now, LeaseUntil: now.Add(r.cfg.lease), Limit: claimBatch})
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

// flush is the state of one Flush pass.
type flush struct {
	r          *Reporter
	now        time.Time
	blocked    map[string]Block     // entitlement id → block, as the ledger has it
	ends       map[string]time.Time // entitlement id → End, for the consumers that have one
	checksLeft int                  // services.check calls this pass may still make
}

// consumerEnds maps each ended consumer's entitlement id to its End.
func (r *Reporter) consumerEnds(ctx context.Context) (map[string]time.Time, error) {
	all, err := r.ledger.ListConsumers(ctx, ledger.ConsumerQuery{})
	if err != nil {
		return nil, fmt.Errorf("usage: flush: list consumers: %w", err)
	}
	ends := map[string]time.Time{}
	for _, c := range all {
		if !c.End.IsZero() {
			ends[c.EntitlementID] = c.End
		}
	}
	return ends, nil
}

// pastEnd reports whether w runs past its consumer's End: an End learned
// after w was sealed (a cancellation known late, sealed blind). Such a
// window is never sent: Service Control refuses usage after the end, an
// interval that straddles it too (google-apis.md §4.1), and a Reporter
// must not bill past a cancellation however late it learns of it.
func (f *flush) pastEnd(w Window) bool {
	end, ok := f.ends[w.EntitlementID]
	return ok && w.End.After(end)
}

// pastEndReason is the Reason of a Pending window rejected by pastEnd.
func pastEndReason(end time.Time) string {
	return fmt.Sprintf("runs past the entitlement's end %s, learned after the window was sealed: never reported (usage before the end in it is not billed; settle it with the customer if owed)",
		end.Format(time.RFC3339))
}

func (f *flush) process(ctx context.Context, ws []Window) error {
	var updates []ledger.WindowUpdate
	live := ws[:0:0]
	for _, w := range ws {
		switch {
		case f.pastEnd(w) && w.State == StatePending:
			w.State, w.LeaseUntil = StateRejected, time.Time{}
			w.Reason = pastEndReason(f.ends[w.EntitlementID])
			updates = append(updates, updateOf(w))
			continue
		case f.pastEnd(w):
			// Unknown: it may have been billed already (Register raised
			// BilledAfterEnd for it). A resend is deduplicated if it was,
			// but billed now if the first attempt was not applied: it is
			// left to reconciliation instead.
			end := f.ends[w.EntitlementID]
			w.State, w.LeaseUntil = StateExpired, time.Time{}
			w.Reason = fmt.Sprintf("outcome unknown and runs past the entitlement's end %s, learned after it was sent: not resent automatically; reconcile, then Settle or Retry (last: %s)",
				end.Format(time.RFC3339), w.Reason)
			updates = append(updates, updateOf(w))
			f.r.log.ErrorContext(ctx, "usage: window of unknown outcome runs past its entitlement's end: not resent; reconcile it",
				slog.String("operation_id", w.OperationID), slog.Time("end", end))
			continue
		}
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
func (f *flush) update(ctx context.Context, updates []ledger.WindowUpdate) error {
	_, err := f.updateLost(ctx, updates)
	return err
}
