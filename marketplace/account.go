package marketplace

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/gcpmarketplace/gcpmarketplace/events"
	"github.com/gcpmarketplace/gcpmarketplace/procurement"
)

func getAccount(ctx context.Context, tx Tx, id string) (*Account, error) {
	if id == "" {
		return nil, nil
	}
	a, err := tx.GetAccount(ctx, id)
	switch {
	case errors.Is(err, ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, err
	}
	return &a, nil
}

func (p *Processor) readAccountLink(ctx context.Context, accountID string) (*Account, error) {
	var a *Account
	err := p.read(ctx, func(ctx context.Context, tx Tx) error {
		var err error
		a, err = getAccount(ctx, tx, accountID)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("marketplace: reading local account %s: %w", accountID, err)
	}
	return a, nil
}

type accTrigger struct {
	source string
	ev     events.Event
	listed *procurement.Account // reconcile: the account as just listed
}

type accResult struct {
	outcome outcome
	added   bool
	updated bool
	purged  bool
	deleted []string // entitlements removed with a purged account
}

// settleAccount is the pipeline for one account. An account that no
// longer exists at Google is purged: its entitlements are settled (turn-off
// callbacks), the handler's OnAccountDeleted runs, and its local state is
// removed, exactly once.
func (p *Processor) settleAccount(ctx context.Context, id string, tr accTrigger, log *slog.Logger) (accResult, error) {
	log = log.With(slog.String("account_id", id))
	unlock, err := p.lock(ctx, accountKey(id))
	if err != nil {
		return accResult{}, err
	}
	defer unlock()

	var (
		dup  bool
		prev *Account
		ents []Entitlement
	)
	err = p.read(ctx, func(ctx context.Context, tx Tx) error {
		if tr.ev != nil && tr.source != sourceRedrive {
			done, err := tx.IsProcessed(ctx, tr.ev.ID())
			if err != nil || done {
				dup = done
				return err
			}
		}
		var err error
		if prev, err = getAccount(ctx, tx, id); err != nil {
			return err
		}
		ents, err = tx.ListEntitlements(ctx, EntitlementQuery{AccountID: id})
		return err
	})
	if err != nil {
		return accResult{}, fmt.Errorf("marketplace: reading local state of account %s: %w", id, err)
	}
	if dup {
		return accResult{outcome: outcomeDuplicate}, nil
	}

	cur, err := p.rereadAccount(ctx, id, prev, tr)
	if err != nil {
		return accResult{}, err
	}
	if cur == nil {
		return p.purgeAccount(ctx, id, prev, ents, tr, log)
	}
	if _, ok := tr.ev.(*events.AccountDeleted); ok {
		// Deleting customer data on a notification the API contradicts
		// would be irreversible: wait for the API to agree.
		return accResult{}, fmt.Errorf("marketplace: ACCOUNT_DELETED for account %s, but the Procurement API still has it; will retry", id)
	}

	newer := prev == nil || cur.UpdateTime.After(prev.UpdateTime) || prev.SignupApproved != cur.SignupApproved()
	if !newer {
		p.releaseParked(ctx, cur, ents, tr, log)
		return accResult{outcome: outcomeStale}, nil
	}
	if accountTransition(prev != nil, len(ents) > 0, true) == events.TypeAccountActive {
		if err := p.accountActive(ctx, cur, nil, tr.ev, log); err != nil {
			return accResult{}, err
		}
	}
	now := p.cfg.now()
	cctx, cancel := p.commitContext(ctx)
	defer cancel()
	err = p.store.InTx(cctx, func(ctx context.Context, tx Tx) error {
		if tr.ev != nil {
			if _, err := tx.MarkProcessed(ctx, tr.ev.ID(), now); err != nil {
				return err
			}
		}
		return tx.PutAccount(ctx, mergeAccount(prev, cur, now))
	})
	if err != nil {
		return accResult{}, fmt.Errorf("marketplace: committing account %s: %w", id, err)
	}
	p.releaseParked(ctx, cur, ents, tr, log)
	return accResult{outcome: outcomeProcessed, added: prev == nil, updated: prev != nil}, nil
}

// rereadAccount returns the account as it is now at Google (nil: it no
// longer exists). A listed snapshot (Reconcile) older than what is stored,
// or that would take back a sign-up stored as approved, may predate a
// message settled since its page was fetched: the account is read again.
func (p *Processor) rereadAccount(ctx context.Context, id string, prev *Account, tr accTrigger) (*procurement.Account, error) {
	cur := tr.listed
	if cur != nil && (prev == nil || (!olderThanStored(cur.UpdateTime, prev.UpdateTime) && (!prev.SignupApproved || cur.SignupApproved()))) {
		return cur, nil
	}
	a, err := p.client.GetAccount(ctx, id, &procurement.GetAccountParams{View: procurement.AccountViewBasic})
	switch {
	case errors.Is(err, procurement.ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("marketplace: re-reading account %s: %w", id, err)
	}
	return &a, nil
}

// releaseParked settles the parked entitlements of an account found
// approved at Google (sign-up completed by another replica, or outside this
// SDK). Failures are logged: Reconcile or the next sign-up retries them.
func (p *Processor) releaseParked(ctx context.Context, cur *procurement.Account, ents []Entitlement, tr accTrigger, log *slog.Logger) {
	if !cur.SignupApproved() {
		return
	}
	for _, e := range ents {
		if !e.Parked {
			continue
		}
		if _, err := p.settleEntitlement(ctx, e.ID, entTrigger{source: tr.source}, log); err != nil {
			log.LogAttrs(ctx, slog.LevelWarn, "marketplace: cannot settle parked entitlement; Reconcile or the next sign-up will",
				slog.String("entitlement_id", e.ID), slog.String("error", err.Error()))
		}
	}
}

// accountActive fires OnAccountActive, the callback for an account seen
// for the first time, whichever way it was seen.
func (p *Processor) accountActive(ctx context.Context, cur *procurement.Account, link *Account, trigger events.Event, log *slog.Logger) error {
	c := &Change{Type: events.TypeAccountActive, Account: cur, Linked: link, Trigger: trigger}
	if err := p.dispatch(ctx, c, log); err != nil {
		return fmt.Errorf("marketplace: %s callback for account %s: %w", events.TypeAccountActive, cur.ID, err)
	}
	return nil
}

func mergeAccount(prev *Account, cur *procurement.Account, now time.Time) Account {
	a := Account{ID: cur.ID, SignupApproved: cur.SignupApproved(), UpdateTime: cur.UpdateTime, CreatedAt: now}
	if prev != nil {
		a.VendorUserID, a.UserIdentity, a.CreatedAt = prev.VendorUserID, prev.UserIdentity, prev.CreatedAt
		if prev.UpdateTime.After(a.UpdateTime) {
			a.UpdateTime = prev.UpdateTime
		}
	}
	return a
}

func (p *Processor) purgeAccount(ctx context.Context, id string, prev *Account, ents []Entitlement, tr accTrigger, log *slog.Logger) (accResult, error) {
	if accountTransition(prev != nil, len(ents) > 0, false) != events.TypeAccountDeleted {
		// Never linked here, or purged already: nothing of the customer's
		// is known to this integration. Said and counted, never silent.
		log.LogAttrs(ctx, slog.LevelInfo, "marketplace: account not found at the Procurement API nor locally; acknowledged without effect")
		return accResult{outcome: outcomeNotFound}, nil
	}
	// The entitlements first, so that the app turns the service off before
	// it deletes the customer's data.
	var deleted []string
	for _, e := range ents {
		r, err := p.settleEntitlement(ctx, e.ID, entTrigger{source: sourceAccountDeleted, origin: tr.source}, log)
		if err != nil {
			return accResult{}, err
		}
		if r.deleted {
			deleted = append(deleted, e.ID)
		}
	}
	// The customer to purge: the stored account, or, when only entitlements
	// of it were stored, its id.
	link := prev
	if link == nil {
		link = &Account{ID: id}
	}
	c := &Change{Type: events.TypeAccountDeleted, Linked: link, Trigger: tr.ev}
	if err := p.dispatch(ctx, c, log); err != nil {
		return accResult{}, fmt.Errorf("marketplace: %s callback for account %s: %w", events.TypeAccountDeleted, id, err)
	}
	cctx, cancel := p.commitContext(ctx)
	defer cancel()
	err := p.store.InTx(cctx, func(ctx context.Context, tx Tx) error {
		if tr.ev != nil {
			if _, err := tx.MarkProcessed(ctx, tr.ev.ID(), p.cfg.now()); err != nil {
				return err
			}
		}
		left, err := tx.ListEntitlements(ctx, EntitlementQuery{AccountID: id})
		if err != nil {
			return err
		}
		for _, e := range left {
			for _, k := range [...]ApprovalKind{ApprovalEntitlement, ApprovalPlanChange} {
				if err := tx.DeleteApproval(ctx, e.ID, k); err != nil {
					return err
				}
			}
			if err := tx.DeleteEntitlement(ctx, e.ID); err != nil {
				return err
			}
		}
		return tx.DeleteAccount(ctx, id)
	})
	if err != nil {
		return accResult{}, fmt.Errorf("marketplace: removing local state of account %s: %w", id, err)
	}
	log.LogAttrs(ctx, slog.LevelInfo, "marketplace: account deleted at Google; customer data purged", slog.String("source", tr.source))
	return accResult{outcome: outcomeProcessed, purged: true, deleted: deleted}, nil
}
