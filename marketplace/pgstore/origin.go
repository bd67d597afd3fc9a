package pgstore

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
)

var _ marketplace.OriginRecorder = (*Store)(nil)

// RecordOrigin implements marketplace.OriginRecorder. Under READ COMMITTED,
// a replica whose insert meets another's uncommitted row waits for it, then
// does nothing, and its read back (a new snapshot) sees the row committed.
func (s *Store) RecordOrigin(ctx context.Context, o marketplace.Origin) (marketplace.Origin, error) {
	if o.ProviderID == "" || o.Endpoint == "" {
		return marketplace.Origin{}, fmt.Errorf("pgstore: record origin: empty provider id or endpoint: %w", marketplace.ErrInvalid)
	}
	if err := checkText(o.ProviderID, o.Endpoint); err != nil {
		return marketplace.Origin{}, fmt.Errorf("pgstore: record origin: %w", err)
	}
	table := s.q.schema + ".marketplace_origin"
	var got marketplace.Origin
	err := s.ledgerTx(ctx, "record origin", func(ctx context.Context, tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "INSERT INTO "+table+" (id, provider_id, endpoint) VALUES (1, $1, $2) ON CONFLICT (id) DO NOTHING",
			o.ProviderID, o.Endpoint); err != nil {
			return fmt.Errorf("pgstore: record origin: %w", interpretError(err))
		}
		if err := tx.QueryRow(ctx, "SELECT provider_id, endpoint FROM "+table+" WHERE id = 1").Scan(&got.ProviderID, &got.Endpoint); err != nil {
			return fmt.Errorf("pgstore: record origin: reading it back: %w", interpretError(err))
		}
		return nil
	})
	return got, err
}
