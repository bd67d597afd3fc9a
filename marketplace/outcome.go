package marketplace

import (
	"github.com/gcpmarketplace/gcpmarketplace/events"
	"github.com/gcpmarketplace/gcpmarketplace/procurement"
)

// Outcome is what the processor did to an account or entitlement, and what
// a Policy decides (Decision.Outcome: OutcomeApproved, OutcomeRejected or
// OutcomeQueued). It is the one vocabulary of Result, ReconcileReport,
// SignupResult and Decision. (procurement.Outcome is another thing: whether
// one Procurement API call made its change or found it made.)
type Outcome string

// Outcomes.
const (
	// OutcomeAdded: stored for the first time.
	OutcomeAdded Outcome = "added"
	// OutcomeUpdated: the stored state was out of date and was brought up
	// to date (for an entitlement, its parking may be what changed).
	OutcomeUpdated Outcome = "updated"
	// OutcomeDeleted: deleted at Google and removed locally; for an
	// account, after the handler's OnAccountDeleted ran (the customer was
	// purged).
	OutcomeDeleted Outcome = "deleted"
	// OutcomeApproved: a new entitlement or a plan change approved through
	// the Procurement API. As a Decision: approve it.
	OutcomeApproved Outcome = "approved"
	// OutcomeRejected: a new entitlement or a plan change rejected through
	// the Procurement API. As a Decision: reject it, with Decision.Reason
	// shown to the customer.
	OutcomeRejected Outcome = "rejected"
	// OutcomeQueued: the request was put in the approval queue for an
	// operator (Processor.PendingApprovals, Approve, Reject). As a
	// Decision: queue it, showing Decision.MessageToUser to the customer
	// meanwhile if it is not empty.
	OutcomeQueued Outcome = "queued"
	// OutcomeParked: a new entitlement waits for its account's sign-up
	// (Processor.CompleteSignup approves it then; Processor.Parked lists
	// them).
	OutcomeParked Outcome = "parked"
)

// Result is what the processor did to one account or entitlement.
type Result struct {
	// Resource is the account or entitlement.
	Resource events.Resource
	// Outcomes lists what was done, in order: for example OutcomeAdded
	// then OutcomeApproved for an entitlement first seen and approved at
	// once. Empty when nothing was needed, or when Err is set.
	Outcomes []Outcome
	// State is an entitlement's state afterwards; "" for an account, for
	// an entitlement that no longer exists (a rejected entitlement is
	// removed), or when Err is set.
	State procurement.EntitlementState
	// Err is why the resource could not be settled; the others are
	// settled anyway.
	Err error
}

// ReconcileReport says what Reconcile did: one Result per account or
// entitlement it changed or failed to settle (accounts first), in the order
// settled. Entitlements removed with a purged account follow it.
type ReconcileReport struct {
	Results []Result
}

// Changed reports whether Reconcile changed anything.
func (r ReconcileReport) Changed() bool {
	for _, res := range r.Results {
		if len(res.Outcomes) > 0 {
			return true
		}
	}
	return false
}

// entitlementResult is the Result of settling an entitlement.
func entitlementResult(id string, r entResult, err error) Result {
	out := Result{Resource: events.Resource{Kind: events.ResourceEntitlement, ID: id}, Err: err}
	if err != nil {
		return out
	}
	switch {
	case r.added:
		out.Outcomes = append(out.Outcomes, OutcomeAdded)
	case r.deleted:
		out.Outcomes = append(out.Outcomes, OutcomeDeleted)
	case r.updated:
		out.Outcomes = append(out.Outcomes, OutcomeUpdated)
	}
	if r.action != "" {
		out.Outcomes = append(out.Outcomes, r.action)
	}
	if r.final != nil {
		out.State = r.final.State
	}
	return out
}
