package sqlitestore_test

import (
	"testing"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace/storetest"
)

func TestOrdersContract(t *testing.T) {
	t.Parallel()
	storetest.RunOrders(t, harness())
}
