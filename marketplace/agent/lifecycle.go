package agent

import (
	"context"
	"errors"
	"fmt"

	"github.com/gcpmarketplace/gcpmarketplace/events"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
)

// Handler wraps the app's marketplace.Handler: when an order's entitlement
// is cancelled or deleted its client is deleted at the identity provider
// (once, with the processor's guarantees), and an account's deletion
// purges its orders; then next runs.
//
// An entitlement pending cancellation keeps its client until it is
// cancelled: the customer paid for the term. Suspension has no callback
// (Google documents it as not yet supported). A rejected entitlement never
// registered a client (registration needs a usable entitlement); its
// deletion is handled like any other.
//
// A failure to delete a client that is not a refusal (ErrRefused, or an
// error events.Permanent wraps) is returned, so the processor retries the
// callback; a refusal is logged and the order is revoked all the same. An
// order is revoked once: a retried callback skips orders already revoked.
func (r *Registry) Handler(next marketplace.Handler) marketplace.Handler {
	if next == nil {
		next = marketplace.HandlerDefaults{}
	}
	return &lifecycle{Handler: next, r: r}
}

// lifecycle overrides the three callbacks that end orders, and makes
// every entitlement callback drop what Middleware cached of the
// entitlement's orders; OnAccountActive and OnUnknown are next's,
// promoted.
type lifecycle struct {
	marketplace.Handler
	r *Registry
}

// changed drops the cached callers of the change's entitlement, so that
// this process serves its next request from the new state.
func (l *lifecycle) changed(c *marketplace.Change) {
	if c.Entitlement != nil {
		l.r.forgetEntitlement(c.Entitlement.ID)
	}
}

func (l *lifecycle) OnEntitlementCreationRequested(ctx context.Context, c *marketplace.Change) error {
	l.changed(c)
	return l.Handler.OnEntitlementCreationRequested(ctx, c)
}

func (l *lifecycle) OnEntitlementActive(ctx context.Context, c *marketplace.Change) error {
	l.changed(c)
	return l.Handler.OnEntitlementActive(ctx, c)
}

func (l *lifecycle) OnEntitlementPlanChangeRequested(ctx context.Context, c *marketplace.Change) error {
	l.changed(c)
	return l.Handler.OnEntitlementPlanChangeRequested(ctx, c)
}

func (l *lifecycle) OnEntitlementPlanChanged(ctx context.Context, c *marketplace.Change) error {
	l.changed(c)
	return l.Handler.OnEntitlementPlanChanged(ctx, c)
}

func (l *lifecycle) OnEntitlementPlanChangeCancelled(ctx context.Context, c *marketplace.Change) error {
	l.changed(c)
	return l.Handler.OnEntitlementPlanChangeCancelled(ctx, c)
}

func (l *lifecycle) OnEntitlementPendingCancellation(ctx context.Context, c *marketplace.Change) error {
	l.changed(c)
	return l.Handler.OnEntitlementPendingCancellation(ctx, c)
}

func (l *lifecycle) OnEntitlementCancellationReverted(ctx context.Context, c *marketplace.Change) error {
	l.changed(c)
	return l.Handler.OnEntitlementCancellationReverted(ctx, c)
}

func (l *lifecycle) OnEntitlementCancelling(ctx context.Context, c *marketplace.Change) error {
	l.changed(c)
	return l.Handler.OnEntitlementCancelling(ctx, c)
}

func (l *lifecycle) OnEntitlementOfferAccepted(ctx context.Context, c *marketplace.Change) error {
	l.changed(c)
	return l.Handler.OnEntitlementOfferAccepted(ctx, c)
}

func (l *lifecycle) OnEntitlementRenewed(ctx context.Context, c *marketplace.Change) error {
	l.changed(c)
	return l.Handler.OnEntitlementRenewed(ctx, c)
}

func (l *lifecycle) OnEntitlementOfferEnded(ctx context.Context, c *marketplace.Change) error {
	l.changed(c)
	return l.Handler.OnEntitlementOfferEnded(ctx, c)
}

func (l *lifecycle) OnEntitlementCancelled(ctx context.Context, c *marketplace.Change) error {
	l.changed(c)
	if err := l.r.revokeEntitlement(ctx, c); err != nil {
		return err
	}
	return l.Handler.OnEntitlementCancelled(ctx, c)
}

func (l *lifecycle) OnEntitlementDeleted(ctx context.Context, c *marketplace.Change) error {
	l.changed(c)
	if err := l.r.revokeEntitlement(ctx, c); err != nil {
		return err
	}
	return l.Handler.OnEntitlementDeleted(ctx, c)
}

func (l *lifecycle) OnAccountDeleted(ctx context.Context, c *marketplace.Change) error {
	if c.Linked != nil && c.Linked.ID != "" {
		if err := l.r.purgeAccount(ctx, c.Linked.ID); err != nil {
			return err
		}
	}
	return l.Handler.OnAccountDeleted(ctx, c)
}

// revokeEntitlement revokes the orders the entitlement bills.
func (r *Registry) revokeEntitlement(ctx context.Context, c *marketplace.Change) error {
	if c.Entitlement == nil {
		return nil
	}
	e := c.Entitlement
	orders, err := r.cfg.Store.ListOrders(ctx, OrderQuery{EntitlementID: e.ID})
	if err != nil {
		return fmt.Errorf("agent: orders of entitlement %q: %w", e.ID, err)
	}
	if e.OrderID != "" && e.OrderID != e.ID {
		// Registered under another entitlement id? Never by this package,
		// but the order id is what Google links.
		rec, err := r.cfg.Store.GetOrder(ctx, e.OrderID)
		switch {
		case err == nil && rec.EntitlementID != e.ID:
			orders = append(orders, rec)
		case err != nil && !isNotFound(err):
			return fmt.Errorf("agent: order %q: %w", e.OrderID, err)
		}
	}
	for _, o := range orders {
		if o.Revoked() {
			continue
		}
		if err := r.deleteClient(ctx, o.Order); err != nil {
			return err
		}
		if err := r.cfg.Store.RevokeOrder(ctx, o.ID, r.now().UTC()); err != nil {
			return fmt.Errorf("agent: revoke order %q: %w", o.ID, err)
		}
		r.forgetOrder(o.ID)
		r.met.revoked(ctx, "entitlement_ended", 1)
		r.log.Info("agent: order revoked", "order", o.ID, "entitlement", e.ID, "client", o.ClientID, "change", c.Type)
	}
	return nil
}

// purgeAccount deletes the clients of the account's orders still valid,
// then the orders.
func (r *Registry) purgeAccount(ctx context.Context, accountID string) error {
	orders, err := r.cfg.Store.ListOrders(ctx, OrderQuery{AccountID: accountID})
	if err != nil {
		return fmt.Errorf("agent: orders of account %q: %w", accountID, err)
	}
	for _, o := range orders {
		if o.Revoked() {
			continue
		}
		if err := r.deleteClient(ctx, o.Order); err != nil {
			return err
		}
	}
	n, err := r.cfg.Store.DeleteOrders(ctx, accountID)
	if err != nil {
		return fmt.Errorf("agent: purge orders of account %q: %w", accountID, err)
	}
	for _, o := range orders {
		r.forgetOrder(o.ID)
	}
	r.met.revoked(ctx, "account_deleted", n)
	if n > 0 {
		r.log.Info("agent: orders purged", "account", accountID, "orders", n)
	}
	return nil
}

// deleteClient deletes an order's client; a refusal is logged and
// dropped, anything else returned for a retry.
func (r *Registry) deleteClient(ctx context.Context, o Order) error {
	err := r.cfg.IdP.DeleteClient(ctx, o.ClientID)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrRefused) || events.IsPermanent(err):
		r.log.Warn("agent: identity provider refused to delete the client; dropped",
			"order", o.ID, "client", o.ClientID, "error", err)
		return nil
	default:
		return fmt.Errorf("agent: delete client %q of order %q: %w", o.ClientID, o.ID, err)
	}
}
