package marketplace

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/gcpmarketplace/gcpmarketplace/events"
	"github.com/gcpmarketplace/gcpmarketplace/procurement"
)

// The operator's API: what an admin page or a health check reads and does,
// without opening a Store transaction.

// Poison lists up to limit poison messages (set aside because they could
// not be decoded or failed permanently; see HandleMessage), newest first;
// limit <= 0 lists them all. Redrive runs one again.
func (p *Processor) Poison(ctx context.Context, limit int) ([]Poison, error) {
	var out []Poison
	err := p.read(ctx, func(ctx context.Context, tx Tx) error {
		var err error
		out, err = tx.ListPoison(ctx, limit)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("marketplace: list poison messages: %w", err)
	}
	return out, nil
}

// Parked lists the entitlements parked until their account completes
// sign-up (CompleteSignup approves them then), sorted by id.
func (p *Processor) Parked(ctx context.Context) ([]Entitlement, error) {
	var out []Entitlement
	err := p.read(ctx, func(ctx context.Context, tx Tx) error {
		var err error
		out, err = tx.ListEntitlements(ctx, EntitlementQuery{ParkedOnly: true})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("marketplace: list parked entitlements: %w", err)
	}
	return out, nil
}

// Redrive runs a poison message through the pipeline again, from its
// stored payload, once the cause is fixed (a callback bug, a missing
// tenant): the resource it names is re-read and settled and the callbacks
// of the changes found run, as for a new delivery, though its eventId was
// recorded as processed when it was set aside. id is the poison message's
// EventID, or its MessageID (the only id of a message that could not be
// decoded). On success the message leaves the poison list. It returns an
// error matching ErrNotFound if no poison message has that id; when the
// message fails again, it stays in the list and the error says why.
func (p *Processor) Redrive(ctx context.Context, id string) error {
	if id == "" {
		return fmt.Errorf("marketplace: redrive: empty id: %w", ErrInvalid)
	}
	if !p.life.enter() {
		return fmt.Errorf("marketplace: redrive %s: processor closed: %w", id, ErrClosed)
	}
	defer p.life.leave()
	if err := p.checkOrigin(ctx); err != nil {
		return fmt.Errorf("marketplace: redrive %s: %w", id, err)
	}
	pm, err := p.findPoison(ctx, "redrive", id)
	if err != nil {
		return err
	}
	ev, err := events.Decode(pm.Data)
	if err != nil {
		return fmt.Errorf("marketplace: redrive %s: still undecodable: %w", id, err)
	}
	if err := p.acquireSlot(ctx); err != nil {
		return fmt.Errorf("marketplace: redrive %s: %w", id, err)
	}
	defer func() { <-p.slots }()
	log := p.logger.With(slog.String("message_id", pm.MessageID), slog.String("event_id", ev.ID()),
		slog.String("event_type", string(ev.Type())), slog.String("source", sourceRedrive))
	if _, err := p.process(ctx, ev, sourceRedrive, log); err != nil {
		return fmt.Errorf("marketplace: redrive %s: %w", id, err)
	}
	cctx, cancel := p.commitContext(ctx)
	defer cancel()
	err = p.store.InTx(cctx, func(ctx context.Context, tx Tx) error {
		if _, err := tx.MarkProcessed(ctx, ev.ID(), p.cfg.now()); err != nil {
			return err // an undecodable message had no eventId recorded
		}
		return tx.DeletePoison(ctx, pm.MessageID)
	})
	if err != nil {
		return fmt.Errorf("marketplace: redrive %s: processed, but not removed from the poison list: %w", id, err)
	}
	log.LogAttrs(ctx, slog.LevelInfo, "marketplace: poison message redriven and removed from the poison list")
	return nil
}

// findPoison returns the newest poison message with EventID or MessageID
// id, for op (its errors' prefix).
func (p *Processor) findPoison(ctx context.Context, op, id string) (Poison, error) {
	all, err := p.Poison(ctx, 0)
	if err != nil {
		return Poison{}, fmt.Errorf("marketplace: %s %s: %w", op, id, err)
	}
	for _, pm := range all {
		if pm.EventID == id || pm.MessageID == id {
			return pm, nil
		}
	}
	return Poison{}, fmt.Errorf("marketplace: %s %s: no such poison message: %w", op, id, ErrNotFound)
}

// Ping checks that the processor can work: that the Store answers (and
// holds this Marketplace's state: see OriginRecorder) and that the
// Procurement API answers for the provider. It reads nothing a customer
// owns beyond one account id. Use it for a readiness check.
func (p *Processor) Ping(ctx context.Context) error {
	var errs []error
	err := p.read(ctx, func(ctx context.Context, tx Tx) error {
		_, err := tx.IsProcessed(ctx, "ping")
		return err
	})
	if err == nil {
		err = p.checkOrigin(ctx)
	}
	if err != nil {
		errs = append(errs, fmt.Errorf("marketplace: ping: store: %w", err))
	}
	if _, err := p.client.ListAccountsPage(ctx, &procurement.ListAccountsParams{PageSize: 1}); err != nil {
		errs = append(errs, fmt.Errorf("marketplace: ping: Procurement API: %w", err))
	}
	return errors.Join(errs...)
}
