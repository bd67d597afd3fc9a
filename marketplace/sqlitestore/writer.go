package sqlitestore

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
)

// A request is one InTx call travelling through the writer.
//
// The connection is owned by whoever holds the turn: the writer between
// turns, the caller from receiving its turn until it sends its outcome. The
// channel operations order every use of the connection.
type request struct {
	ctx     context.Context
	turn    chan turn    // writer → caller, unbuffered: the caller may have left
	outcome chan outcome // caller → writer, once, when its fn is over
	result  chan error   // writer → caller, once, after the commit (only if kept)
}

type turn struct {
	tx  *tx
	err error // the batch could not begin
}

type outcome struct {
	kept  bool  // fn succeeded and its savepoint was released into the batch
	fatal error // a savepoint operation failed: the batch transaction is unusable
}

// InTx implements marketplace.Store. fn runs in the caller's goroutine, inside
// a SAVEPOINT of a transaction that may be shared with other callers (see
// group commit in the package documentation). It returns after the COMMIT
// that makes its work durable, or with the error that prevented it.
func (s *Store) InTx(ctx context.Context, fn func(ctx context.Context, tx marketplace.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case <-s.closing:
		return fmt.Errorf("sqlitestore: begin transaction: %w", marketplace.ErrClosed)
	default:
	}
	r := &request{
		ctx:     ctx,
		turn:    make(chan turn),
		outcome: make(chan outcome, 1),
		result:  make(chan error, 1),
	}
	select {
	case s.requests <- r:
	case <-s.closing:
		return fmt.Errorf("sqlitestore: begin transaction: %w", marketplace.ErrClosed)
	case <-ctx.Done():
		return ctx.Err()
	}
	var tn turn
	select {
	case tn = <-r.turn:
	case <-ctx.Done():
		// The writer sees ctx done too and skips this request.
		return ctx.Err()
	}
	if tn.err != nil {
		return tn.err
	}
	kept, err := runTurn(ctx, r, tn.tx, fn)
	if !kept {
		return err
	}
	return <-r.result
}

// runTurn runs fn inside its own savepoint and reports the outcome to the
// writer. The deferred report also runs when fn panics or calls
// runtime.Goexit: the savepoint is rolled back and the writer moves on while
// the panic continues in the caller's goroutine.
func runTurn(ctx context.Context, r *request, t *tx, fn func(context.Context, marketplace.Tx) error) (kept bool, err error) {
	if err := t.exec("SAVEPOINT intx"); err != nil {
		t.end()
		r.outcome <- outcome{fatal: err}
		return false, fmt.Errorf("sqlitestore: begin transaction: %w", err)
	}
	defer func() {
		t.end()
		var fatal error
		if !kept {
			fatal = t.exec("ROLLBACK TO intx")
			if fatal == nil {
				fatal = t.exec("RELEASE intx")
			}
		}
		r.outcome <- outcome{kept: kept, fatal: fatal}
	}()
	if err := fn(ctx, t); err != nil {
		return false, err
	}
	if err := t.exec("RELEASE intx"); err != nil {
		return false, fmt.Errorf("sqlitestore: end transaction: %w", err)
	}
	return true, nil
}

// writer is the store's only writer. It owns the connection between turns.
func (s *Store) writer() {
	defer close(s.writerDone)
	var batch []*request
	prev := 0 // size of the previous batch
	for {
		if len(batch) == 0 {
			select {
			case r := <-s.requests:
				batch = append(batch, r)
			case <-s.closing:
				return
			}
		}
		// The callers released by the previous commit are on their way
		// back; when the batch is smaller than the last one, yield a few
		// times so that they can join it instead of waiting a whole
		// commit for the next. This costs microseconds, never a sleep,
		// and nothing when load is light (prev is then 1).
		for yields := 0; ; yields++ {
			s.drain(&batch)
			if len(batch) >= min(prev, s.maxBatch) || yields == maxYields {
				break
			}
			runtime.Gosched()
		}
		prev = len(batch)
		batch = s.runBatch(batch)
	}
}

// maxYields bounds how often the writer yields to let a batch fill.
const maxYields = 4

// drain appends the requests already waiting, up to the batch limit.
func (s *Store) drain(batch *[]*request) {
	for len(*batch) < s.maxBatch {
		select {
		case r := <-s.requests:
			*batch = append(*batch, r)
		default:
			return
		}
	}
}

// runBatch runs the batch's transactions in one SQLite transaction and
// commits them together. If the transaction breaks part-way, the requests
// whose turn had not come are returned, to run in the next batch.
func (s *Store) runBatch(batch []*request) (carry []*request) {
	bg := context.Background()
	if _, err := s.conn.ExecContext(bg, "BEGIN IMMEDIATE"); err != nil {
		err = fmt.Errorf("sqlitestore: begin transaction: %w", interpretError(err))
		s.log.Error("cannot begin transaction", slog.Any("error", err), slog.Int("batch", len(batch)))
		for _, r := range batch {
			select {
			case r.turn <- turn{err: err}:
			case <-r.ctx.Done():
			}
		}
		return nil
	}

	kept := make([]*request, 0, len(batch))
	var broken error
	for i, r := range batch {
		t := &tx{s: s}
		select {
		case r.turn <- turn{tx: t}:
		case <-r.ctx.Done():
			continue // the caller left before its turn and returned ctx.Err()
		}
		o := <-r.outcome
		if o.fatal != nil {
			broken = o.fatal
			carry = batch[i+1:]
			break
		}
		if o.kept {
			kept = append(kept, r)
		}
	}

	var err error
	if broken != nil {
		// A failed savepoint operation means SQLite may have rolled back
		// the whole transaction, taking earlier callers' work with it.
		err = fmt.Errorf("sqlitestore: transaction aborted by a failure in the same commit group: %w", broken)
	} else if _, cerr := s.conn.ExecContext(bg, "COMMIT"); cerr != nil {
		err = fmt.Errorf("sqlitestore: commit: %w", interpretError(cerr))
	}
	if err != nil {
		// Harmless if SQLite already rolled back.
		_, _ = s.conn.ExecContext(bg, "ROLLBACK")
		s.log.Error("transaction group failed", slog.Any("error", err), slog.Int("failed", len(kept)), slog.Int("retried", len(carry)))
	}
	if s.testHookBatch != nil {
		s.testHookBatch(len(kept), err)
	}
	for _, r := range kept {
		r.result <- err
	}
	return carry
}
