package memstore

import (
	"context"
	"fmt"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
)

var _ marketplace.OriginRecorder = (*Store)(nil)

// RecordOrigin implements marketplace.OriginRecorder.
func (s *Store) RecordOrigin(ctx context.Context, o marketplace.Origin) (marketplace.Origin, error) {
	if o.ProviderID == "" || o.Endpoint == "" {
		return marketplace.Origin{}, fmt.Errorf("memstore: record origin: empty provider id or endpoint: %w", marketplace.ErrInvalid)
	}
	if err := ctx.Err(); err != nil {
		return marketplace.Origin{}, fmt.Errorf("memstore: record origin: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return marketplace.Origin{}, fmt.Errorf("memstore: record origin: %w", marketplace.ErrClosed)
	}
	if s.origin == (marketplace.Origin{}) {
		s.origin = o
	}
	return s.origin, nil
}
