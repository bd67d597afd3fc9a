package marketplace

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
)

// Origin names the Marketplace whose state a Store holds: a provider at a
// Procurement endpoint. A store's accounts and entitlements mean something
// only there; elsewhere every one of them looks deleted, and Reconcile would
// purge them all (OnAccountDeleted for each customer).
type Origin struct {
	ProviderID string // the partner (provider) id
	// Endpoint is OriginGoogle for Google's Procurement API, reached at any
	// host under googleapis.com (regional, mTLS and Private Service
	// Connect endpoints included), and the endpoint's URL otherwise (an
	// emulator).
	Endpoint string
}

// OriginGoogle is Origin.Endpoint for Google's Procurement API.
const OriginGoogle = "google"

// String returns a description of o for messages.
func (o Origin) String() string {
	return fmt.Sprintf("provider %q at %s", o.ProviderID, o.Endpoint)
}

// OriginRecorder is implemented by stores that record which Marketplace they
// hold the state of (memstore, sqlitestore and pgstore do). The Processor
// records its own Origin the first time it uses the store, and from then on
// refuses the store, with an error wrapping ErrForeignStore, if it holds
// another Marketplace's state: before Run, Reconcile, HandleMessage,
// CompleteSignup, Approve or Reject can change or purge anything.
//
// It is optional, so that a Store written before it still works; the
// Processor then logs a warning at its first use, because it cannot tell a
// database of another Marketplace from its own.
type OriginRecorder interface {
	// RecordOrigin records o as the store's Origin if none is recorded
	// yet, and returns the recorded one: o the first time, the first
	// caller's afterwards. Of concurrent first calls (replicas starting
	// together), exactly one records its o, and every call returns it.
	// An empty field is refused with an error wrapping ErrInvalid.
	RecordOrigin(ctx context.Context, o Origin) (recorded Origin, err error)
}

// ErrForeignStore is wrapped by the error of a Processor given a Store that
// holds the state of another Marketplace (another provider, or another
// Procurement endpoint such as an emulator of an earlier run). Nothing was
// changed: point the Processor at the database of its own Marketplace, or
// at a new one.
var ErrForeignStore = errors.New("marketplace: the store holds the state of another Marketplace")

// originOf is the Origin a Processor with client serves.
func originOf(providerID, basePath string) Origin {
	return Origin{ProviderID: providerID, Endpoint: originEndpoint(basePath)}
}

// originEndpoint names a Procurement endpoint: OriginGoogle for any host
// under googleapis.com (so that moving to a regional or private endpoint of
// the same API is not taken for another Marketplace), its URL otherwise.
func originEndpoint(basePath string) string {
	if u, err := url.Parse(basePath); err == nil {
		if h := strings.ToLower(u.Hostname()); h == "googleapis.com" || strings.HasSuffix(h, ".googleapis.com") {
			return OriginGoogle
		}
	}
	return strings.TrimSuffix(basePath, "/")
}

// checkOrigin records the processor's Origin in the store on first use and
// refuses a store of another Marketplace. Success is remembered; a failure
// is checked again on the next call.
func (p *Processor) checkOrigin(ctx context.Context) error {
	if p.originChecked.Load() {
		return nil
	}
	rec, ok := p.store.(OriginRecorder)
	if !ok {
		if p.originChecked.CompareAndSwap(false, true) {
			p.logger.LogAttrs(ctx, slog.LevelWarn, "marketplace: the store does not record which Marketplace it belongs to "+
				"(OriginRecorder); a database of another provider or endpoint cannot be detected, and Reconcile would purge its customers",
				slog.String("provider_id", p.origin.ProviderID), slog.String("endpoint", p.origin.Endpoint))
		}
		return nil
	}
	got, err := rec.RecordOrigin(ctx, p.origin)
	if err != nil {
		return fmt.Errorf("marketplace: recording which Marketplace the store belongs to: %w", err)
	}
	if got != p.origin {
		err := fmt.Errorf("%w: it holds the state of %v, and this processor serves %v; nothing was changed "+
			"(use the database of this Marketplace, or a new one)", ErrForeignStore, got, p.origin)
		p.logger.LogAttrs(ctx, slog.LevelError, "marketplace: refusing a store of another Marketplace",
			slog.String("store_provider_id", got.ProviderID), slog.String("store_endpoint", got.Endpoint),
			slog.String("provider_id", p.origin.ProviderID), slog.String("endpoint", p.origin.Endpoint))
		return err
	}
	p.originChecked.Store(true)
	return nil
}
