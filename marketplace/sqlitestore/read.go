package sqlitestore

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
)

// readerConns is the number of read-only connections behind View. Reads are
// short; a few connections keep readers from waiting for one another
// without holding many file descriptors and page caches.
const readerConns = 4

var _ marketplace.Viewer = (*Store)(nil)

// readers is the store's pool of read-only connections (View). In WAL mode
// each one reads the last commit made before its transaction's first read,
// and neither waits for the writer nor holds it up.
type readers struct {
	db   *sql.DB
	path string
	// idle holds the connections not in use; a nil entry is a free slot
	// whose connection was dropped after a failure and is opened again
	// when next needed.
	idle chan *reader

	mu     sync.Mutex
	closed bool
	active sync.WaitGroup // running Views, which close waits for
}

// reader is one connection with the read statements prepared on it, used
// by one View at a time.
type reader struct {
	conn                   *sql.Conn
	stmts                  map[string]*sql.Stmt // readQueries
	begin, commit, rollbck *sql.Stmt
}

// openReaders opens the pool over the file the writer has opened and
// migrated. Preparing the statements on every connection checks that each
// sees the schema.
func openReaders(ctx context.Context, path string) (*readers, error) {
	escaped := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
	// query_only: a reader connection never writes, whatever runs on it.
	db, err := sql.Open("sqlite", fmt.Sprintf("file:%s?_pragma=busy_timeout(%d)&_pragma=query_only(1)", escaped, busyTimeoutMillis))
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(readerConns)
	db.SetMaxIdleConns(readerConns)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	rs := &readers{db: db, path: path, idle: make(chan *reader, readerConns)}
	for range readerConns {
		r, err := rs.open(ctx)
		if err != nil {
			_ = rs.close()
			return nil, err
		}
		rs.idle <- r
	}
	return rs, nil
}

func (rs *readers) open(ctx context.Context) (*reader, error) {
	conn, err := rs.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("reader connection: %w", err)
	}
	r := &reader{conn: conn, stmts: make(map[string]*sql.Stmt, len(readQueries))}
	prep := func(q string) *sql.Stmt {
		if err != nil {
			return nil
		}
		var st *sql.Stmt
		if st, err = conn.PrepareContext(ctx, q); err != nil {
			err = fmt.Errorf("prepare %q on a reader connection: %w", q, err)
		}
		return st
	}
	r.begin, r.commit, r.rollbck = prep("BEGIN"), prep("COMMIT"), prep("ROLLBACK")
	for _, q := range readQueries {
		if st := prep(q); st != nil {
			r.stmts[q] = st
		}
	}
	if err != nil {
		r.close()
		return nil, err
	}
	return r, nil
}

func (r *reader) close() {
	for _, st := range []*sql.Stmt{r.begin, r.commit, r.rollbck} {
		if st != nil {
			_ = st.Close()
		}
	}
	for _, st := range r.stmts {
		_ = st.Close()
	}
	_ = r.conn.Close()
}

// acquire registers a View and waits for a connection, opening it if its
// slot is empty. The caller must release what it gets, and call
// rs.active.Done in every case where acquire returned no error.
func (rs *readers) acquire(ctx context.Context) (*reader, error) {
	rs.mu.Lock()
	if rs.closed {
		rs.mu.Unlock()
		return nil, fmt.Errorf("sqlitestore: begin read-only transaction: %w", marketplace.ErrClosed)
	}
	rs.active.Add(1)
	rs.mu.Unlock()
	var r *reader
	select {
	case r = <-rs.idle:
	case <-ctx.Done():
		rs.active.Done()
		return nil, ctx.Err()
	}
	if r == nil {
		var err error
		if r, err = rs.open(ctx); err != nil {
			rs.idle <- nil
			rs.active.Done()
			if cerr := ctx.Err(); cerr != nil {
				return nil, cerr
			}
			return nil, fmt.Errorf("sqlitestore: begin read-only transaction: %w", interpretError(err))
		}
	}
	return r, nil
}

// release returns r to the pool; a connection whose transaction could not
// be ended cleanly is dropped instead, so that no View inherits it.
func (rs *readers) release(r *reader, broken bool) {
	if broken {
		r.close()
		r = nil
	}
	rs.idle <- r
	rs.active.Done()
}

// close refuses new Views, waits for the running ones and closes the pool.
func (rs *readers) close() error {
	rs.mu.Lock()
	rs.closed = true
	rs.mu.Unlock()
	rs.active.Wait()
	for len(rs.idle) > 0 {
		if r := <-rs.idle; r != nil {
			r.close()
		}
	}
	return rs.db.Close()
}

// View implements marketplace.Viewer. fn runs in the caller's goroutine in
// a read-only SQLite transaction (a deferred BEGIN) on one of the store's
// read connections: it reads the database as of the last commit before
// its first read, beside the writer and other Views, waiting for neither.
// Every InTx that returned before View was called is visible.
//
// Up to 4 Views run at once; more wait for a connection (or ctx).
func (s *Store) View(ctx context.Context, fn func(ctx context.Context, tx marketplace.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r, err := s.readers.acquire(ctx)
	if err != nil {
		return err
	}
	// Statements run with stmtCtx, as in InTx; the Tx methods check ctx
	// before each one.
	if _, err := r.begin.ExecContext(stmtCtx); err != nil {
		s.readers.release(r, true)
		return fmt.Errorf("sqlitestore: begin read-only transaction: %w", interpretError(err))
	}
	t := &tx{s: s, view: r}
	ended := false
	defer func() {
		if !ended { // fn panicked or called runtime.Goexit; a panic continues after this
			t.end()
			_, rerr := r.rollbck.ExecContext(stmtCtx)
			s.readers.release(r, rerr != nil)
		}
	}()
	ferr := fn(ctx, t)
	ended = true
	t.end()
	end := r.commit
	if ferr != nil {
		end = r.rollbck
	}
	_, err = end.ExecContext(stmtCtx)
	s.readers.release(r, err != nil)
	switch {
	case ferr != nil:
		return ferr
	case err != nil:
		return fmt.Errorf("sqlitestore: end read-only transaction: %w", interpretError(err))
	}
	return nil
}

var _ querier = (*reader)(nil)

func (r *reader) queryRow(query string, args ...any) *sql.Row {
	if ps, ok := r.stmts[query]; ok {
		return ps.QueryRowContext(stmtCtx, args...)
	}
	return r.conn.QueryRowContext(stmtCtx, query, args...)
}

func (r *reader) query(query string, args ...any) (*sql.Rows, error) {
	if ps, ok := r.stmts[query]; ok {
		return ps.QueryContext(stmtCtx, args...)
	}
	return r.conn.QueryContext(stmtCtx, query, args...)
}
