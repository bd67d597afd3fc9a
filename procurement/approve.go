package procurement

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	cp "google.golang.org/api/cloudcommerceprocurement/v1"
	"google.golang.org/api/googleapi"
)

// EntitlementResult is the result of an idempotent entitlement change.
type EntitlementResult struct {
	// Outcome says whether this call made the change.
	Outcome Outcome
	// Entitlement is the latest state read. A rejected entitlement is
	// removed by the API; after RejectEntitlement it may be the state read
	// before the rejection.
	Entitlement Entitlement
}

// ApproveEntitlementParams are the optional parameters of ApproveEntitlement.
type ApproveEntitlementParams struct {
	// EntitlementMigrated is the resource name of an entitlement whose
	// resources moved to this one, if any.
	EntitlementMigrated string
}

// ApproveEntitlement approves an entitlement waiting in
// ENTITLEMENT_ACTIVATION_REQUESTED. It reads the entitlement first:
//
//   - still waiting for approval: it approves (OutcomeApplied);
//   - approved and waiting for a scheduled start (NewOfferStartTime set),
//     ACTIVE, or in a later active state: OutcomeAlreadyDone, no write;
//   - CANCELLED, SUSPENDED: a *StateError (ErrWrongState), no write;
//   - deleted: ErrNotFound.
//
// The API refuses the approval while the account's "signup" approval is not
// APPROVED; the error then matches ErrFailedPrecondition and
// ErrSignupNotApproved and says to approve the account sign-up first
// (ApproveAccountSignup). After a doubtful failure (5xx, broken connection)
// it re-reads and succeeds if the approval went through. params may be nil.
func (c *Client) ApproveEntitlement(ctx context.Context, entitlementID string, params *ApproveEntitlementParams) (EntitlementResult, error) {
	name, err := c.entitlementName(entitlementID)
	if err != nil {
		return EntitlementResult{}, err
	}
	var p ApproveEntitlementParams
	if params != nil {
		p = *params
	}
	if p.EntitlementMigrated != "" {
		if p.EntitlementMigrated, err = c.entitlementName(p.EntitlementMigrated); err != nil {
			return EntitlementResult{}, err
		}
	}
	return c.changeEntitlement(ctx, name, change[Entitlement]{
		method: MethodApproveEntitlement,
		decide: func(e *Entitlement, _ bool) (bool, error) {
			switch e.State {
			case EntitlementActivationRequested:
				// Set only once approved, while waiting for a scheduled start.
				return !e.NewOfferStartTime.IsZero(), nil
			case EntitlementActive, EntitlementPendingPlanChange, EntitlementPendingPlanChangeApproval,
				EntitlementPendingCancellation:
				return true, nil
			}
			return false, stateError(MethodApproveEntitlement, e, "only an entitlement in "+
				string(EntitlementActivationRequested)+" can be approved")
		},
		act: func(ctx context.Context, _ *Entitlement) error {
			_, err := c.svc.Providers.Entitlements.Approve(name, &cp.ApproveEntitlementRequest{
				EntitlementMigrated: p.EntitlementMigrated,
			}).Context(ctx).Do()
			return err
		},
		explain: c.explainApprovalRefused,
	})
}

// explainApprovalRefused looks at the account when an entitlement approval
// is refused with FAILED_PRECONDITION though the entitlement is waiting for
// approval: the documented cause is an account whose sign-up is not approved.
func (c *Client) explainApprovalRefused(ctx context.Context, r *retrier, e *Entitlement, apiErr *APIError) error {
	if e.Account == "" {
		return apiErr
	}
	acc, err := c.getAccount(ctx, r, e.Account, AccountViewBasic)
	if err != nil {
		apiErr.Hint = "the account's sign-up may not be approved yet (reading account " + e.Account + " failed: " + err.Error() + ")"
		return apiErr
	}
	if acc.SignupApproved() {
		return apiErr
	}
	state := "missing"
	if ap, ok := acc.Approval(SignupApproval); ok {
		state = string(ap.State)
	}
	apiErr.Hint = fmt.Sprintf("account %s sign-up approval is %s: approve the account sign-up first (ApproveAccountSignup), then the entitlement",
		acc.ID, state)
	apiErr.also = ErrSignupNotApproved
	return apiErr
}

// RejectEntitlementParams are the optional parameters of RejectEntitlement.
type RejectEntitlementParams struct {
	// Reason is an optional free-form reason, at most 256 bytes; longer
	// reasons are refused before any call.
	Reason string
}

// RejectEntitlement rejects an entitlement waiting in
// ENTITLEMENT_ACTIVATION_REQUESTED; the API then removes it. An entitlement
// already CANCELLED is reported as OutcomeAlreadyDone; one already approved
// (active, or waiting for its scheduled start) is a *StateError. Rejecting
// an entitlement that was already rejected and removed is ErrNotFound,
// unless it is this call's own earlier attempt. params may be nil.
func (c *Client) RejectEntitlement(ctx context.Context, entitlementID string, params *RejectEntitlementParams) (EntitlementResult, error) {
	name, err := c.entitlementName(entitlementID)
	if err != nil {
		return EntitlementResult{}, err
	}
	var p RejectEntitlementParams
	if params != nil {
		p = *params
	}
	if err := checkReason(MethodRejectEntitlement, name, p.Reason); err != nil {
		return EntitlementResult{}, err
	}
	return c.changeEntitlement(ctx, name, change[Entitlement]{
		method:        MethodRejectEntitlement,
		goneMeansDone: true,
		decide: func(e *Entitlement, _ bool) (bool, error) {
			switch {
			case e.State == EntitlementCancelled:
				return true, nil
			case e.State == EntitlementActivationRequested && e.NewOfferStartTime.IsZero():
				return false, nil
			}
			return false, stateError(MethodRejectEntitlement, e, "it has already been approved; only an entitlement waiting for approval can be rejected")
		},
		act: func(ctx context.Context, _ *Entitlement) error {
			_, err := c.svc.Providers.Entitlements.Reject(name, &cp.RejectEntitlementRequest{Reason: p.Reason}).Context(ctx).Do()
			return err
		},
	})
}

// ApprovePlanChangeParams are the optional parameters of ApprovePlanChange.
type ApprovePlanChangeParams struct {
	// ExpectedPlan, if set, is the plan the caller means to approve. If the
	// entitlement's pending plan is different (the customer changed their
	// mind), nothing is approved and the error is a *PlanMismatchError.
	// It also lets ApprovePlanChange tell, for an ACTIVE entitlement, a
	// change already made (Plan == ExpectedPlan) from one withdrawn.
	ExpectedPlan string
}

// ApprovePlanChange approves the pending plan change of an entitlement in
// ENTITLEMENT_PENDING_PLAN_CHANGE_APPROVAL, sending the pending plan it has
// just read from the API (never a plan from a possibly stale message). It
// reads the entitlement first:
//
//   - waiting for approval: it approves (OutcomeApplied);
//   - ENTITLEMENT_PENDING_PLAN_CHANGE (approved, waiting for the end of the
//     billing cycle): OutcomeAlreadyDone;
//   - ACTIVE: without ExpectedPlan, OutcomeAlreadyDone (no change is pending
//     any more: it was approved, or withdrawn by the customer; compare
//     Entitlement.Plan); with ExpectedPlan, OutcomeAlreadyDone if the plan is
//     ExpectedPlan, else a *StateError;
//   - any other state: a *StateError.
//
// After a doubtful failure it re-reads and succeeds if the plan it sent
// became the entitlement's plan or approved pending plan. params may be nil.
func (c *Client) ApprovePlanChange(ctx context.Context, entitlementID string, params *ApprovePlanChangeParams) (EntitlementResult, error) {
	name, err := c.entitlementName(entitlementID)
	if err != nil {
		return EntitlementResult{}, err
	}
	var p ApprovePlanChangeParams
	if params != nil {
		p = *params
	}
	want := p.ExpectedPlan // after a write: the plan this call sent
	const method = MethodApprovePlanChange
	return c.changeEntitlement(ctx, name, change[Entitlement]{
		method: method,
		decide: func(e *Entitlement, _ bool) (bool, error) {
			switch e.State {
			case EntitlementPendingPlanChangeApproval:
				if want != "" && e.NewPendingPlan != want {
					return false, &PlanMismatchError{Method: method, Resource: e.Name, Expected: want, Actual: e.NewPendingPlan}
				}
				return false, nil
			case EntitlementPendingPlanChange:
				if want != "" && e.NewPendingPlan != want {
					return false, &PlanMismatchError{Method: method, Resource: e.Name, Expected: want, Actual: e.NewPendingPlan}
				}
				return true, nil
			case EntitlementActive:
				if want == "" || e.Plan == want {
					return true, nil
				}
				return false, stateError(method, e, fmt.Sprintf("no plan change is pending and the plan is %q, not %q (the change was withdrawn or rejected)", e.Plan, want))
			}
			return false, stateError(method, e, "only an entitlement in "+
				string(EntitlementPendingPlanChangeApproval)+" has a plan change to approve")
		},
		act: func(ctx context.Context, e *Entitlement) error {
			if e.NewPendingPlan == "" {
				return fmt.Errorf("procurement: %s %s: the entitlement has no pending plan: %w", method, name, ErrMalformedResponse)
			}
			_, err := c.svc.Providers.Entitlements.ApprovePlanChange(name, &cp.ApproveEntitlementPlanChangeRequest{
				PendingPlanName: e.NewPendingPlan,
			}).Context(ctx).Do()
			if mayHaveActed(err) {
				want = e.NewPendingPlan // from now on, verify this plan
			}
			return err
		},
	})
}

// RejectPlanChangeParams are the optional parameters of RejectPlanChange.
type RejectPlanChangeParams struct {
	// ExpectedPlan, if set, is the pending plan the caller means to reject;
	// if the pending plan differs nothing is rejected (*PlanMismatchError).
	ExpectedPlan string
	// Reason is an optional free-form reason, at most 256 bytes.
	Reason string
}

// RejectPlanChange rejects the pending plan change of an entitlement in
// ENTITLEMENT_PENDING_PLAN_CHANGE_APPROVAL; the entitlement stays ACTIVE on
// its current plan. The pending plan sent is the one just read from the
// API. An ACTIVE entitlement with no pending change is OutcomeAlreadyDone
// (with ExpectedPlan set, only if its plan is not ExpectedPlan); a change
// already approved (ENTITLEMENT_PENDING_PLAN_CHANGE) is a *StateError.
// params may be nil.
func (c *Client) RejectPlanChange(ctx context.Context, entitlementID string, params *RejectPlanChangeParams) (EntitlementResult, error) {
	name, err := c.entitlementName(entitlementID)
	if err != nil {
		return EntitlementResult{}, err
	}
	var p RejectPlanChangeParams
	if params != nil {
		p = *params
	}
	const method = MethodRejectPlanChange
	if err := checkReason(method, name, p.Reason); err != nil {
		return EntitlementResult{}, err
	}
	want := p.ExpectedPlan
	return c.changeEntitlement(ctx, name, change[Entitlement]{
		method: method,
		decide: func(e *Entitlement, _ bool) (bool, error) {
			switch e.State {
			case EntitlementPendingPlanChangeApproval:
				if want != "" && e.NewPendingPlan != want {
					return false, &PlanMismatchError{Method: method, Resource: e.Name, Expected: want, Actual: e.NewPendingPlan}
				}
				return false, nil
			case EntitlementActive:
				if want != "" && e.Plan == want {
					return false, stateError(method, e, fmt.Sprintf("the plan change to %q has already been made", want))
				}
				return true, nil
			}
			return false, stateError(method, e, "only an entitlement in "+
				string(EntitlementPendingPlanChangeApproval)+" has a plan change to reject")
		},
		act: func(ctx context.Context, e *Entitlement) error {
			if e.NewPendingPlan == "" {
				return fmt.Errorf("procurement: %s %s: the entitlement has no pending plan: %w", method, name, ErrMalformedResponse)
			}
			_, err := c.svc.Providers.Entitlements.RejectPlanChange(name, &cp.RejectEntitlementPlanChangeRequest{
				PendingPlanName: e.NewPendingPlan,
				Reason:          p.Reason,
			}).Context(ctx).Do()
			if mayHaveActed(err) {
				want = e.NewPendingPlan
			}
			return err
		},
	})
}

// changeEntitlement runs an idempotent entitlement change.
func (c *Client) changeEntitlement(ctx context.Context, name string, ch change[Entitlement]) (EntitlementResult, error) {
	ch.get = func(ctx context.Context, r *retrier) (Entitlement, error) { return c.getEntitlement(ctx, r, name) }
	ch.updateTime = func(e *Entitlement) int64 { return e.UpdateTime.UnixNano() }
	e, outcome, err := runChange(ctx, c, name, ch)
	return EntitlementResult{Outcome: outcome, Entitlement: e}, err
}

func stateError(method Method, e *Entitlement, detail string) *StateError {
	return &StateError{Method: method, Resource: e.Name, State: string(e.State), Detail: detail}
}

// mayHaveActed reports whether the server may have performed a write that
// returned err: it succeeded, or failed in a way that hides the outcome (a
// 5xx, a broken connection). A 429 or a 4xx means it did not act.
func mayHaveActed(err error) bool {
	if err == nil {
		return true
	}
	var gerr *googleapi.Error
	if errors.As(err, &gerr) && gerr.Code == http.StatusTooManyRequests {
		return false
	}
	return IsRetryable(err)
}
