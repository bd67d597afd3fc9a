package marketplacetest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Errors returned by the customer and Google actions (CreateAccount,
// Purchase, Cancel, ...). They are sentinels for errors.Is.
var (
	// ErrNotFound: no account or entitlement with that id.
	ErrNotFound = errors.New("marketplacetest: not found")
	// ErrWrongState: the resource's state does not allow the action.
	ErrWrongState = errors.New("marketplacetest: action not allowed in this state")
	// ErrInvalidParams: the parameters are invalid.
	ErrInvalidParams = errors.New("marketplacetest: invalid parameters")
)

// PurchaseParams describe what the customer buys.
type PurchaseParams struct {
	// AccountID is the buying account; "" creates a new account first
	// (publishing its message).
	AccountID string
	// Product is the productExternalName; default ServiceName().
	Product string
	// Plan is the plan id; default "standard".
	Plan string
	// Offer is an offer resource name, e.g.
	// "projects/123/services/<svc>/privateOffers/<id>"; optional.
	Offer string
	// OfferDuration is the term as an ISO 8601 duration ("P1Y", "P2Y3M").
	// Set at most one of OfferDuration and OfferEndTime.
	OfferDuration string
	// OfferEndTime is a private offer's fixed end date.
	OfferEndTime time.Time
	// UsageBased gives the entitlement a usageReportingId
	// ("project_number:<n>") that Service Control accepts as a consumerId.
	UsageBased bool
	// AutoApprove models a private offer on a product with automatic offer
	// approval: ENTITLEMENT_OFFER_ACCEPTED, then ACTIVE at StartTime without
	// any provider call.
	AutoApprove bool
	// StartTime is the scheduled start (newOfferStartTime); zero = now.
	StartTime time.Time
	// QuoteExternalName is the quote the purchase went through
	// (Entitlement.quoteExternalName, "empty unless bought through a
	// quote" per the discovery document); optional.
	QuoteExternalName string
	// InputProperties are the deprecated Entitlement.inputProperties
	// (discovery document: output only, deprecated); optional.
	InputProperties map[string]any
	// OrderID is the Marketplace order (Entitlement.orderId, an AI agent's
	// google.order); "" makes it equal to the entitlement id, as observed
	// (equality is not documented, so tests of agents may set another).
	OrderID string
}

// CreateAccount creates a customer account (ACCOUNT_ACTIVE, signup
// approval PENDING) and publishes its message.
func (s *Server) CreateAccount(ctx context.Context) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.runScheduledLocked()
	return s.createAccountLocked().id, nil
}

// Purchase makes the customer buy the product. Without AutoApprove the
// entitlement is ENTITLEMENT_ACTIVATION_REQUESTED and
// ENTITLEMENT_CREATION_REQUESTED is published; the provider approves it
// with entitlements.approve. With AutoApprove, ENTITLEMENT_OFFER_ACCEPTED is
// published and the entitlement becomes ACTIVE (publishing
// ENTITLEMENT_ACTIVE) at StartTime, or at once if StartTime is not in the
// future.
func (s *Server) Purchase(ctx context.Context, p PurchaseParams) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if p.OfferDuration != "" && !p.OfferEndTime.IsZero() {
		return "", fmt.Errorf("%w: set OfferDuration or OfferEndTime, not both", ErrInvalidParams)
	}
	if p.OfferDuration != "" {
		if _, _, ok := parseYearMonthDuration(p.OfferDuration); !ok {
			return "", fmt.Errorf("%w: OfferDuration %q is not an ISO 8601 duration in years and months", ErrInvalidParams, p.OfferDuration)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.runScheduledLocked()
	var acct *account
	if p.AccountID == "" {
		acct = s.createAccountLocked()
	} else if acct = s.state.accounts[p.AccountID]; acct == nil {
		return "", fmt.Errorf("purchase for account %s: %w", p.AccountID, ErrNotFound)
	}
	if p.Product == "" {
		p.Product = s.ServiceName()
	}
	if p.Plan == "" {
		p.Plan = "standard"
	}
	e := s.newEntitlementLocked(acct.id, p)
	s.state.entitlements[e.id] = e

	if !p.AutoApprove {
		s.publishEntitlementLocked("ENTITLEMENT_CREATION_REQUESTED", e, func(w *wireEventEntitlement) {
			if p.Offer != "" {
				// The private-offer shape: exactly one of the two is set.
				w.NewOfferDuration = strPtr(p.OfferDuration)
				w.NewOfferEndTime = strPtr(formatTimestamp(e.fixedEnd))
			} else if p.OfferDuration != "" {
				w.NewPendingOfferDuration = strPtr(p.OfferDuration)
			}
		})
		return e.id, nil
	}
	s.autoApproveLocked(e, p)
	s.runScheduledLocked()
	return e.id, nil
}

// newEntitlementLocked makes the entitlement of purchase p by accountID, in
// ENTITLEMENT_ACTIVATION_REQUESTED; the caller stores it.
func (s *Server) newEntitlementLocked(accountID string, p PurchaseParams) *entitlement {
	now := s.stampLocked()
	e := &entitlement{
		id:            s.newUUIDLocked(),
		seq:           s.nextSeqLocked(),
		accountID:     accountID,
		product:       p.Product,
		plan:          p.Plan,
		state:         StateActivationRequested,
		offer:         p.Offer,
		offerDuration: p.OfferDuration,
		fixedEnd:      p.OfferEndTime.UTC(),
		autoApprove:   p.AutoApprove,
		createTime:    now,
		updateTime:    now,

		quoteExternalName: p.QuoteExternalName,
		inputProperties:   p.InputProperties,
	}
	e.benefitIDs = []string{benefitID(e.id)}
	if e.orderID = p.OrderID; e.orderID == "" {
		e.orderID = e.id
	}
	if !p.StartTime.IsZero() {
		e.scheduledStart = p.StartTime.UTC()
	}
	if p.Offer != "" {
		e.offerHistory = []string{p.Offer}
	}
	if p.UsageBased {
		n := 100000000000 + s.rng.Int64N(900000000000)
		e.usageReportingID = "project_number:" + strconv.FormatInt(n, 10)
		e.consumerProject = "projects/" + strconv.FormatInt(n, 10)
		s.state.consumers[e.usageReportingID] = &consumerLife{entitlementID: e.id}
	}
	return e
}

// autoApproveLocked approves purchase p's entitlement e on the provider's
// behalf, as automatic offer approval does, and publishes
// ENTITLEMENT_OFFER_ACCEPTED; the scheduler activates it at its start.
func (s *Server) autoApproveLocked(e *entitlement, p PurchaseParams) {
	e.approved = true
	start := e.scheduledStart
	if start.IsZero() {
		start = s.clock.Now().UTC()
	}
	e.newOfferStartTime = start
	e.offerEndTime = termEnd(start, e.offerDuration, e.fixedEnd)
	s.publishEntitlementLocked("ENTITLEMENT_OFFER_ACCEPTED", e, func(w *wireEventEntitlement) {
		w.NewPendingOfferDuration = strPtr(p.OfferDuration)
		w.NewOfferStartTime = strPtr(formatTimestamp(start))
		w.NewOfferEndTime = strPtr(formatTimestamp(e.offerEndTime))
		w.NewPlan = e.plan
		w.NewProduct = newProduct(e.product, e.offer)
		w.NewOffer = e.offer
		w.OrderID = e.orderID
		w.EntitlementBenefitIDs = e.benefitIDs
	})
}

// RequestPlanChange makes the customer choose another plan. The entitlement
// must be ACTIVE. It becomes ENTITLEMENT_PENDING_PLAN_CHANGE_APPROVAL with
// newPendingPlan set, and ENTITLEMENT_PLAN_CHANGE_REQUESTED is published.
// For an auto-approved entitlement ENTITLEMENT_OFFER_ACCEPTED is published
// instead and the plan changes at once (ENTITLEMENT_PLAN_CHANGED).
func (s *Server) RequestPlanChange(ctx context.Context, entitlementID, newPlan string) error {
	return s.requestChange(ctx, entitlementID, newPlan, "")
}

// RequestOfferChange makes the customer accept a private offer that
// replaces the entitlement's active one ("Replace an active offer"). It is
// RequestPlanChange with newPendingOffer set to offer (an offer resource
// name); newPlan may be the current plan. Once the change is approved (or
// at once, if auto-approved) the entitlement's offer is the new one.
func (s *Server) RequestOfferChange(ctx context.Context, entitlementID, newPlan, offer string) error {
	if offer == "" {
		return fmt.Errorf("%w: empty offer", ErrInvalidParams)
	}
	return s.requestChange(ctx, entitlementID, newPlan, offer)
}

func (s *Server) requestChange(ctx context.Context, entitlementID, newPlan, newOffer string) error {
	if newPlan == "" {
		return fmt.Errorf("%w: empty plan", ErrInvalidParams)
	}
	return s.entitlementAction(ctx, "request plan change for", entitlementID, func(e *entitlement) error {
		if e.state != StateActive {
			return &wrongStateError{"request plan change for", e.id, e.state}
		}
		e.newPendingPlan, e.newPendingOffer = newPlan, newOffer
		if e.autoApprove {
			s.touchLocked(e)
			s.publishEntitlementLocked("ENTITLEMENT_OFFER_ACCEPTED", e, func(w *wireEventEntitlement) {
				w.NewPlan = newPlan
				w.NewProduct = newProduct(e.product, e.offer)
				if newOffer != "" {
					w.NewOffer = newOffer
					w.NewProduct = newOffer
				}
				w.NewOfferStartTime = strPtr(formatTimestamp(s.clock.Now()))
				w.OrderID = e.orderID
				w.EntitlementBenefitIDs = e.benefitIDs
			})
			s.applyPlanChangeLocked(e)
			return nil
		}
		s.setStateLocked(e, StatePendingPlanChangeApproval)
		s.publishEntitlementLocked("ENTITLEMENT_PLAN_CHANGE_REQUESTED", e, func(w *wireEventEntitlement) {
			w.NewPlan = newPlan
			if newOffer != "" {
				w.NewOffer = newOffer
			}
		})
		return nil
	})
}

// CancelPlanChange makes the customer withdraw a pending plan change
// (PENDING_PLAN_CHANGE_APPROVAL or PENDING_PLAN_CHANGE): the entitlement
// goes back to ACTIVE on its plan and ENTITLEMENT_PLAN_CHANGE_CANCELLED is
// published.
func (s *Server) CancelPlanChange(ctx context.Context, entitlementID string) error {
	return s.entitlementAction(ctx, "cancel plan change of", entitlementID, func(e *entitlement) error {
		if e.state != StatePendingPlanChangeApproval && e.state != StatePendingPlanChange {
			return &wrongStateError{"cancel plan change of", e.id, e.state}
		}
		s.clearPlanChangeLocked(e)
		return nil
	})
}

// Cancel makes the customer cancel. Not immediate: an ACTIVE (or plan-change
// pending) entitlement becomes ENTITLEMENT_PENDING_CANCELLATION until
// EndTerm, publishing ENTITLEMENT_PENDING_CANCELLATION; a pending plan
// change is dropped. Immediate: ENTITLEMENT_CANCELLING then
// ENTITLEMENT_CANCELLED are published and the entitlement is CANCELLED
// (cancellationReason "user-cancelled", or "user-aborted" for one never
// activated).
func (s *Server) Cancel(ctx context.Context, entitlementID string, immediate bool) error {
	return s.entitlementAction(ctx, "cancel", entitlementID, func(e *entitlement) error {
		switch e.state {
		case StateActive, StatePendingPlanChange, StatePendingPlanChangeApproval:
		case StatePendingCancellation, StateActivationRequested:
			if !immediate {
				return &wrongStateError{"cancel", e.id, e.state}
			}
		default:
			return &wrongStateError{"cancel", e.id, e.state}
		}
		if !immediate {
			e.newPendingPlan, e.newPendingOffer, e.newPendingOfferDuration = "", "", ""
			e.newOfferStartTime, e.newOfferEndTime = time.Time{}, time.Time{}
			s.setStateLocked(e, StatePendingCancellation)
			s.publishEntitlementLocked("ENTITLEMENT_PENDING_CANCELLATION", e, nil)
			return nil
		}
		reason := "user-cancelled"
		if e.state == StateActivationRequested {
			reason = "user-aborted"
		}
		s.touchLocked(e)
		s.publishEntitlementLocked("ENTITLEMENT_CANCELLING", e, nil)
		s.cancelLocked(e, reason)
		return nil
	})
}

// RevertCancellation makes the customer take back a pending cancellation:
// PENDING_CANCELLATION → ACTIVE, publishing
// ENTITLEMENT_CANCELLATION_REVERTED. A final cancellation cannot be
// reverted (ErrWrongState).
func (s *Server) RevertCancellation(ctx context.Context, entitlementID string) error {
	return s.entitlementAction(ctx, "revert cancellation of", entitlementID, func(e *entitlement) error {
		if e.state != StatePendingCancellation {
			return &wrongStateError{"revert cancellation of", e.id, e.state}
		}
		s.setStateLocked(e, StateActive)
		s.publishEntitlementLocked("ENTITLEMENT_CANCELLATION_REVERTED", e, nil)
		return nil
	})
}

// EndTerm ends the entitlement's current term (billing cycle or offer
// term), as Google does when the term's end passes:
//   - PENDING_CANCELLATION → CANCELLED (ENTITLEMENT_CANCELLED);
//   - PENDING_PLAN_CHANGE → ACTIVE on the new plan (ENTITLEMENT_PLAN_CHANGED);
//   - ACTIVE or PENDING_PLAN_CHANGE_APPROVAL → a new term starts
//     (offerEndTime moves on, ENTITLEMENT_RENEWED), except for a private
//     offer with a fixed end date, which ends (ENTITLEMENT_OFFER_ENDED) and
//     stays ACTIVE at non-discounted pricing without an offer.
func (s *Server) EndTerm(ctx context.Context, entitlementID string) error {
	return s.entitlementAction(ctx, "end term of", entitlementID, func(e *entitlement) error {
		switch e.state {
		case StatePendingCancellation:
			s.cancelLocked(e, "user-cancelled")
		case StatePendingPlanChange:
			s.applyPlanChangeLocked(e)
		case StateActive, StatePendingPlanChangeApproval:
			if !e.fixedEnd.IsZero() {
				e.offer, e.offerDuration, e.fixedEnd = "", "", time.Time{}
				s.touchLocked(e)
				s.publishEntitlementLocked("ENTITLEMENT_OFFER_ENDED", e, nil)
				return nil
			}
			start := e.offerEndTime
			if start.IsZero() {
				start = s.clock.Now().UTC()
			}
			e.offerEndTime = termEnd(start, e.offerDuration, time.Time{})
			s.touchLocked(e)
			s.publishEntitlementLocked("ENTITLEMENT_RENEWED", e, nil)
		default:
			return &wrongStateError{"end term of", e.id, e.state}
		}
		return nil
	})
}

// DeleteEntitlement deletes a CANCELLED entitlement (a later GET is 404)
// and publishes ENTITLEMENT_DELETED.
func (s *Server) DeleteEntitlement(ctx context.Context, entitlementID string) error {
	return s.entitlementAction(ctx, "delete", entitlementID, func(e *entitlement) error {
		if e.state != StateCancelled {
			return &wrongStateError{"delete", e.id, e.state}
		}
		s.deleteEntitlementLocked(e)
		return nil
	})
}

// DeleteAccount deletes an account, as when the customer leaves Google
// Cloud: each of its entitlements is cancelled (ENTITLEMENT_CANCELLED,
// cancellationReason "account-closed") unless already cancelled, then
// deleted (ENTITLEMENT_DELETED); then ACCOUNT_DELETED is published.
func (s *Server) DeleteAccount(ctx context.Context, accountID string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.runScheduledLocked()
	a := s.state.accounts[accountID]
	if a == nil {
		return fmt.Errorf("delete account %s: %w", accountID, ErrNotFound)
	}
	for _, e := range s.sortedEntitlementsLocked() {
		if e.accountID != accountID {
			continue
		}
		if e.state != StateCancelled {
			s.cancelLocked(e, "account-closed")
		}
		s.deleteEntitlementLocked(e)
	}
	delete(s.state.accounts, accountID)
	a.updateTime = s.stampLocked()
	s.publishAccountLocked("ACCOUNT_DELETED", "ACCOUNT_DELETED", a)
	return nil
}

// SetPlanChangeAtTermEnd chooses what entitlements.approvePlanChange does:
// false (default) applies the plan at once (ACTIVE,
// ENTITLEMENT_PLAN_CHANGED); true moves the entitlement to
// ENTITLEMENT_PENDING_PLAN_CHANGE until EndTerm.
func (s *Server) SetPlanChangeAtTermEnd(atTermEnd bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.state.planChangeAtEnd = atTermEnd
}

func (s *Server) entitlementAction(ctx context.Context, action, id string, f func(*entitlement) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.runScheduledLocked()
	e := s.state.entitlements[id]
	if e == nil {
		return fmt.Errorf("%s entitlement %s: %w", action, id, ErrNotFound)
	}
	return f(e)
}
