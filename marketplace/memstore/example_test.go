package memstore_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/memstore"
)

// A failed transaction leaves nothing behind.
func Example() {
	ctx := context.Background()
	store := memstore.New()
	defer store.Close()

	err := store.InTx(ctx, func(ctx context.Context, tx marketplace.Tx) error {
		if _, err := tx.MarkProcessed(ctx, "ev-1", time.Now()); err != nil {
			return err
		}
		if err := tx.PutAccount(ctx, marketplace.Account{ID: "acct-1", VendorUserID: "tenant-42"}); err != nil {
			return err
		}
		return fmt.Errorf("provisioning failed")
	})
	fmt.Println("first attempt:", err)

	err = store.InTx(ctx, func(ctx context.Context, tx marketplace.Tx) error {
		first, err := tx.MarkProcessed(ctx, "ev-1", time.Now())
		if err != nil {
			return err
		}
		_, getErr := tx.GetAccount(ctx, "acct-1")
		fmt.Println("redelivery is first:", first, "| account:", getErr)
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	// Output:
	// first attempt: provisioning failed
	// redelivery is first: true | account: memstore: get account "acct-1": marketplace: not found
}
