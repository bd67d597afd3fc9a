package pgstore_test

import (
	"testing"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace/storetest"
)

func TestOrdersContract(t *testing.T) {
	storetest.RunOrders(t, harness(t))
}
