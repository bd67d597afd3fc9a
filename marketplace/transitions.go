package marketplace

import (
	"time"

	"github.com/gcpmarketplace/gcpmarketplace/events"
	"github.com/gcpmarketplace/gcpmarketplace/procurement"
)

// EntitlementOf is the record the processor keeps of e, read from the
// Procurement API and not stored before: for code that must act on an
// entitlement before the processor has heard of it (package agent reads
// one when a request outruns its Pub/Sub message). The product is
// ProductExternalName, or the deprecated Product when that is empty; a
// cancelled entitlement's CancelTime is its end.
func EntitlementOf(e *procurement.Entitlement) Entitlement {
	product := e.ProductExternalName
	if product == "" {
		product = e.Product
	}
	out := Entitlement{
		ID: e.ID, AccountID: e.AccountID, Product: product, Plan: e.Plan, PendingPlan: e.NewPendingPlan,
		Offer: e.Offer, State: e.State, UsageReportingID: e.UsageReportingID, UpdateTime: e.UpdateTime,
	}
	if e.State == procurement.EntitlementCancelled {
		out.CancelTime = cancelledEnd(e)
	}
	return out
}

// toLocal is the local record of an entitlement as just read.
func toLocal(e *procurement.Entitlement, prev *Entitlement, park bool, now time.Time) Entitlement {
	out := EntitlementOf(e)
	if park && e.State == procurement.EntitlementActivationRequested {
		out.Parked, out.ParkedAt = true, now
		if prev != nil && prev.Parked {
			out.ParkedAt = prev.ParkedAt
		}
	}
	if e.State == procurement.EntitlementCancelled && prev != nil && !prev.CancelTime.IsZero() {
		out.CancelTime = prev.CancelTime
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

// step is one callback: its kind and the entitlement it reports.
type step struct {
	kind events.Type
	ent  *procurement.Entitlement
}

// observed is what one settlement of an entitlement saw: the input of the
// transition table.
type observed struct {
	// stored is the local state the settlement starts from (nil: none).
	stored *Entitlement
	// read is the entitlement as re-read (nil: the API answered 404), and
	// newer whether it is newer than stored: if not, its transitions were
	// reported when it was stored.
	read  *procurement.Entitlement
	newer bool
	// after is the state the processor's own approval or rejection
	// produced (nil: removed), when acted; otherwise read.
	after *procurement.Entitlement
	acted bool
	// trigger is the triggering message's type ("" without one), for the
	// events that change nothing stored (informational).
	trigger events.Type
}

// callbacks is the transition table applied to what a settlement observed:
// the callbacks to run, in order, each with the entitlement it reports.
// First the transitions from the stored state to the state read (only if
// it is newer), then those from that to the state the processor's own
// change produced, then the informational callback of the message, if any.
// An entitlement found deleted is reported with the last state read: the
// one read before the processor's change, or else the stored one. It is a
// pure function; the table it implements is the one in the package
// documentation.
func (o observed) callbacks() []step {
	var out []step
	add := func(kinds []events.Type, ent *procurement.Entitlement) {
		for _, k := range kinds {
			out = append(out, step{k, ent})
		}
	}
	if o.newer {
		last := o.read
		if last == nil {
			last = fromLocal(o.stored)
		}
		add(transitions(localView(o.stored), remoteView(o.read)), last)
	}
	if o.acted {
		last := o.after
		if last == nil {
			last = o.read
		}
		add(transitions(remoteView(o.read), remoteView(o.after)), last)
	}
	if k := informational(o.trigger, o.after); k != "" {
		out = append(out, step{k, o.after})
	}
	return out
}

// transitions lists the callbacks that take the app from state a to state
// b, in the order the changes happen. It is the single place that decides
// which callback fires for which change of an entitlement (the table in the
// package documentation).
func transitions(a, b view) []events.Type {
	var out []events.Type
	add := func(k events.Type) { out = append(out, k) }
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
		out = usableTransitions(a, b)
	}
	return out
}

// usableTransitions is transitions to a usable state b.
func usableTransitions(a, b view) []events.Type {
	var out []events.Type
	add := func(k events.Type) { out = append(out, k) }
	wasOn := a.exists && provisioned(a.state)
	if !wasOn {
		add(events.TypeEntitlementActive)
	}
	changePending := func(s procurement.EntitlementState) bool {
		return s == procurement.EntitlementPendingPlanChangeApproval || s == procurement.EntitlementPendingPlanChange
	}
	// A replacement offer may keep the plan: the change is then seen in
	// the offer, when both sides know theirs and a change was pending (an
	// offer may also end, and the entitlement go on at list price under
	// another offer name: that is no plan change).
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
	return out
}

// informational is the callback of a message that changes nothing the
// processor stores (a renewal, the end of an offer, a cancellation in
// progress), given the entitlement after the settlement: it fires once per
// eventId, while it still makes sense, and "" is none.
func informational(trigger events.Type, after *procurement.Entitlement) events.Type {
	if after == nil {
		return ""
	}
	switch trigger {
	case events.TypeEntitlementRenewed, events.TypeEntitlementOfferEnded:
		if provisioned(after.State) {
			return trigger
		}
	case events.TypeEntitlementCancelling:
		if after.State != procurement.EntitlementCancelled {
			return trigger
		}
	}
	return ""
}

// accountTransition is the account half of the table: the callback for an
// account stored here or not (or only entitlements of it), found at Google
// or not; "" is none.
func accountTransition(stored, entitlementsStored, exists bool) events.Type {
	switch {
	case exists && !stored:
		return events.TypeAccountActive
	case !exists && (stored || entitlementsStored):
		return events.TypeAccountDeleted
	}
	return ""
}

// fromLocal is a stored entitlement as the Procurement API would show it,
// with the fields the Store keeps.
func fromLocal(e *Entitlement) *procurement.Entitlement {
	if e == nil {
		return nil
	}
	return &procurement.Entitlement{
		ID: e.ID, AccountID: e.AccountID, ProductExternalName: e.Product, Plan: e.Plan, NewPendingPlan: e.PendingPlan,
		Offer: e.Offer, State: procurement.EntitlementState(e.State), UsageReportingID: e.UsageReportingID, UpdateTime: e.UpdateTime,
	}
}
