package marketplace

import (
	"time"

	"github.com/gcpmarketplace/gcpmarketplace/events"
	"github.com/gcpmarketplace/gcpmarketplace/procurement"
)

// toLocal is the local record of an entitlement as just read.
func toLocal(e *procurement.Entitlement, prev *Entitlement, park bool, now time.Time) Entitlement {
	product := e.ProductExternalName
	if product == "" {
		product = e.Product
	}
	out := Entitlement{
		ID: e.ID, AccountID: e.AccountID, Product: product, Plan: e.Plan, PendingPlan: e.NewPendingPlan,
		Offer: e.Offer, State: e.State, UsageReportingID: e.UsageReportingID, UpdateTime: e.UpdateTime,
	}
	if park && e.State == procurement.EntitlementActivationRequested {
		out.Parked, out.ParkedAt = true, now
		if prev != nil && prev.Parked {
			out.ParkedAt = prev.ParkedAt
		}
	}
	if e.State == procurement.EntitlementCancelled {
		out.CancelTime = e.UpdateTime
		if prev != nil && !prev.CancelTime.IsZero() {
			out.CancelTime = prev.CancelTime
		}
	}
	return out
}

func sameLocal(a, b Entitlement) bool {
	return a.ID == b.ID && a.AccountID == b.AccountID && a.Product == b.Product && a.Plan == b.Plan &&
		a.PendingPlan == b.PendingPlan && a.Offer == b.Offer && a.State == b.State && a.UsageReportingID == b.UsageReportingID &&
		a.UpdateTime.Equal(b.UpdateTime) && a.Parked == b.Parked && a.ParkedAt.Equal(b.ParkedAt) &&
		a.CancelTime.Equal(b.CancelTime)
}

// view is what the transition rules compare: the stored or the re-read state.
type view struct {
	exists      bool
	state       procurement.EntitlementState
	plan        string
	pendingPlan string
	offer       string // "" when unknown (stored by an older version)
	scheduled   bool   // approved, waiting for newOfferStartTime (not known for stored state)
}

func localView(e *Entitlement) view {
	if e == nil {
		return view{}
	}
	return view{exists: true, state: e.State, plan: e.Plan, pendingPlan: e.PendingPlan, offer: e.Offer}
}

func remoteView(e *procurement.Entitlement) view {
	if e == nil {
		return view{}
	}
	return view{exists: true, state: e.State, plan: e.Plan, pendingPlan: e.NewPendingPlan, offer: e.Offer,
		scheduled: e.State == procurement.EntitlementActivationRequested && !e.NewOfferStartTime.IsZero()}
}

// provisioned reports whether the customer may use the product in state s.
func provisioned(s procurement.EntitlementState) bool {
	switch s {
	case procurement.EntitlementActive, procurement.EntitlementPendingPlanChange,
		procurement.EntitlementPendingPlanChangeApproval, procurement.EntitlementPendingCancellation:
		return true
	}
	return false
}

// step is one callback: its kind and the resource it reports (nil once
// the entitlement is gone).
type step struct {
	kind events.Type
	ent  *procurement.Entitlement
}

// transitions lists the callbacks that take the app from state a to state
// b, in the order the changes happen. It is the single place that decides
// which callback fires for which change (the table in the package doc).
func transitions(a, b view, ent *procurement.Entitlement) []step {
	var out []step
	add := func(k events.Type) { out = append(out, step{k, ent}) }
	switch {
	case !b.exists:
		if a.exists {
			if a.state != procurement.EntitlementCancelled {
				add(events.TypeEntitlementCancelled)
			}
			add(events.TypeEntitlementDeleted)
		}
	case b.state == procurement.EntitlementActivationRequested:
		switch {
		case !a.exists && b.scheduled:
			add(events.TypeEntitlementOfferAccepted)
		case !a.exists:
			add(events.TypeEntitlementCreationRequested)
		case a.state == procurement.EntitlementActivationRequested && b.scheduled && !a.scheduled:
			add(events.TypeEntitlementOfferAccepted)
		}
	case b.state == procurement.EntitlementCancelled:
		if a.exists && a.state != procurement.EntitlementCancelled {
			add(events.TypeEntitlementCancelled)
		}
	case provisioned(b.state):
		wasOn := a.exists && provisioned(a.state)
		if !wasOn {
			add(events.TypeEntitlementActive)
		}
		changePending := func(s procurement.EntitlementState) bool {
			return s == procurement.EntitlementPendingPlanChangeApproval || s == procurement.EntitlementPendingPlanChange
		}
		// A replacement offer may keep the plan: the change is then seen
		// in the offer, when both sides know theirs and a change was
		// pending (an offer may also end, and the entitlement go on at
		// list price under another offer name: that is no plan change).
		changed := a.plan != b.plan ||
			(changePending(a.state) && a.offer != "" && b.offer != "" && a.offer != b.offer)
		if wasOn && changed {
			add(events.TypeEntitlementPlanChanged)
		}
		if wasOn && changePending(a.state) && !changePending(b.state) && !changed {
			add(events.TypeEntitlementPlanChangeCancelled)
		}
		if wasOn && a.state == procurement.EntitlementPendingCancellation && b.state != procurement.EntitlementPendingCancellation {
			add(events.TypeEntitlementCancellationReverted)
		}
		if b.state == procurement.EntitlementPendingPlanChangeApproval &&
			(a.state != procurement.EntitlementPendingPlanChangeApproval || a.pendingPlan != b.pendingPlan) {
			add(events.TypeEntitlementPlanChangeRequested)
		}
		if b.state == procurement.EntitlementPendingCancellation && a.state != procurement.EntitlementPendingCancellation {
			add(events.TypeEntitlementPendingCancellation)
		}
	}
	return out
}

// informational lists the callbacks of events that change nothing the
// processor stores (a renewal, the end of an offer, a cancellation in
// progress): they fire once per eventId, while they still make sense.
func (p *Processor) informational(ev events.Event, after *procurement.Entitlement) []step {
	if ev == nil || after == nil {
		return nil
	}
	switch ev.Type() {
	case events.TypeEntitlementRenewed, events.TypeEntitlementOfferEnded:
		if provisioned(after.State) {
			return []step{{ev.Type(), after}}
		}
	case events.TypeEntitlementCancelling:
		if after.State != procurement.EntitlementCancelled {
			return []step{{ev.Type(), after}}
		}
	}
	return nil
}
