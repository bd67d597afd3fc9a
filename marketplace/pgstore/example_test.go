package pgstore_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/pgstore"
)

// Open connects, migrates the schema if needed and returns a store that
// owns its pool. Every replica of the backend opens the same database.
func ExampleOpen() {
	ctx := context.Background()
	// The pool holds DefaultMaxConns connections at most, enough for the
	// processor's default concurrency; with a higher marketplace.Config.Concurrency, set
	// pool_max_conns to twice it plus 2 (marketplace.New refuses less).
	store, err := pgstore.Open(ctx, "postgres://app@db.internal:5432/app",
		pgstore.WithSchema("gcpmarketplace"))
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()

	err = store.InTx(ctx, func(ctx context.Context, tx marketplace.Tx) error {
		// Serialise with every replica working on this entitlement.
		if err := tx.Lock(ctx, "ent-1"); err != nil {
			return err
		}
		first, err := tx.MarkProcessed(ctx, "event-42", time.Now())
		if err != nil || !first {
			return err // a duplicate: its effects are already committed
		}
		_, err = tx.AdvanceEntitlement(ctx, marketplace.Entitlement{ID: "ent-1", State: "ENTITLEMENT_ACTIVE", UpdateTime: time.Now()})
		return err
	})
	if err != nil {
		log.Fatal(err)
	}
}

// New uses a pool the application already has; Close leaves it open.
func ExampleNew() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, "postgres://app@db.internal:5432/app")
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	store, err := pgstore.New(ctx, pool)
	if errors.Is(err, pgstore.ErrSchemaTooNew) {
		log.Fatal("a newer release migrated the database: upgrade this one")
	}
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
}

// IsRetryable tells a failure of the database (lost connection, deadlock)
// from a failure of the request; InTx never re-runs fn by itself.
func ExampleIsRetryable() {
	process := func(attempt int) error {
		// What InTx returns when PostgreSQL aborts a deadlocked transaction.
		if attempt == 1 {
			return fmt.Errorf("pgstore: lock %q: %w", "ent-1", pgstore.ErrConflict)
		}
		return nil
	}
	for attempt := 1; ; attempt++ {
		err := process(attempt)
		if pgstore.IsRetryable(err) && attempt < 3 {
			fmt.Println("attempt", attempt, "retryable:", errors.Is(err, pgstore.ErrConflict))
			continue
		}
		fmt.Println("attempt", attempt, "error:", err)
		break
	}
	// Output:
	// attempt 1 retryable: true
	// attempt 2 error: <nil>
}
