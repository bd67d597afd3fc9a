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
		return ReconcileReport{}, fmt.Errorf("marketplace: reconcile: reading local state: %w", err)
	}
	rc := &reconciler{p: p, log: p.logger.With(slog.String("source", sourceReconcile))}
	if err := rc.accounts(ctx, localAccounts); err != nil {
		return rc.rep, err
	}
	if err := rc.entitlements(ctx, localEnts); err != nil {
		rc.errs = append(rc.errs, err)
		return rc.rep, errors.Join(rc.errs...)
	}
	rc.logSummary(ctx)
	return rc.rep, errors.Join(rc.errs...)
}

// reconciler is one Reconcile's report in the making.
type reconciler struct {
	p    *Processor
	log  *slog.Logger
	rep  ReconcileReport
	errs []error
}

// add reports r if it changed something or failed.
func (rc *reconciler) add(r Result) {
	if r.Err != nil {
		rc.errs = append(rc.errs, r.Err)
	}
	if r.Err != nil || len(r.Outcomes) > 0 {
		rc.rep.Results = append(rc.rep.Results, r)
	}
}

// accounts settles every account the API lists, then the local ones it
// does not (purged if a GET confirms they are gone). It returns an error
// only if the listing fails.
func (rc *reconciler) accounts(ctx context.Context, local []Account) error {
	seen := map[string]bool{}
	for a, err := range rc.p.client.ListAccounts(ctx, nil) {
		if err != nil {
			return fmt.Errorf("marketplace: reconcile: listing accounts: %w", err)
		}
		seen[a.ID] = true
		r, err := rc.p.settleAccount(ctx, a.ID, accTrigger{source: sourceReconcile, listed: &a}, rc.log)
		res := accountResult(a.ID, err)
		switch {
		case err != nil:
		case r.added:
			res.Outcomes = []Outcome{OutcomeAdded}
		case r.updated:
			res.Outcomes = []Outcome{OutcomeUpdated}
		}
		rc.add(res)
	}
	for _, a := range local {
		if seen[a.ID] {
			continue
		}
		// Confirmed by a GET before anything is deleted.
		r, err := rc.p.settleAccount(ctx, a.ID, accTrigger{source: sourceReconcile}, rc.log)
		res := accountResult(a.ID, err)
		if err == nil && r.purged {
			res.Outcomes = []Outcome{OutcomeDeleted}
		}
		rc.add(res)
		for _, id := range r.deleted {
			rc.add(entitlementResult(id, entResult{deleted: true}, nil))
		}
	}
	return nil
}

// entitlements is accounts for entitlements.
func (rc *reconciler) entitlements(ctx context.Context, local []Entitlement) error {
	seen := map[string]bool{}
	for e, err := range rc.p.client.ListEntitlements(ctx, nil) {
		if err != nil {
			return fmt.Errorf("marketplace: reconcile: listing entitlements: %w", err)
		}
		seen[e.ID] = true
		r, err := rc.p.settleEntitlement(ctx, e.ID, entTrigger{source: sourceReconcile, listed: &e}, rc.log)
		rc.add(entitlementResult(e.ID, r, err))
	}
	for _, e := range local {
		if seen[e.ID] {
			continue
		}
		r, err := rc.p.settleEntitlement(ctx, e.ID, entTrigger{source: sourceReconcile}, rc.log)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		rc.add(entitlementResult(e.ID, r, err))
	}
	return nil
}

func (rc *reconciler) logSummary(ctx context.Context) {
	counts := map[Outcome]int{}
	for _, r := range rc.rep.Results {
		for _, o := range r.Outcomes {
			counts[o]++
		}
	}
	attrs := []slog.Attr{slog.Int("results", len(rc.rep.Results)), slog.Int("errors", len(rc.errs))}
	for _, o := range [...]Outcome{OutcomeAdded, OutcomeUpdated, OutcomeDeleted, OutcomeApproved, OutcomeRejected, OutcomeQueued, OutcomeParked} {
		attrs = append(attrs, slog.Int(string(o), counts[o]))
	}
	rc.log.LogAttrs(ctx, slog.LevelInfo, "marketplace: reconciled", attrs...)
}

// accountResult is the Result of settling an account, without outcomes.
func accountResult(id string, err error) Result {
	return Result{Resource: events.Resource{Kind: events.ResourceAccount, ID: id}, Err: err}
}
