package memstore_test

import (
	"testing"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/memstore"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/storetest"
)

func TestOrdersContract(t *testing.T) {
	t.Parallel()
	storetest.RunOrders(t, storetest.Harness{
		New: func(*testing.T) marketplace.Store { return memstore.New() },
	})
}
