package marketplace

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
)

// ReconcileReport says what Reconcile changed. Each list holds ids.
type ReconcileReport struct {
	AccountsAdded   []string // accounts stored for the first time
	AccountsUpdated []string // accounts whose stored state was out of date
	AccountsPurged  []string // accounts deleted at Google: OnAccountDeleted ran, local state removed

	EntitlementsAdded   []string // entitlements stored for the first time
	EntitlementsUpdated []string // entitlements whose stored state was out of date (or parking changed)
	EntitlementsDeleted []string // entitlements deleted at Google, removed locally

	Approved []string // entitlements or plan changes approved
	Rejected []string // entitlements or plan changes rejected by the policy
	Queued   []string // requests put in the approval queue
	Parked   []string // entitlements newly parked until their account signs up
}

// Changed reports whether Reconcile changed anything.
func (r ReconcileReport) Changed() bool {
	return len(r.AccountsAdded)+len(r.AccountsUpdated)+len(r.AccountsPurged)+
		len(r.EntitlementsAdded)+len(r.EntitlementsUpdated)+len(r.EntitlementsDeleted)+
		len(r.Approved)+len(r.Rejected)+len(r.Queued)+len(r.Parked) > 0
}

// Reconcile brings local state in line with the Procurement API, for
// notifications missed while the processor was down or never sent (Google
// sends account notifications only if they are turned on). It lists every
// account and entitlement of the provider and settles each as if a
// notification had arrived: local state follows the API, the callbacks of
// the changes found run, entitlements waiting for approval are approved,
// rejected, queued or parked by the policy (parked ones of accounts that
// have signed up meanwhile included), and accounts and entitlements that
// no longer exist are removed (accounts through OnAccountDeleted).
//
// A store that holds another Marketplace's state (see OriginRecorder) is
// refused with an error wrapping ErrForeignStore before anything is read
// from the API, changed or purged.
//
// It is safe to run at start-up and alongside the message transports: work
// on each account and entitlement is serialised with theirs. A resource that
// cannot be settled does not stop the others; the error joins their errors.
func (p *Processor) Reconcile(ctx context.Context) (ReconcileReport, error) {
	if err := p.checkOrigin(ctx); err != nil {
		return ReconcileReport{}, fmt.Errorf("marketplace: reconcile: %w", err)
	}
	log := p.logger.With(slog.String("source", sourceReconcile))
	var (
		rep  ReconcileReport
		errs []error
	)
	var localAccounts []Account
	var localEnts []Entitlement
	err := p.read(ctx, func(ctx context.Context, tx Tx) error {
		var err error
		if localAccounts, err = tx.ListAccounts(ctx); err != nil {
			return err
		}
		localEnts, err = tx.ListEntitlements(ctx, EntitlementQuery{})
		return err
	})
	if err != nil {
		return rep, fmt.Errorf("marketplace: reconcile: reading local state: %w", err)
	}

	// Accounts.
	seen := map[string]bool{}
	for a, err := range p.client.ListAccounts(ctx, nil) {
		if err != nil {
			return rep, fmt.Errorf("marketplace: reconcile: listing accounts: %w", err)
		}
		seen[a.ID] = true
		r, err := p.settleAccount(ctx, a.ID, accTrigger{source: sourceReconcile, listed: &a}, log)
		switch {
		case err != nil:
			errs = append(errs, err)
		case r.added:
			rep.AccountsAdded = append(rep.AccountsAdded, a.ID)
		case r.updated:
			rep.AccountsUpdated = append(rep.AccountsUpdated, a.ID)
		}
	}
	for _, a := range localAccounts {
		if seen[a.ID] {
			continue
		}
		// Confirmed by a GET before anything is deleted.
		r, err := p.settleAccount(ctx, a.ID, accTrigger{source: sourceReconcile}, log)
		switch {
		case err != nil:
			errs = append(errs, err)
		case r.purged:
			rep.AccountsPurged = append(rep.AccountsPurged, a.ID)
			rep.EntitlementsDeleted = append(rep.EntitlementsDeleted, r.deleted...)
		}
	}

	// Entitlements.
	seen = map[string]bool{}
	for e, err := range p.client.ListEntitlements(ctx, nil) {
		if err != nil {
			errs = append(errs, fmt.Errorf("marketplace: reconcile: listing entitlements: %w", err))
			return rep, errors.Join(errs...)
		}
		seen[e.ID] = true
		r, err := p.settleEntitlement(ctx, e.ID, entTrigger{source: sourceReconcile, listed: &e}, log)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		rep.addEntitlement(e.ID, r)
	}
	for _, e := range localEnts {
		if seen[e.ID] {
			continue
		}
		r, err := p.settleEntitlement(ctx, e.ID, entTrigger{source: sourceReconcile}, log)
		if err != nil {
			if !errors.Is(err, ErrNotFound) {
				errs = append(errs, err)
			}
			continue
		}
		rep.addEntitlement(e.ID, r)
	}
	log.LogAttrs(ctx, slog.LevelInfo, "marketplace: reconciled",
		slog.Int("accounts_added", len(rep.AccountsAdded)), slog.Int("accounts_updated", len(rep.AccountsUpdated)),
		slog.Int("accounts_purged", len(rep.AccountsPurged)), slog.Int("entitlements_added", len(rep.EntitlementsAdded)),
		slog.Int("entitlements_updated", len(rep.EntitlementsUpdated)), slog.Int("entitlements_deleted", len(rep.EntitlementsDeleted)),
		slog.Int("approved", len(rep.Approved)), slog.Int("rejected", len(rep.Rejected)),
		slog.Int("queued", len(rep.Queued)), slog.Int("parked", len(rep.Parked)), slog.Int("errors", len(errs)))
	return rep, errors.Join(errs...)
}

func (r *ReconcileReport) addEntitlement(id string, res entResult) {
	switch {
	case res.added:
		r.EntitlementsAdded = append(r.EntitlementsAdded, id)
	case res.deleted:
		r.EntitlementsDeleted = append(r.EntitlementsDeleted, id)
	case res.updated:
		r.EntitlementsUpdated = append(r.EntitlementsUpdated, id)
	}
	switch res.action {
	case RuleApproved:
		r.Approved = append(r.Approved, id)
	case RuleRejected:
		r.Rejected = append(r.Rejected, id)
	case RuleQueued:
		r.Queued = append(r.Queued, id)
	case RuleParked:
		r.Parked = append(r.Parked, id)
	}
}
