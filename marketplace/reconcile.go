package marketplace

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/gcpmarketplace/gcpmarketplace/events"
)

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
// Run calls it at start. It is safe to run alongside the message
// transports too: work on each account and entitlement is serialised with
// theirs. A resource that cannot be settled does not stop the others: its
// Result carries its error, and the returned error joins them.
func (p *Processor) Reconcile(ctx context.Context) (ReconcileReport, error) {
	if err := p.checkOrigin(ctx); err != nil {
		return ReconcileReport{}, fmt.Errorf("marketplace: reconcile: %w", err)
	}
	log := p.logger.With(slog.String("source", sourceReconcile))
	var (
		rep  ReconcileReport
		errs []error
	)
	add := func(r Result) {
		if r.Err != nil {
			errs = append(errs, r.Err)
		}
		if r.Err != nil || len(r.Outcomes) > 0 {
			rep.Results = append(rep.Results, r)
		}
	}
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
		res := accountResult(a.ID, err)
		switch {
		case err != nil:
		case r.added:
			res.Outcomes = []Outcome{OutcomeAdded}
		case r.updated:
			res.Outcomes = []Outcome{OutcomeUpdated}
		}
		add(res)
	}
	for _, a := range localAccounts {
		if seen[a.ID] {
			continue
		}
		// Confirmed by a GET before anything is deleted.
		r, err := p.settleAccount(ctx, a.ID, accTrigger{source: sourceReconcile}, log)
		res := accountResult(a.ID, err)
		if err == nil && r.purged {
			res.Outcomes = []Outcome{OutcomeDeleted}
		}
		add(res)
		for _, id := range r.deleted {
			add(entitlementResult(id, entResult{deleted: true}, nil))
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
		add(entitlementResult(e.ID, r, err))
	}
	for _, e := range localEnts {
		if seen[e.ID] {
			continue
		}
		r, err := p.settleEntitlement(ctx, e.ID, entTrigger{source: sourceReconcile}, log)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		add(entitlementResult(e.ID, r, err))
	}
	counts := map[Outcome]int{}
	for _, r := range rep.Results {
		for _, o := range r.Outcomes {
			counts[o]++
		}
	}
	attrs := []slog.Attr{slog.Int("results", len(rep.Results)), slog.Int("errors", len(errs))}
	for _, o := range [...]Outcome{OutcomeAdded, OutcomeUpdated, OutcomeDeleted, OutcomeApproved, OutcomeRejected, OutcomeQueued, OutcomeParked} {
		attrs = append(attrs, slog.Int(string(o), counts[o]))
	}
	log.LogAttrs(ctx, slog.LevelInfo, "marketplace: reconciled", attrs...)
	return rep, errors.Join(errs...)
}

// accountResult is the Result of settling an account, without outcomes.
func accountResult(id string, err error) Result {
	return Result{Resource: events.Resource{Kind: events.ResourceAccount, ID: id}, Err: err}
}
