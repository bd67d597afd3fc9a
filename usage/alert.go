package usage

import (
	"context"
	"fmt"
	"time"
)

// DeadlineAlert tells the application that a window is not reported and its
// reporting deadline is near (Missed false) or has passed (Missed true).
//
// A window that cannot be sealed yet (its end is not confirmed, see
// Config.EndConfirmer; the processor has an unsettled message for its
// entitlement; its usage source failed, see Config.Source) is alerted too,
// with Held set to why: its Window has no OperationID, values or state yet, only the consumer, the interval, the
// deadline and the error as Reason. It is sealed and reported once the
// cause is gone, late or not.
type DeadlineAlert struct {
	Window Window
	Missed bool
	Held   error // non-nil for a window not sealed yet: why it waits
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

// alertUnsealed raises DeadlineAlert, with Held set to cause, for w, a
// window that could not be sealed, once per window and kind (near, missed)
// and only near or past its deadline. It reports whether this call was the
// first for them; the alert callback, if any, has then run.
func (r *Reporter) alertUnsealed(ctx context.Context, w Window, cause error, now time.Time) bool {
	missed := now.After(w.Deadline)
	if !missed && w.Deadline.Sub(now) > r.cfg.alertMargin {
		return false
	}
	k := fmt.Sprintf("held/%s/%d/%t", w.EntitlementID, w.Start.UnixNano(), missed)
	r.mu.Lock()
	seen := r.alerted[k]
	r.alerted[k] = true
	r.mu.Unlock()
	if seen {
		return false
	}
	if r.cfg.onAlert != nil {
		r.cfg.onAlert(ctx, DeadlineAlert{Window: w, Missed: missed, Held: cause})
	}
	return true
}
