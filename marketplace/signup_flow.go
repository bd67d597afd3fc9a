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
	// for sign-up and what became of each (Result.Outcomes: approved,
	// rejected, queued or parked again; Result.Err: why one could not be
	// settled).
	Entitlements []Result
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
// It returns an error only when the sign-up itself failed (steps 1 and
// 2): the account is then not linked. An entitlement that cannot be
// settled does not stop the others and is not an error of the sign-up: its
// Result.Err says why, and Reconcile, a redelivered message or a later call
// settles it. It is idempotent: calling it again (after an error, or a
// double submission of the form) finishes what is left.
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

	res.Entitlements = p.settleWaiting(ctx, id, parked, log)
	return res, nil
}

// settleWaiting settles the entitlements of a signed-up account that wait
// for it: parked here, or requested at Google and not yet notified.
func (p *Processor) settleWaiting(ctx context.Context, id string, parked []Entitlement, log *slog.Logger) []Result {
	ids := make([]string, 0, len(parked))
	for _, e := range parked {
		ids = append(ids, e.ID)
	}
	for e, err := range p.client.ListEntitlements(ctx, &procurement.ListEntitlementsParams{
		Filter: procurement.And(procurement.FilterAccount(id), procurement.FilterState(procurement.EntitlementActivationRequested)),
	}) {
		if err != nil {
			// Their messages, or Reconcile, will settle those not listed.
			log.LogAttrs(ctx, slog.LevelWarn, "marketplace: sign-up completed, but the entitlements requested at Google could not be listed; "+
				"their messages or Reconcile settle them", slog.String("error", err.Error()))
			break
		}
		ids = append(ids, e.ID)
	}
	slices.Sort(ids)
	var out []Result
	for _, eid := range slices.Compact(ids) {
		r, err := p.settleEntitlement(ctx, eid, entTrigger{source: sourceSignup}, log)
		if err != nil {
			log.LogAttrs(ctx, slog.LevelWarn, "marketplace: entitlement not settled at sign-up; Reconcile or its next message will",
				slog.String("entitlement_id", eid), slog.String("error", err.Error()))
		}
		out = append(out, entitlementResult(eid, entResult{action: r.action, final: r.final}, err))
	}
	return out
}
