package marketplace

import (
	"context"
	"fmt"
	"log/slog"
)

// Reads of the stored state for an operator's view (package ops), each in
// one read-only transaction where the store has them (Viewer).

// Accounts lists the accounts this integration knows, sorted by id.
func (p *Processor) Accounts(ctx context.Context) ([]Account, error) {
	var out []Account
	err := p.read(ctx, func(ctx context.Context, tx Tx) error {
		var err error
		out, err = tx.ListAccounts(ctx)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("marketplace: list accounts: %w", err)
	}
	return out, nil
}

// Account returns the stored account id, or an error matching ErrNotFound.
func (p *Processor) Account(ctx context.Context, id string) (Account, error) {
	if id == "" {
		return Account{}, fmt.Errorf("marketplace: get account: empty id: %w", ErrInvalid)
	}
	var out Account
	err := p.read(ctx, func(ctx context.Context, tx Tx) error {
		var err error
		out, err = tx.GetAccount(ctx, id)
		return err
	})
	if err != nil {
		return Account{}, fmt.Errorf("marketplace: get account %s: %w", id, err)
	}
	return out, nil
}

// Entitlements lists the stored entitlements q selects, sorted by id.
func (p *Processor) Entitlements(ctx context.Context, q EntitlementQuery) ([]Entitlement, error) {
	var out []Entitlement
	err := p.read(ctx, func(ctx context.Context, tx Tx) error {
		var err error
		out, err = tx.ListEntitlements(ctx, q)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("marketplace: list entitlements: %w", err)
	}
	return out, nil
}

// Entitlement returns the stored entitlement id, or an error matching
// ErrNotFound.
func (p *Processor) Entitlement(ctx context.Context, id string) (Entitlement, error) {
	if id == "" {
		return Entitlement{}, fmt.Errorf("marketplace: get entitlement: empty id: %w", ErrInvalid)
	}
	var out Entitlement
	err := p.read(ctx, func(ctx context.Context, tx Tx) error {
		var err error
		out, err = tx.GetEntitlement(ctx, id)
		return err
	})
	if err != nil {
		return Entitlement{}, fmt.Errorf("marketplace: get entitlement %s: %w", id, err)
	}
	return out, nil
}

// Dismiss removes a poison message without running it (EventID or
// MessageID, as Redrive), or returns an error matching ErrNotFound. Its
// eventId stays recorded as processed: a redelivery is skipped as a
// duplicate. The message's ids and reason are logged, so that what was
// thrown away can still be traced.
func (p *Processor) Dismiss(ctx context.Context, id string) error {
	if id == "" {
		return fmt.Errorf("marketplace: dismiss: empty id: %w", ErrInvalid)
	}
	pm, err := p.findPoison(ctx, "dismiss", id)
	if err != nil {
		return err
	}
	err = p.store.InTx(ctx, func(ctx context.Context, tx Tx) error {
		return tx.DeletePoison(ctx, pm.MessageID)
	})
	if err != nil {
		return fmt.Errorf("marketplace: dismiss %s: %w", id, err)
	}
	p.logger.LogAttrs(ctx, slog.LevelWarn, "marketplace: poison message dismissed without being processed",
		slog.String("message_id", pm.MessageID), slog.String("event_id", pm.EventID),
		slog.String("reason", pm.Reason), slog.String("source", sourceOperator))
	return nil
}
