package marketplacetest

// This file fills the resource fields that only some purchases carry
// (issue 21, item 9), so that code reading them is exercised.

import (
	"context"
	"crypto/sha1"
	"fmt"
	"time"
)

// benefitID is the entitlement benefit id of entitlement id: a UUID (the
// real capture in google-apis.md §1.2 shows one UUID in
// entitlementBenefitIds, "the entitlement benefit IDs associated with the
// purchase" per the discovery document). Undocumented how it is made and
// which purchases carry one: chosen one per purchase, derived from the
// entitlement id (a name-based UUID) so that it is stable and does not
// consume the seeded random ids.
func benefitID(entitlementID string) string {
	h := sha1.Sum([]byte("benefit/" + entitlementID))
	h[6] = h[6]&0x0f | 0x50
	h[8] = h[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

// newProduct is the newProduct of an entitlement message: the offer the
// purchase or change is for when there is one, as in the real
// ENTITLEMENT_OFFER_ACCEPTED capture (google-apis.md §1.2, where newProduct
// equals newOffer), else the product (the deprecated product field "may
// hold a product, quote or offer ID", discovery document).
func newProduct(product, offer string) string {
	if offer != "" {
		return offer
	}
	return product
}

// subscriptionEnd is Entitlement.subscriptionEndTime ("output only" in the
// discovery document, without a description). Undocumented when Google
// sets it: chosen as the end of the current term when the subscription is
// known to end there (ENTITLEMENT_PENDING_CANCELLATION, a private offer
// with a fixed end date) and the actual end once ENTITLEMENT_CANCELLED
// (offerEndTime's documented meaning in that state), zero (omitted) while
// it renews.
func subscriptionEnd(e *entitlement) time.Time {
	switch {
	case e.state == StatePendingCancellation, e.state == StateCancelled, !e.fixedEnd.IsZero():
		return e.offerEndTime
	}
	return time.Time{}
}

// AccountDetails are the Account fields a customer's purchase does not set.
type AccountDetails struct {
	// InputProperties are the deprecated Account.inputProperties
	// (discovery document: output only, deprecated).
	InputProperties map[string]any
	// ResellerParentBillingAccount ("billingAccounts/{id}") makes the
	// account a reseller subaccount's: accounts.get answers it with
	// view=ACCOUNT_VIEW_FULL only (discovery document).
	ResellerParentBillingAccount string
}

// SetAccountDetails sets account id's AccountDetails. It publishes nothing
// and does not change updateTime (both fields are set at account
// creation at Google).
func (s *Server) SetAccountDetails(ctx context.Context, id string, d AccountDetails) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.state.accounts[id]
	if a == nil {
		return fmt.Errorf("%w: account %s", ErrNotFound, id)
	}
	a.inputProperties = d.InputProperties
	a.resellerParentBillingAccount = d.ResellerParentBillingAccount
	return nil
}
