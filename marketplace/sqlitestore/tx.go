package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
)

// tx is the marketplace.Tx of one turn of the writer or, with view set, of
// a read-only transaction (View). Its mutex makes a Tx that escaped its fn
// fail cleanly (ErrTxDone) instead of running statements in another
// caller's transaction.
type tx struct {
	s    *Store
	view *reader // set, before use, for a read-only transaction
	mu   sync.Mutex
	done bool
}

var _ marketplace.Tx = (*tx)(nil)

func (t *tx) end() {
	t.mu.Lock()
	t.done = true
	t.mu.Unlock()
}

// reads returns where the read methods run their statements.
func (t *tx) reads() querier {
	if t.view != nil {
		return t.view
	}
	return t.s.stmts
}

// exec runs a control statement (SAVEPOINT and friends) for the turn.
func (t *tx) exec(query string) error {
	_, err := t.s.conn.ExecContext(stmtCtx, query)
	return err
}

// enter starts a Tx method: on success t.mu is held and the caller must
// unlock it.
func (t *tx) enter(ctx context.Context, op string, ids ...string) error {
	t.mu.Lock()
	err := func() error {
		if t.done {
			return marketplace.ErrTxDone
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		for _, id := range ids {
			if id == "" {
				return fmt.Errorf("empty id: %w", marketplace.ErrInvalid)
			}
		}
		return nil
	}()
	if err != nil {
		t.mu.Unlock()
		return fmt.Errorf("sqlitestore: %s: %w", op, err)
	}
	return nil
}

// enterWrite is enter for the methods that write, which a read-only
// transaction refuses.
func (t *tx) enterWrite(ctx context.Context, op string, ids ...string) error {
	if t.view != nil {
		return fmt.Errorf("sqlitestore: %s: %w", op, marketplace.ErrReadOnly)
	}
	return t.enter(ctx, op, ids...)
}

func (t *tx) Lock(ctx context.Context, key string) error {
	if err := t.enter(ctx, "lock", key); err != nil {
		return err
	}
	defer t.mu.Unlock()
	// Nothing to do: a writer's transaction already holds SQLite's write
	// lock, which excludes every other transaction on the file, and a
	// read-only one takes no locks.
	return nil
}

func (t *tx) MarkProcessed(ctx context.Context, eventID string, at time.Time) (bool, error) {
	if err := t.enterWrite(ctx, "mark processed", eventID); err != nil {
		return false, err
	}
	defer t.mu.Unlock()
	ts, err := encodeTime(at)
	if err != nil {
		return false, fmt.Errorf("sqlitestore: mark processed %q: %w", eventID, err)
	}
	res, err := t.s.stmts.markProcessed.ExecContext(stmtCtx, eventID, ts)
	if err != nil {
		return false, fmt.Errorf("sqlitestore: mark processed %q: %w", eventID, interpretError(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("sqlitestore: mark processed %q: %w", eventID, err)
	}
	return n == 1, nil
}

func (t *tx) IsProcessed(ctx context.Context, eventID string) (bool, error) {
	if err := t.enter(ctx, "is processed", eventID); err != nil {
		return false, err
	}
	defer t.mu.Unlock()
	var one int
	err := t.reads().queryRow(queryIsProcessed, eventID).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("sqlitestore: is processed %q: %w", eventID, interpretError(err))
	}
	return true, nil
}

func (t *tx) PruneProcessed(ctx context.Context, before time.Time) (int, error) {
	if err := t.enterWrite(ctx, "prune processed"); err != nil {
		return 0, err
	}
	defer t.mu.Unlock()
	ts, err := encodeTime(before)
	if err != nil {
		return 0, fmt.Errorf("sqlitestore: prune processed: %w", err)
	}
	res, err := t.s.stmts.pruneProcessed.ExecContext(stmtCtx, ts)
	if err != nil {
		return 0, fmt.Errorf("sqlitestore: prune processed before %v: %w", before, interpretError(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("sqlitestore: prune processed: %w", err)
	}
	return int(n), nil
}

type scanner interface{ Scan(dest ...any) error }

func queryAll[T any](q querier, query string, scan func(scanner) (T, error)) ([]T, error) {
	rows, err := q.query(query)
	if err != nil {
		return nil, err
	}
	return collect(rows, scan)
}

func collect[T any](rows *sql.Rows, scan func(scanner) (T, error)) ([]T, error) {
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
