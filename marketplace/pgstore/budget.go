package pgstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrConnectionBudget means the store's pool may open more connections
// than the PostgreSQL server has left: max_connections, less the slots
// reserved for superusers (and, from PostgreSQL 16, reserved_connections),
// less the connections other clients hold. Such a pool works until the load
// makes it grow, then fails with "too many clients". The error is a
// *ConnectionBudgetError; see "Pool sizing" in the package documentation.
var ErrConnectionBudget = errors.New("pgstore: pool larger than the connections the server has left")

// ConnectionBudgetError is the error New and Open return when the pool
// does not fit in the server's connections. It matches
// ErrConnectionBudget.
type ConnectionBudgetError struct {
	Pool           int // the pool's maximum size (pool_max_conns)
	MaxConnections int // the server's max_connections
	Reserved       int // superuser_reserved_connections + reserved_connections
	InUse          int // client connections open, other than this pool's
}

// Available is what the pool may use: MaxConnections - Reserved - InUse.
func (e *ConnectionBudgetError) Available() int { return e.MaxConnections - e.Reserved - e.InUse }

func (e *ConnectionBudgetError) Error() string {
	return fmt.Sprintf("pgstore: the pool may open %d connections but the server has %d left "+
		"(max_connections %d, %d reserved, %d in use by other clients): lower pool_max_conns "+
		"(and the processor's Config.Concurrency to at most (pool_max_conns-2)/2), or raise max_connections; "+
		"the pools of every replica and other client must fit in max_connections together",
		e.Pool, max(e.Available(), 0), e.MaxConnections, e.Reserved, e.InUse)
}

// Is reports whether target is ErrConnectionBudget.
func (e *ConnectionBudgetError) Is(target error) bool { return target == ErrConnectionBudget }

// budgetQuery reads the server's connection limits and the client
// connections open. reserved_connections exists from PostgreSQL 16
// (current_setting with missing_ok gives NULL before). Counting
// pg_stat_activity needs no privilege: every role sees every backend's
// type.
const budgetQuery = `SELECT current_setting('max_connections')::int,
	current_setting('superuser_reserved_connections')::int
		+ COALESCE(NULLIF(current_setting('reserved_connections', true), ''), '0')::int,
	(SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')::int`

// checkBudget refuses a pool that cannot fit in the connections the server
// has left now. Other replicas' pools open connections as load needs them,
// so this sees what they hold at start-up, not what they may grow to: the
// sizing rule in the package documentation is the operator's to keep.
func checkBudget(ctx context.Context, pool *pgxpool.Pool) error {
	var e ConnectionBudgetError
	if err := pool.QueryRow(ctx, budgetQuery).Scan(&e.MaxConnections, &e.Reserved, &e.InUse); err != nil {
		return fmt.Errorf("pgstore: reading max_connections: %w", interpretError(err))
	}
	// The pool's own connections (at least the one just used) are not
	// others'.
	e.InUse = max(e.InUse-int(pool.Stat().TotalConns()), 0)
	e.Pool = int(pool.Config().MaxConns)
	if e.Pool > e.Available() {
		return &e
	}
	return nil
}
