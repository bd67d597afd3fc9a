package marketplace

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/gcpmarketplace/gcpmarketplace/events"
	"github.com/gcpmarketplace/gcpmarketplace/procurement"
)

// ruleOutcome is the result of the Marketplace rule.
type ruleOutcome struct {
	after   *procurement.Entitlement // the state after the rule (cur if it did not act)
	acted   bool                     // the rule changed the entitlement at Google
	action  Outcome
	park    bool             // the entitlement waits for sign-up
	hold    *ApprovalRequest // queue this request
	account *procurement.Account
	// pending is an approval or rejection decided but not yet made at
	// Google: carryOut makes it, once the settlement has committed what it
	// observed (commitObserved).
	pending *Decision
	kind    ApprovalKind // what pending is about
}

func awaitingApproval(e *procurement.Entitlement) bool {
	return e.State == procurement.EntitlementActivationRequested && e.NewOfferStartTime.IsZero()
}

// applyRule decides about what waits for the vendor: it parks or queues at
// once, and leaves an approval or rejection pending for carryOut.
// Everything else needs no call: local state simply follows the re-read
// resource.
func (p *Processor) applyRule(ctx context.Context, cur *procurement.Entitlement, prev *Entitlement,
	queued map[ApprovalKind]*ApprovalRequest, tr entTrigger, log *slog.Logger) (ruleOutcome, error) {
	out := ruleOutcome{after: cur}
	switch {
	case awaitingApproval(cur):
		if tr.operator != nil {
			if queued[ApprovalEntitlement] == nil {
				return out, nil
			}
			return p.decideEntitlement(ctx, cur, *tr.operator, out, log)
		}
		if queued[ApprovalEntitlement] != nil {
			return out, nil // an operator decides
		}
		acct, err := p.client.GetAccount(ctx, cur.AccountID, &procurement.GetAccountParams{View: procurement.AccountViewBasic})
		if err != nil {
			return out, fmt.Errorf("marketplace: reading account %s of entitlement %s: %w", cur.AccountID, cur.ID, err)
		}
		out.account = &acct
		if !acct.SignupApproved() {
			out.park = true
			if prev == nil || !prev.Parked {
				out.action = OutcomeParked
			}
			return out, nil
		}
		d, err := p.decide(ctx, PolicyRequest{Kind: ApprovalEntitlement, Entitlement: *cur, Account: acct})
		if err != nil {
			return out, err
		}
		return p.decideEntitlement(ctx, cur, d, out, log)

	case cur.State == procurement.EntitlementPendingPlanChangeApproval:
		q := queued[ApprovalPlanChange]
		if tr.operator != nil {
			if q == nil || q.Plan != cur.NewPendingPlan {
				return out, nil
			}
			return p.decidePlanChange(ctx, cur, *tr.operator, out, log)
		}
		if q != nil && q.Plan == cur.NewPendingPlan {
			return out, nil // an operator decides
		}
		d, err := p.decide(ctx, PolicyRequest{Kind: ApprovalPlanChange, Entitlement: *cur})
		if err != nil {
			return out, err
		}
		return p.decidePlanChange(ctx, cur, d, out, log)
	}
	return out, nil
}

// decide asks the policy, turning a panic into an error.
func (p *Processor) decide(ctx context.Context, r PolicyRequest) (d Decision, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &PanicError{Value: v, Stack: debug.Stack()}
		}
	}()
	d, err = p.cfg.policy.Decide(ctx, r)
	if err != nil {
		return d, fmt.Errorf("marketplace: approval policy for entitlement %s: %w", r.Entitlement.ID, err)
	}
	return d, d.check()
}

// decideEntitlement applies d to a new entitlement: a hold is carried out
// at once (it changes nothing at Google but the customer's message), an
// approval or rejection is left pending for carryOut.
func (p *Processor) decideEntitlement(ctx context.Context, cur *procurement.Entitlement, d Decision, out ruleOutcome, log *slog.Logger) (ruleOutcome, error) {
	switch d.Outcome {
	case OutcomeApproved, OutcomeRejected:
		out.pending, out.kind = &d, ApprovalEntitlement
	case OutcomeQueued:
		out.after, out.action = p.setMessage(ctx, cur, d.MessageToUser, log), OutcomeQueued
		out.acted = out.after != cur
		out.hold = &ApprovalRequest{EntitlementID: cur.ID, Kind: ApprovalEntitlement, AccountID: cur.AccountID,
			Plan: cur.Plan, RequestedAt: p.cfg.now()}
	}
	return out, nil
}

// decidePlanChange is decideEntitlement for a plan change.
func (p *Processor) decidePlanChange(ctx context.Context, cur *procurement.Entitlement, d Decision, out ruleOutcome, log *slog.Logger) (ruleOutcome, error) {
	switch d.Outcome {
	case OutcomeApproved, OutcomeRejected:
		out.pending, out.kind = &d, ApprovalPlanChange
	case OutcomeQueued:
		out.after, out.action = p.setMessage(ctx, cur, d.MessageToUser, log), OutcomeQueued
		out.acted = out.after != cur
		out.hold = &ApprovalRequest{EntitlementID: cur.ID, Kind: ApprovalPlanChange, AccountID: cur.AccountID,
			Plan: cur.NewPendingPlan, RequestedAt: p.cfg.now()}
	}
	return out, nil
}

// carryOut makes the approval or rejection the rule left pending.
func (p *Processor) carryOut(ctx context.Context, cur *procurement.Entitlement, out ruleOutcome) (ruleOutcome, error) {
	d := *out.pending
	out.pending = nil
	switch {
	case out.kind == ApprovalEntitlement && d.Outcome == OutcomeApproved:
		r, err := p.client.ApproveEntitlement(ctx, cur.ID, nil)
		if errors.Is(err, procurement.ErrSignupNotApproved) {
			// Sign-up was withdrawn since we looked: wait for it again.
			out.park, out.action = true, OutcomeParked
			return out, nil
		}
		if err != nil {
			return out, fmt.Errorf("marketplace: approving entitlement %s: %w", cur.ID, err)
		}
		out.after, out.acted, out.action = &r.Entitlement, true, OutcomeApproved
	case out.kind == ApprovalEntitlement:
		if _, err := p.client.RejectEntitlement(ctx, cur.ID, &procurement.RejectEntitlementParams{Reason: d.Reason}); err != nil {
			return out, fmt.Errorf("marketplace: rejecting entitlement %s: %w", cur.ID, err)
		}
		after, err := p.getEntitlement(ctx, cur.ID) // rejected entitlements are removed
		if err != nil {
			return out, err
		}
		out.after, out.acted, out.action = after, true, OutcomeRejected
	case d.Outcome == OutcomeApproved:
		r, err := p.client.ApprovePlanChange(ctx, cur.ID, &procurement.ApprovePlanChangeParams{ExpectedPlan: cur.NewPendingPlan})
		if err != nil {
			return out, fmt.Errorf("marketplace: approving plan change of entitlement %s to %q: %w", cur.ID, cur.NewPendingPlan, err)
		}
		out.after, out.acted, out.action = &r.Entitlement, true, OutcomeApproved
	default:
		r, err := p.client.RejectPlanChange(ctx, cur.ID, &procurement.RejectPlanChangeParams{ExpectedPlan: cur.NewPendingPlan, Reason: d.Reason})
		if err != nil {
			return out, fmt.Errorf("marketplace: rejecting plan change of entitlement %s to %q: %w", cur.ID, cur.NewPendingPlan, err)
		}
		out.after, out.acted, out.action = &r.Entitlement, true, OutcomeRejected
	}
	return out, nil
}

// setMessage shows msg to the customer. It is a courtesy: a failure is
// logged, not fatal, so the request is queued all the same.
func (p *Processor) setMessage(ctx context.Context, cur *procurement.Entitlement, msg string, log *slog.Logger) *procurement.Entitlement {
	if msg == "" || msg == cur.MessageToUser {
		return cur
	}
	e, err := p.client.SetMessageToUser(ctx, cur.ID, msg)
	if err != nil {
		log.LogAttrs(ctx, slog.LevelWarn, "marketplace: cannot set the message to the customer", slog.String("error", err.Error()))
		return cur
	}
	return &e
}

func (p *Processor) registerUsage(ctx context.Context, prev *Entitlement, after *procurement.Entitlement, ev events.Event) error {
	// Only an entitlement that is or was usable is registered: one still
	// waiting for approval (parked, queued, scheduled) was never
	// provisioned, so no usage may be billed for it, and one that ends
	// without ever being usable must not get hourly zero reports either.
	wasUsable := prev != nil && (provisioned(prev.State) ||
		prev.State == procurement.EntitlementCancelled)
	var c usageConsumer
	switch {
	case after != nil && after.UsageReportingID != "":
		if !provisioned(after.State) && !(after.State == procurement.EntitlementCancelled && wasUsable) {
			return nil
		}
		// No Start: the activation time is not a field of the entitlement
		// (updateTime moves with any later change, createTime is the
		// purchase, before the approval), and Service Control refuses an
		// operation whose interval starts before the activation. Without
		// Start the Reporter begins the consumer's first window at this
		// registration, after the activation since the entitlement is
		// usable now, and keeps it on re-registration.
		c = usageConsumer{EntitlementID: after.ID, UsageReportingID: after.UsageReportingID}
		switch after.State {
		case procurement.EntitlementPendingCancellation:
			c.End = after.OfferEndTime
		case procurement.EntitlementCancelled:
			c.End = cancelledEnd(after)
			if prev != nil && !prev.CancelTime.IsZero() {
				c.End = prev.CancelTime
			}
		}
	case after == nil && prev != nil && prev.UsageReportingID != "" && wasUsable:
		c = usageConsumer{EntitlementID: prev.ID, UsageReportingID: prev.UsageReportingID, End: goneEnd(prev, ev, p.cfg.now())}
	default:
		return nil
	}
	if err := p.cfg.usage.register(ctx, c); err != nil {
		return fmt.Errorf("marketplace: registering entitlement %s with the usage reporter: %w", c.EntitlementID, err)
	}
	return nil
}

// cancelledEnd is the end of a CANCELLED entitlement: its updateTime, or
// its offerEndTime if that is earlier. A cancellation at the term's end
// first seen as CANCELLED (the PENDING_CANCELLATION message missed or
// processed late) has an updateTime set when Google flipped the state,
// possibly well after the term ended (offerEndTime, "the actual end of the
// last offer" in CANCELLED: google-apis.md, the
// Entitlement fields table). Of the two the earlier is
// taken: billing past a cancellation can only be credited back, while
// usage not billed in between is the smaller harm.
func cancelledEnd(e *procurement.Entitlement) time.Time {
	end := e.UpdateTime
	if !e.OfferEndTime.IsZero() && (end.IsZero() || e.OfferEndTime.Before(end)) {
		end = e.OfferEndTime
	}
	return end
}

// goneEnd is the end of an entitlement found deleted (404) when processed:
// the earliest of its stored CancelTime, the updateTime carried by the
// cancellation or deletion message that triggered this settlement, and
// now. now alone would be the processing time, later than the real end by
// however long the message waited, and the usage in between would be
// billed. A message's updateTime older than the stored state's is a stale
// redelivery and is not used.
func goneEnd(prev *Entitlement, ev events.Event, now time.Time) time.Time {
	end := now
	if !prev.CancelTime.IsZero() && prev.CancelTime.Before(end) {
		end = prev.CancelTime
	}
	var msg time.Time
	switch m := ev.(type) {
	case *events.EntitlementCancelled:
		msg = m.Entitlement.UpdateTime
	case *events.EntitlementDeleted:
		msg = m.Entitlement.UpdateTime
	}
	if !msg.IsZero() && !msg.Before(prev.UpdateTime) && msg.Before(end) {
		end = msg
	}
	return end
}
