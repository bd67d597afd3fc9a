package marketplace

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"

	"github.com/gcpmarketplace/gcpmarketplace/procurement"
)

// SignupParams identify a completed sign-up.
type SignupParams struct {
	// AccountID is the Procurement account id: the "sub" of the verified
	// sign-up token (verify.SignupClaims.AccountID, signup.Session.AccountID).
	AccountID string
	// VendorUserID is your own id for the customer (user, tenant,
	// organisation) that the account is linked to.
	VendorUserID string
	// UserIdentity is the token's google.user_identity, kept for reference.
	// The first one stored stays: a later sign-up of the same account by
	// another Google user does not replace it.
	UserIdentity string
}

// SignupResult reports what CompleteSignup did.
type SignupResult struct {
	// Account is the account as read after approving its sign-up.
	Account procurement.Account
	// Entitlements lists the entitlements of the account that were waiting
	// for sign-up and what became of each.
	Entitlements []EntitlementResult
}

// EntitlementResult is what the processor did to one entitlement.
type EntitlementResult struct {
	EntitlementID string
	// Action is what the approval rule did ("" if nothing was needed).
	Action RuleAction
	// State is the entitlement's state afterwards; "" if it no longer
	// exists (a rejected entitlement is removed).
	State procurement.EntitlementState
	// Err is why it could not be settled; the others are settled anyway.
	Err error
}

// ErrAccountLinked is matched by the error CompleteSignup returns when the
// account is already linked to another VendorUserID. Nothing is changed.
var ErrAccountLinked = errors.New("marketplace: account already linked to another vendor user")

// CompleteSignup finishes a customer's sign-up once your sign-up page has
// verified the token (package signup) and created or found the customer in
// your system. It:
//
//  1. approves the account's "signup" approval through the Procurement API;
//  2. links the account to VendorUserID in the Store (and reports the
//     account to the handler's OnAccountActive if it is new here);
//  3. settles every entitlement of the account waiting for approval, both
//     those parked locally and those the API lists in
//     ENTITLEMENT_ACTIVATION_REQUESTED (their message may not have arrived
//     yet): each is approved, rejected or queued by the policy, and the
//     callbacks of the resulting changes run.
//
// It is idempotent: calling it again (after an error, or a double
// submission of the form) finishes what is left. An entitlement that
// cannot be settled does not stop the others; the returned error joins
// their errors, and Reconcile or a later call settles them.
func (p *Processor) CompleteSignup(ctx context.Context, params SignupParams) (SignupResult, error) {
	if params.AccountID == "" || params.VendorUserID == "" {
		return SignupResult{}, fmt.Errorf("marketplace: complete sign-up: AccountID and VendorUserID are required: %w", ErrInvalid)
	}
	if err := p.checkOrigin(ctx); err != nil {
		return SignupResult{}, fmt.Errorf("marketplace: complete sign-up: %w", err)
	}
	id := params.AccountID
	log := p.logger.With(slog.String("account_id", id), slog.String("source", sourceSignup))
	unlock, err := p.lock(ctx, accountKey(id))
	if err != nil {
		return SignupResult{}, err
	}
	defer unlock()

	var prev *Account
	err = p.read(ctx, func(ctx context.Context, tx Tx) error {
		var err error
		prev, err = getAccount(ctx, tx, id)
		return err
	})
	if err != nil {
		return SignupResult{}, fmt.Errorf("marketplace: complete sign-up of account %s: reading local account: %w", id, err)
	}
	if prev != nil && prev.VendorUserID != "" && prev.VendorUserID != params.VendorUserID {
		// The other customer's id goes to the log, not into the error an
		// application may show the user.
		log.LogAttrs(ctx, slog.LevelWarn, "marketplace: sign-up refused: account already linked to another vendor user",
			slog.String("vendor_user_id", params.VendorUserID), slog.String("linked_vendor_user_id", prev.VendorUserID))
		return SignupResult{}, fmt.Errorf("marketplace: complete sign-up of account %s for vendor user %q: %w",
			id, params.VendorUserID, ErrAccountLinked)
	}

	approved, err := p.client.ApproveAccountSignup(ctx, id)
	if err != nil {
		return SignupResult{}, fmt.Errorf("marketplace: complete sign-up of account %s: %w", id, err)
	}
	acct := approved.Account
	res := SignupResult{Account: acct}

	linked := mergeAccount(prev, &acct, p.cfg.now())
	linked.VendorUserID, linked.UserIdentity = params.VendorUserID, params.UserIdentity
	if prev != nil && prev.UserIdentity != "" {
		linked.UserIdentity = prev.UserIdentity
	}
	if prev == nil {
		if err := p.accountActive(ctx, &acct, &linked, nil, log); err != nil {
			return res, err
		}
	}
	var parked []Entitlement
	cctx, cancel := p.commitContext(ctx)
	defer cancel()
	err = p.store.InTx(cctx, func(ctx context.Context, tx Tx) error {
		if err := tx.PutAccount(ctx, linked); err != nil {
			return err
		}
		var err error
		parked, err = tx.ListEntitlements(ctx, EntitlementQuery{AccountID: id, ParkedOnly: true})
		return err
	})
	if err != nil {
		return res, fmt.Errorf("marketplace: complete sign-up of account %s: linking it: %w", id, err)
	}
	log.LogAttrs(ctx, slog.LevelInfo, "marketplace: account signed up", slog.String("vendor_user_id", params.VendorUserID))

	// Entitlements waiting for this sign-up: parked here, or requested at
	// Google and not yet notified.
	ids := make([]string, 0, len(parked))
	for _, e := range parked {
		ids = append(ids, e.ID)
	}
	var errs []error
	for e, err := range p.client.ListEntitlements(ctx, &procurement.ListEntitlementsParams{
		Filter: procurement.And(procurement.FilterAccount(id), procurement.FilterState(procurement.EntitlementActivationRequested)),
	}) {
		if err != nil {
			errs = append(errs, fmt.Errorf("marketplace: complete sign-up of account %s: listing its entitlements: %w", id, err))
			break
		}
		ids = append(ids, e.ID)
	}
	slices.Sort(ids)
	for _, eid := range slices.Compact(ids) {
		r, err := p.settleEntitlement(ctx, eid, entTrigger{source: sourceSignup}, log)
		er := EntitlementResult{EntitlementID: eid, Action: r.action, Err: err}
		if r.final != nil {
			er.State = r.final.State
		}
		if err != nil {
			errs = append(errs, err)
		}
		res.Entitlements = append(res.Entitlements, er)
	}
	return res, errors.Join(errs...)
}
