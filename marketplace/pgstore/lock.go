package pgstore

import (
	"context"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
)

// Advisory lock namespaces. Tx.Lock and LockKey use different ones: the
// processor holds LockKey(k) on one connection while its transaction, on
// another, calls Tx.Lock(k); with one namespace the transaction would wait
// for its own caller.
const (
	nsTx      = "tx"
	nsKey     = "key"
	nsMigrate = "migrate"
)

// lockID is the advisory lock number for key: FNV-1a (64-bit) over a
// package tag, the schema and the namespace, so that stores on different
// schemas of one database, and other users of advisory locks, do not
// contend. Two keys that collide are merely serialised together.
func (s *Store) lockID(namespace, key string) int64 {
	h := fnv.New64a()
	for _, part := range []string{"gcpmarketplace/pgstore", s.schema, namespace, key} {
		_, _ = h.Write([]byte(part))
		_, _ = h.Write([]byte{0})
	}
	return int64(h.Sum64())
}

// unlockTimeout bounds pg_advisory_unlock, which runs after the caller's
// context may have ended.
const unlockTimeout = 10 * time.Second

// LockKey implements the processor's optional marketplace.KeyLocker
// capability: it blocks until this process holds the lock for key among
// every Store on the same schema, in any process, and returns the function
// that releases it. The processor holds it for one message, from before its
// dedupe check until after the commit, so that duplicate deliveries on two
// replicas never run callbacks at the same time.
//
// The lock is a session-level pg_advisory_lock on a connection taken from
// the pool and kept until the lock is released; it is separate from
// Tx.Lock's, so a transaction may Tx.Lock the same key meanwhile. It is
// released when unlock is called or when ctx is done, whichever comes
// first, and the connection goes back to the pool; if PostgreSQL cannot
// confirm the release, the connection is closed, which releases it too.
// unlock may be called more than once. Waiting for the lock ends with ctx.
//
// Close waits for held key locks to be released.
func (s *Store) LockKey(ctx context.Context, key string) (unlock func(), err error) {
	if key == "" {
		return nil, fmt.Errorf("pgstore: lock key: empty key: %w", marketplace.ErrInvalid)
	}
	if err := s.enter(); err != nil {
		return nil, fmt.Errorf("pgstore: lock key %q: %w", key, err)
	}
	id := s.lockID(nsKey, key)
	conn, err := s.acquireLocked(ctx, id)
	if err != nil {
		s.running.Done()
		return nil, fmt.Errorf("pgstore: lock key %q: %w", key, err)
	}

	var once sync.Once
	release := func() {
		once.Do(func() {
			defer s.running.Done()
			ctx, cancel := context.WithTimeout(context.Background(), unlockTimeout)
			defer cancel()
			var released bool
			err := conn.QueryRow(ctx, "SELECT pg_advisory_unlock($1)", id).Scan(&released)
			if err != nil || !released {
				s.log.Warn("closing the connection of a key lock that could not be released",
					slog.String("key", key), slog.Any("error", err))
				discard(conn)
				return
			}
			conn.Release()
		})
	}
	stop := context.AfterFunc(ctx, release)
	return func() {
		stop()
		release()
	}, nil
}

// acquireLocked takes a connection from the pool and the session lock id on
// it. Like begin, it moves on from connections the server has dropped.
func (s *Store) acquireLocked(ctx context.Context, id int64) (*pgxpool.Conn, error) {
	attempts := s.maxConns + 1
	for i := 1; ; i++ {
		conn, err := s.pool.Acquire(ctx)
		if err != nil {
			return nil, interpretError(err)
		}
		_, err = conn.Exec(ctx, "SELECT pg_advisory_lock($1)", id)
		if err == nil {
			return conn, nil
		}
		// The wait may have been interrupted just after the server granted
		// the lock; ending the session is the sure way not to keep it.
		discard(conn)
		if !retryOnFreshConn(ctx, err) || i >= attempts {
			return nil, interpretError(err)
		}
	}
}

// discard closes a pooled connection instead of returning it to the pool.
// Closing the session releases its advisory locks.
func discard(conn *pgxpool.Conn) {
	c := conn.Hijack()
	ctx, cancel := context.WithTimeout(context.Background(), unlockTimeout)
	defer cancel()
	_ = c.Close(ctx)
}
