package memstore_test

import (
	"testing"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/memstore"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/storetest"
)

var _ marketplace.Store = (*memstore.Store)(nil)

func TestContract(t *testing.T) {
	t.Parallel()
	storetest.Run(t, storetest.Harness{
		New:              func(*testing.T) marketplace.Store { return memstore.New() },
		ViewWaitsForInTx: true, // one lock for the store: View waits for a running InTx
	})
}
