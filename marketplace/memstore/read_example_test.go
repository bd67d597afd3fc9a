package memstore_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/memstore"
)

// Reads that need no write lock run in View, through the optional
// marketplace.Viewer capability; a write there is refused.
func ExampleStore_View() {
	ctx := context.Background()
	var store marketplace.Store = memstore.New()
	defer store.Close()
	if err := store.InTx(ctx, func(ctx context.Context, tx marketplace.Tx) error {
		return tx.PutAccount(ctx, marketplace.Account{ID: "acct-1", VendorUserID: "tenant-42"})
	}); err != nil {
		log.Fatal(err)
	}

	viewer, ok := store.(marketplace.Viewer)
	if !ok {
		log.Fatal("the store has no read-only transactions; use InTx")
	}
	err := viewer.View(ctx, func(ctx context.Context, tx marketplace.Tx) error {
		a, err := tx.GetAccount(ctx, "acct-1")
		if err != nil {
			return err
		}
		fmt.Println("linked to:", a.VendorUserID)
		err = tx.DeleteAccount(ctx, "acct-1")
		fmt.Println("delete refused:", errors.Is(err, marketplace.ErrReadOnly))
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	// Output:
	// linked to: tenant-42
	// delete refused: true
}
