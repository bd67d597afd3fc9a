package sqlitestore

import (
	"context"
	"fmt"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
)

var _ marketplace.OriginRecorder = (*Store)(nil)

const (
	sqlRecordOrigin = "INSERT INTO marketplace_origin (id, provider_id, endpoint) VALUES (1, ?, ?) ON CONFLICT (id) DO NOTHING"
	sqlGetOrigin    = "SELECT provider_id, endpoint FROM marketplace_origin WHERE id = 1"
)

// RecordOrigin implements marketplace.OriginRecorder. The insert and the
// read back are one transaction, which holds SQLite's write lock: of two
// processes starting together, the second finds the first's row.
func (s *Store) RecordOrigin(ctx context.Context, o marketplace.Origin) (marketplace.Origin, error) {
	if o.ProviderID == "" || o.Endpoint == "" {
		return marketplace.Origin{}, fmt.Errorf("sqlitestore: record origin: empty provider id or endpoint: %w", marketplace.ErrInvalid)
	}
	var got marketplace.Origin
	err := s.ledgerTx(ctx, "record origin", func(t *tx) error {
		if _, err := t.ledgerExec(sqlRecordOrigin, o.ProviderID, o.Endpoint); err != nil {
			return fmt.Errorf("sqlitestore: record origin: %w", interpretError(err))
		}
		rows, err := t.ledgerQuery(sqlGetOrigin)
		if err != nil {
			return fmt.Errorf("sqlitestore: record origin: %w", interpretError(err))
		}
		origins, err := collect(rows, func(row scanner) (marketplace.Origin, error) {
			var r marketplace.Origin
			return r, row.Scan(&r.ProviderID, &r.Endpoint)
		})
		if err != nil {
			return fmt.Errorf("sqlitestore: record origin: reading it back: %w", interpretError(err))
		}
		if len(origins) != 1 { // the insert above makes one
			return fmt.Errorf("sqlitestore: record origin: read back %d rows", len(origins))
		}
		got = origins[0]
		return nil
	})
	return got, err
}
