package storetest_test

import (
	"testing"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/memstore"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/storetest"
)

// A store proves itself by running the contract from a test function in
// its own package. Durable stores also give Reopen.
func ExampleRun() {
	testContract := func(t *testing.T) {
		storetest.Run(t, storetest.Harness{
			New: func(*testing.T) marketplace.Store { return memstore.New() },
		})
	}
	_ = testContract // func TestContract(t *testing.T) in mystore_test.go
}
