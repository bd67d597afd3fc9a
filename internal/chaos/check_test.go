package chaos

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"sort"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	mt "github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
	"github.com/gcpmarketplace/gcpmarketplace/usage"
)

// check lists every violated invariant, sorted within each group:
//
//   - the run's own (actions that kept failing, usage refused, messages
//     never acknowledged);
//   - callbacks: each fired exactly as often as the scenario's changes say
//     (once, or at most once where the documented behaviour depends on
//     what was observed), none unexpected, never two at once for one
//     resource;
//   - events: every published message acknowledged, nothing set aside as
//     poison;
//   - state: local accounts, entitlements (state, plan, pending plan,
//     usageReportingId, parking), approval queue and usage registrations
//     equal the emulator's truth; deleted ones absent from both;
//   - usage: per consumer and metric, what Google billed (once per
//     operation id) equals what Record accepted; no overlapping operations;
//     a resent operation id carries the same content; no window left
//     unreported, and none expired (nothing settles them for an operator).
func (e *env) check() []string {
	e.mu.Lock()
	out := append([]string(nil), e.violations...)
	e.mu.Unlock()
	e.rec.mu.Lock()
	out = append(out, e.rec.overlap...)
	out = append(out, e.want.compare(e.rec.counts)...)
	e.rec.mu.Unlock()
	out = append(out, e.checkEvents()...)
	out = append(out, e.checkState()...)
	out = append(out, e.checkUsage()...)
	return out
}

func (e *env) checkEvents() []string {
	var out []string
	for i := range e.feed.pubs {
		if !e.feed.acked[i] {
			out = append(out, "lost event: never acknowledged: "+e.describe(i))
		}
	}
	if n := len(e.feed.pending); n > 0 {
		out = append(out, fmt.Sprintf("harness: %d deliveries left pending", n))
	}
	var poison []marketplace.Poison
	err := e.db.View(e.ctx, func(ctx context.Context, tx marketplace.Tx) error {
		var err error
		poison, err = tx.ListPoison(ctx, 0)
		return err
	})
	if err != nil {
		return append(out, fmt.Sprintf("reading poison messages: %v", err))
	}
	for _, p := range poison {
		out = append(out, fmt.Sprintf("event %s (message %s) set aside as poison: %s", p.EventID, p.MessageID, p.Reason))
	}
	return out
}

type localState struct {
	accounts  map[string]marketplace.Account
	ents      map[string]marketplace.Entitlement
	approvals map[string]marketplace.ApprovalRequest // by entitlement id + " " + kind
}

func (e *env) readLocal() (localState, error) {
	ls := localState{accounts: map[string]marketplace.Account{}, ents: map[string]marketplace.Entitlement{},
		approvals: map[string]marketplace.ApprovalRequest{}}
	err := e.db.View(e.ctx, func(ctx context.Context, tx marketplace.Tx) error {
		as, err := tx.ListAccounts(ctx)
		if err != nil {
			return err
		}
		for _, a := range as {
			ls.accounts[a.ID] = a
		}
		es, err := tx.ListEntitlements(ctx, marketplace.EntitlementQuery{})
		if err != nil {
			return err
		}
		for _, x := range es {
			ls.ents[x.ID] = x
		}
		qs, err := tx.ListApprovals(ctx)
		if err != nil {
			return err
		}
		for _, q := range qs {
			ls.approvals[q.EntitlementID+" "+string(q.Kind)] = q
		}
		return nil
	})
	return ls, err
}

func (e *env) checkState() []string {
	local, err := e.readLocal()
	if err != nil {
		return []string{fmt.Sprintf("reading local state: %v", err)}
	}
	var out []string
	bad := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }

	vendor := map[string]string{}
	for _, c := range e.customers {
		if c.signedUp && c.account != "" {
			vendor[c.account] = c.vendorUserID()
		}
	}
	approved := map[string]bool{}
	for _, a := range e.srv.Accounts() {
		for _, ap := range a.Approvals {
			if ap.State == mt.ApprovalApproved {
				approved[a.ID] = true
			}
		}
		l, ok := local.accounts[a.ID]
		switch {
		case !ok:
			bad("account %s exists at Google but not locally", a.ID)
		case l.SignupApproved != approved[a.ID]:
			bad("account %s: local SignupApproved %v, Google %v", a.ID, l.SignupApproved, approved[a.ID])
		case l.VendorUserID != vendor[a.ID]:
			bad("account %s: linked to vendor user %q, want %q", a.ID, l.VendorUserID, vendor[a.ID])
		}
		delete(local.accounts, a.ID)
	}
	for id := range local.accounts {
		bad("account %s deleted at Google but still stored", id)
	}

	wantQueue := map[string]string{} // key → plan
	for _, r := range e.srv.Entitlements() {
		switch {
		case r.State == mt.StateActivationRequested && approved[r.AccountID]:
			wantQueue[r.ID+" "+string(marketplace.ApprovalEntitlement)] = r.Plan
		case r.State == mt.StatePendingPlanChangeApproval:
			wantQueue[r.ID+" "+string(marketplace.ApprovalPlanChange)] = r.NewPendingPlan
		}
		l, ok := local.ents[r.ID]
		if !ok {
			bad("entitlement %s (%s) exists at Google but not locally", r.ID, r.State)
			continue
		}
		delete(local.ents, r.ID)
		got := fmt.Sprintf("%s %s plan=%q pending=%q urid=%q", l.AccountID, l.State, l.Plan, l.PendingPlan, l.UsageReportingID)
		want := fmt.Sprintf("%s %s plan=%q pending=%q urid=%q", r.AccountID, r.State, r.Plan, r.NewPendingPlan, r.UsageReportingID)
		if got != want {
			bad("entitlement %s: local %s, Google %s", r.ID, got, want)
		}
		if l.UpdateTime.After(r.UpdateTime) {
			bad("entitlement %s: local updateTime %v after Google's %v", r.ID, l.UpdateTime, r.UpdateTime)
		}
		if parked := r.State == mt.StateActivationRequested && !approved[r.AccountID]; l.Parked != parked {
			bad("entitlement %s (%s): Parked %v, want %v", r.ID, r.State, l.Parked, parked)
		}
		out = append(out, e.checkConsumer(r)...)
	}
	for id, l := range local.ents {
		bad("entitlement %s (%s) deleted at Google but still stored", id, l.State)
	}
	for k, plan := range wantQueue {
		q, ok := local.approvals[k]
		switch {
		case !ok:
			bad("approval request %s (plan %q) not in the local queue", k, plan)
		case q.Plan != plan:
			bad("approval request %s: queued plan %q, Google %q", k, q.Plan, plan)
		}
		delete(local.approvals, k)
	}
	for k := range local.approvals {
		bad("approval request %s queued but nothing waits at Google", k)
	}
	sort.Strings(out)
	return out
}

// checkConsumer: a usage-based entitlement's registration with the usage
// reporter follows its state.
func (e *env) checkConsumer(r mt.Entitlement) []string {
	if r.UsageReportingID == "" || (!usable(r.State) && r.State != mt.StateCancelled) {
		return nil
	}
	c, err := e.db.GetConsumer(e.ctx, r.ID)
	switch {
	case errors.Is(err, usage.ErrUnknownConsumer) && r.State == mt.StateCancelled:
		return nil // never usable
	case err != nil:
		return []string{fmt.Sprintf("usage consumer of %s (%s): %v", r.ID, r.State, err)}
	case c.UsageReportingID != r.UsageReportingID:
		return []string{fmt.Sprintf("usage consumer of %s: usageReportingId %q, Google %q", r.ID, c.UsageReportingID, r.UsageReportingID)}
	}
	switch r.State {
	case mt.StatePendingCancellation:
		if !c.End.Equal(r.OfferEndTime) {
			return []string{fmt.Sprintf("usage consumer of %s (%s): end %v, want the term's end %v", r.ID, r.State, c.End, r.OfferEndTime)}
		}
	case mt.StateCancelled:
		if c.End.IsZero() || c.End.After(r.UpdateTime) {
			return []string{fmt.Sprintf("usage consumer of %s (%s): end %v, want the cancellation (at or before %v)", r.ID, r.State, c.End, r.UpdateTime)}
		}
	default:
		if !c.End.IsZero() {
			return []string{fmt.Sprintf("usage consumer of %s (%s): end %v, want none", r.ID, r.State, c.End)}
		}
	}
	return nil
}

func (e *env) checkUsage() []string {
	var out []string
	bad := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	first := map[string]mt.ReportedOperation{}
	billed := map[string]int64{}
	for _, op := range e.srv.Reports() {
		if f, ok := first[op.OperationID]; ok {
			if f.ConsumerID != op.ConsumerID || !f.Start.Equal(op.Start) || !f.End.Equal(op.End) ||
				!reflect.DeepEqual(f.Metrics, op.Metrics) || !maps.Equal(f.UserLabels, op.UserLabels) {
				bad("double billing: operation %s resent with other content", op.OperationID)
			}
			continue
		}
		first[op.OperationID] = op
		for _, m := range op.Metrics {
			if !m.IsDouble {
				billed[op.ConsumerID+" "+m.Name] += m.Int64
			}
		}
	}
	for _, v := range e.srv.Violations() {
		if v.Kind != mt.DuplicateOperation {
			bad("double billing: %s of %s by %s and %s (%s, %v to %v)", v.Kind, v.ConsumerID, v.OperationID, v.OtherOperationID, v.Metric, v.Start, v.End)
		}
	}
	e.usage.mu.Lock()
	accepted := maps.Clone(e.usage.accepted)
	e.usage.mu.Unlock()
	keys := map[string]bool{}
	for k := range accepted {
		keys[k] = true
	}
	for k := range billed {
		keys[k] = true
	}
	for k := range keys {
		switch a, b := accepted[k], billed[k]; {
		case b < a:
			bad("usage lost: %s: %d units recorded, %d billed", k, a, b)
		case b > a:
			bad("usage billed twice: %s: %d units recorded, %d billed", k, a, b)
		}
	}
	backlog, err := e.rep.Backlog(e.ctx)
	if err != nil {
		bad("usage backlog: %v", err)
	}
	for _, w := range backlog {
		if w.State == usage.StateExpired {
			// The run flushes every few minutes, so every window is
			// first sent well within its deadline and resent after each
			// unknown outcome, and the faults end before the run does.
			// Nothing settles windows for an operator: one that expired
			// is usage Google may never have had, lost to a deadline the
			// reporter could have met (as cancelled consumers' final
			// windows were before issue 8 was fixed).
			bad("usage window %s of %s [%v, %v) expired: sealed %v, deadline %v, %d attempts: %s",
				w.OperationID, w.EntitlementID, w.Start, w.End, w.SealedAt, w.Deadline, w.Attempts, w.Reason)
			continue
		}
		bad("usage window %s of %s (%v) not reported: %s: %s", w.OperationID, w.EntitlementID, w.Start, w.State, w.Reason)
	}
	sort.Strings(out)
	return out
}
