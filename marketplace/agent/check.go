package agent

import (
	"context"
	"errors"
	"fmt"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/procurement"
)

// entitlementRef is what registration keeps of the order's entitlement.
type entitlementRef struct {
	id               string
	usageReportingID string
}

func isNotFound(err error) bool {
	return errors.Is(err, marketplace.ErrNotFound) || errors.Is(err, procurement.ErrNotFound)
}

// checkOrder checks that the account is active (a live Procurement read,
// as Red Hat's agent does) and finds the order's usable entitlement.
func (r *Registry) checkOrder(ctx context.Context, accountID, orderID string) (entitlementRef, error) {
	acct, err := r.cfg.Procurement.GetAccount(ctx, accountID, nil)
	if err == nil && r.cfg.ApproveAccounts && signupPending(acct) {
		if acct, err = r.approveAccount(ctx, accountID); err != nil {
			return entitlementRef{}, err
		}
	}
	switch {
	case isNotFound(err) || errors.Is(err, procurement.ErrInvalidName):
		return entitlementRef{}, refusal(CodeUnapprovedSoftwareStatement, "the account does not exist", err)
	case err != nil:
		return entitlementRef{}, serverError("the account could not be read", err)
	case acct.State != procurement.AccountStateActive:
		return entitlementRef{}, refusal(CodeUnapprovedSoftwareStatement, "the account is not active",
			fmt.Errorf("account %q is %s", accountID, acct.State))
	}
	return r.orderEntitlement(ctx, accountID, orderID)
}

// signupPending reports whether the account waits for a sign-up: its
// "signup" approval is pending (or absent), not approved nor rejected.
func signupPending(a procurement.Account) bool {
	ap, ok := a.Approval(procurement.SignupApproval)
	return !ok || ap.State == procurement.ApprovalStatePending
}

// approveAccount completes the sign-up of an account whose verified
// statement registers (Config.ApproveAccounts) and returns the account as
// approved.
func (r *Registry) approveAccount(ctx context.Context, accountID string) (procurement.Account, error) {
	p := r.proc.Load()
	if p == nil {
		return procurement.Account{}, serverError("the account could not be approved", ErrNotAttached)
	}
	res, err := p.CompleteSignup(ctx, marketplace.SignupParams{AccountID: accountID, VendorUserID: accountID})
	if err != nil {
		return procurement.Account{}, serverError("the account could not be approved", err)
	}
	r.log.Info("agent: account approved at its registration (ApproveAccounts)", "account", accountID,
		"entitlements", len(res.Entitlements))
	return res.Account, nil
}

// orderEntitlement finds the order's entitlement and checks that it is
// usable.
//
// The order id is the entitlement's orderId. Red Hat's agent uses it as
// the entitlement id, and the emulator makes them equal, but Google does
// not document that they are. So: the stored entitlement with the order's
// id first (no API call when Pub/Sub has told us and it is usable); then
// entitlements.get of that id, accepted only if its orderId matches; then
// the account's entitlements, listed and matched on orderId. The live read
// means a registration that arrives before the Pub/Sub message is not
// refused.
func (r *Registry) orderEntitlement(ctx context.Context, accountID, orderID string) (entitlementRef, error) {
	stored, err := r.entitlement(ctx, orderID)
	switch {
	case err == nil && stored.AccountID == accountID && r.Usable(stored.State):
		return entitlementRef{id: stored.ID, usageReportingID: stored.UsageReportingID}, nil
	case err != nil && !isNotFound(err):
		// Procurement is the truth the store caches: ask it.
		r.log.Warn("agent: stored entitlement unreadable; reading Procurement", "order", orderID, "error", err)
	}
	live, err := r.liveEntitlement(ctx, accountID, orderID)
	if err != nil {
		return entitlementRef{}, err
	}
	if !r.Usable(live.State) {
		return entitlementRef{}, refusal(CodeUnapprovedSoftwareStatement, "the order's entitlement is not active",
			fmt.Errorf("entitlement %q of order %q is %s", live.ID, orderID, live.State))
	}
	return entitlementRef{id: live.ID, usageReportingID: live.UsageReportingID}, nil
}

// liveEntitlement reads the order's entitlement from Procurement.
func (r *Registry) liveEntitlement(ctx context.Context, accountID, orderID string) (procurement.Entitlement, error) {
	e, err := r.cfg.Procurement.GetEntitlement(ctx, orderID)
	switch {
	case err == nil && e.AccountID == accountID && (e.OrderID == orderID || e.OrderID == ""):
		return e, nil
	case err != nil && !isNotFound(err) && !errors.Is(err, procurement.ErrInvalidName):
		return procurement.Entitlement{}, serverError("the order's entitlement could not be read", err)
	}
	params := &procurement.ListEntitlementsParams{Filter: procurement.FilterAccount(accountID)}
	for e, err := range r.cfg.Procurement.ListEntitlements(ctx, params) {
		if err != nil {
			return procurement.Entitlement{}, serverError("the account's entitlements could not be listed", err)
		}
		if e.OrderID == orderID && e.AccountID == accountID {
			return e, nil
		}
	}
	return procurement.Entitlement{}, refusal(CodeUnapprovedSoftwareStatement, "the order has no entitlement",
		fmt.Errorf("no entitlement of account %q has order %q", accountID, orderID))
}

// confirmUsable re-reads a newly stored order's entitlement. The check
// before the client was created may have raced a cancellation whose
// callback listed the orders before this one was stored, and so did not
// revoke it; after the insert, any later cancellation's callback will. So
// an entitlement found ended now is revoked here. A failed read keeps the
// order: the earlier check passed.
func (r *Registry) confirmUsable(ctx context.Context, o OrderRecord) error {
	e, err := r.cfg.Procurement.GetEntitlement(ctx, o.EntitlementID)
	switch {
	case err != nil && !isNotFound(err):
		r.log.Warn("agent: entitlement not re-read after registration", "order", o.ID, "error", err)
		return nil
	case err == nil && r.Usable(e.State):
		return nil
	}
	if err := r.deleteClient(ctx, o.Order); err != nil {
		return serverError("the client of an order that ended meanwhile could not be deleted", err)
	}
	if err := r.cfg.Store.RevokeOrder(ctx, o.ID, r.now().UTC()); err != nil {
		return serverError("an order that ended meanwhile could not be revoked", err)
	}
	r.forgetOrder(o.ID)
	r.met.revoked(ctx, "entitlement_ended", 1)
	return refusal(CodeUnapprovedSoftwareStatement, "the order's entitlement ended during registration",
		fmt.Errorf("entitlement %q of order %q: %s", o.EntitlementID, o.ID, e.State))
}
