package sqlitestore_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/sqlitestore"
)

// Applying a notification: the processed mark, the updateTime guard and the
// entitlement commit together, so a redelivered message changes nothing.
func Example() {
	dir, err := os.MkdirTemp("", "sqlitestore-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	ctx := context.Background()
	store, err := sqlitestore.Open(ctx, filepath.Join(dir, "marketplace.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()

	apply := func(eventID string, e marketplace.Entitlement) {
		err := store.InTx(ctx, func(ctx context.Context, tx marketplace.Tx) error {
			if err := tx.Lock(ctx, e.ID); err != nil {
				return err
			}
			first, err := tx.MarkProcessed(ctx, eventID, time.Now())
			if err != nil || !first {
				fmt.Printf("%s: duplicate, skipped\n", eventID)
				return err
			}
			applied, err := tx.AdvanceEntitlement(ctx, e)
			fmt.Printf("%s: plan %s applied=%v\n", eventID, e.Plan, applied)
			return err
		})
		if err != nil {
			log.Fatal(err)
		}
	}
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	apply("ev-1", marketplace.Entitlement{ID: "ent-1", Plan: "basic", UpdateTime: t0})
	apply("ev-2", marketplace.Entitlement{ID: "ent-1", Plan: "premium", UpdateTime: t0.Add(time.Minute)})
	apply("ev-1", marketplace.Entitlement{ID: "ent-1", Plan: "basic", UpdateTime: t0})                   // redelivered
	apply("ev-0", marketplace.Entitlement{ID: "ent-1", Plan: "trial", UpdateTime: t0.Add(-time.Minute)}) // late

	_ = store.InTx(ctx, func(ctx context.Context, tx marketplace.Tx) error {
		e, err := tx.GetEntitlement(ctx, "ent-1")
		fmt.Println("stored plan:", e.Plan)
		return err
	})
	// Output:
	// ev-1: plan basic applied=true
	// ev-2: plan premium applied=true
	// ev-1: duplicate, skipped
	// ev-0: plan trial applied=false
	// stored plan: premium
}

// Durability is explicit: FULL (the default) survives power loss; NORMAL
// survives a process crash only, in exchange for throughput.
func ExampleWithSynchronous() {
	dir, err := os.MkdirTemp("", "sqlitestore-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	store, err := sqlitestore.Open(context.Background(), filepath.Join(dir, "cache.db"),
		sqlitestore.WithSynchronous(sqlitestore.SyncNormal),
		sqlitestore.WithMaxBatch(128),
	)
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	fmt.Println("opened with synchronous", sqlitestore.SyncNormal)
	// Output: opened with synchronous NORMAL
}
