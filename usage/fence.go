package usage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	servicecontrol "google.golang.org/api/servicecontrol/v1"

	"github.com/gcpmarketplace/gcpmarketplace/usage/ledger"
)

// markSent records ws as sent (Unknown, one more attempt) before the report
// call, and returns the windows (and their operations) still to be sent.
//
// The mark is the fence against a reporter that stalled past its lease: it
// applies only under this reporter's own, still current claim (the lease
// token, checked by the ledger in the same transaction), and it renews the
// lease for the call, so no other replica claims the windows while they are
// in flight. A window whose mark was lost belongs to another claim now and
// is not sent. If ctx has ended, nothing is marked: the windows are
// released for the next flush and the error wraps ctx.Err().
func (f *flush) markSent(ctx context.Context, ws []Window, ops []*servicecontrol.Operation) ([]Window, []*servicecontrol.Operation, error) {
	r := f.r
	if r.cfg.beforeSend != nil {
		r.cfg.beforeSend()
	}
	if err := ctx.Err(); err != nil {
		release := make([]ledger.WindowUpdate, len(ws))
		for i, w := range ws {
			release[i] = f.released(w)
		}
		return nil, nil, errors.Join(fmt.Errorf("usage: flush interrupted before sending %d windows: %w", len(ws), err),
			f.update(context.WithoutCancel(ctx), release))
	}
	leaseUntil := r.cfg.now().Add(r.cfg.lease)
	sent := make([]ledger.WindowUpdate, len(ws))
	for i := range ws {
		ws[i].State = StateUnknown
		ws[i].Attempts++
		ws[i].LastAttempt = f.now
		ws[i].Reason = "sent; awaiting the outcome"
		if leaseUntil.After(ws[i].LeaseUntil) {
			ws[i].LeaseUntil = leaseUntil
		}
		sent[i] = updateOf(ws[i])
	}
	lost, err := f.updateLost(ctx, sent)
	if err != nil {
		return nil, nil, err
	}
	if len(lost) == 0 {
		return ws, ops, nil
	}
	keepW, keepO := ws[:0:0], ops[:0:0]
	for i, w := range ws {
		if !lost[w.OperationID] {
			keepW, keepO = append(keepW, w), append(keepO, ops[i])
		}
	}
	return keepW, keepO, nil
}

// released is the update that hands a window back, unchanged, to the next
// flush (of any replica) at once, instead of when the lease expires.
func (f *flush) released(w Window) ledger.WindowUpdate {
	w.LeaseUntil = f.now
	return updateOf(w)
}

// updateLost is update, also returning the operation ids not updated
// because the lease was lost (another claim took the window after ours
// expired; it resends the same id).
func (f *flush) updateLost(ctx context.Context, updates []ledger.WindowUpdate) (map[string]bool, error) {
	if len(updates) == 0 {
		return nil, nil
	}
	lost, err := f.r.ledger.UpdateWindows(ctx, f.r.cfg.owner, updates)
	if err != nil {
		return nil, fmt.Errorf("usage: flush: update %d windows: %w", len(updates), err)
	}
	if len(lost) == 0 {
		return nil, nil
	}
	f.r.log.WarnContext(ctx, "window leases lost to another reporter", slog.Int("windows", len(lost)), slog.String("first", lost[0]))
	set := make(map[string]bool, len(lost))
	for _, id := range lost {
		set[id] = true
	}
	return set, nil
}

// dropPastEnd re-reads the consumers' ends after ws were marked sent and
// takes back, as never sent (Rejected, see pastEnd), the windows that now
// run past an End registered while this flush was running (Register from
// the Processor does not wait for a flush). The order is what makes it
// sound: an End recorded before this read is seen here and the window is
// not sent; one recorded after it is recorded after the mark, so
// Register's check (checkBilledAfterEnd) finds the window Unknown or
// Reported and raises BilledAfterEnd. Either way no window past an End is
// billed silently. (An End recorded between the mark and this read may
// raise BilledAfterEnd for a window then not sent: a false alarm, never a
// missed one.) If the ends cannot be read, nothing is sent: the windows
// stay Unknown and are resent, or expired by process, later.
func (f *flush) dropPastEnd(ctx context.Context, ws []Window, ops []*servicecontrol.Operation) ([]Window, []*servicecontrol.Operation, error) {
	ends, err := f.r.consumerEnds(ctx)
	if err != nil {
		return nil, nil, err
	}
	f.ends = ends
	keepW, keepO := ws[:0:0], ops[:0:0]
	var drop []ledger.WindowUpdate
	for i, w := range ws {
		if !f.pastEnd(w) {
			keepW, keepO = append(keepW, w), append(keepO, ops[i])
			continue
		}
		w.State, w.LeaseUntil, w.Attempts = StateRejected, time.Time{}, w.Attempts-1
		w.Reason = pastEndReason(ends[w.EntitlementID])
		drop = append(drop, updateOf(w))
	}
	if err := f.update(context.WithoutCancel(ctx), drop); err != nil {
		return nil, nil, err
	}
	return keepW, keepO, nil
}
