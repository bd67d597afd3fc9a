package usage

import (
	"context"
	"fmt"

	"github.com/gcpmarketplace/gcpmarketplace/usage/ledger"
)

// ConsumerQuery selects consumers for Consumers.
type ConsumerQuery = ledger.ConsumerQuery

// ConsumerState is a registered consumer with its frontier and block.
type ConsumerState = ledger.ConsumerState

// Consumers lists the registered consumers q selects, sorted by
// entitlement id: with ConsumerQuery{BlockedOnly: true}, those that must
// not be served, with the check code and since when.
func (r *Reporter) Consumers(ctx context.Context, q ConsumerQuery) ([]ConsumerState, error) {
	out, err := r.ledger.ListConsumers(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("usage: list consumers: %w", err)
	}
	return out, nil
}
