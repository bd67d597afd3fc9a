package marketplace

import (
	"context"
	"errors"
	"time"

	"github.com/gcpmarketplace/gcpmarketplace/procurement"
)

// Store is the SDK's durable state: processed event ids, accounts,
// entitlements, the manual approval queue and poison messages. Every rule
// that must survive a restart (deduplication, the updateTime guard, parking,
// approvals) is written through a Store, inside one transaction together with
// the other effects of the same event.
//
// Implementations in this module: memstore (tests and demos), sqlitestore
// (the embedded default), pgstore (PostgreSQL, shared by several replicas).
// Third-party implementations should pass storetest.Run.
//
// A store holds the state of one Marketplace: one provider at one
// Procurement endpoint. Stores that implement OriginRecorder (all three do)
// record which, and the Processor refuses one that holds another's
// (ErrForeignStore) before Reconcile can purge customers it does not know.
// Viewer, KeyLocker and ConnPool are the other optional interfaces.
//
// A Store is safe for concurrent use by multiple goroutines.
type Store interface {
	// InTx runs fn in one transaction. It commits when fn returns nil and
	// rolls back when fn returns an error (which InTx then returns
	// unchanged) or panics (the panic continues in the caller's goroutine
	// after the rollback). If ctx is already done, InTx returns ctx.Err()
	// without calling fn. The ctx passed to fn is the caller's.
	//
	// Keep fn short and free of network calls: stores may run transactions
	// one at a time (memstore and sqlitestore do), so a slow fn delays all
	// others. The Tx is valid only until fn returns; using it later fails
	// with ErrTxDone. fn must not call InTx on the same Store: depending on the
	// implementation that deadlocks or runs outside the outer transaction.
	//
	// When InTx returns nil, the transaction is durable to the degree the
	// implementation documents. After Close, InTx returns ErrClosed.
	InTx(ctx context.Context, fn func(ctx context.Context, tx Tx) error) error

	// Close releases the store's resources. It waits for running
	// transactions to finish (so it must not be called from fn);
	// transactions not yet started fail with ErrClosed. Calling Close more
	// than once returns nil.
	Close() error
}

// Viewer is implemented by stores that can run read-only transactions
// without serialising behind writers (sqlitestore reads from WAL snapshots on
// separate connections). It is optional: the Store interface does not
// require it. The Processor uses it, when present, for the reads it does
// before calling the Procurement API, and InTx otherwise.
type Viewer interface {
	// View runs fn in a read-only transaction: a consistent snapshot of
	// committed data, which includes every transaction whose InTx had
	// returned before View was called and nothing of any transaction
	// that has not committed. The write methods of the Tx return an
	// error wrapping ErrReadOnly and change nothing; Lock only checks its
	// argument (read-only transactions take no locks: callers that need
	// serialisation use InTx or their own keyed locks).
	//
	// Otherwise View behaves like InTx: it returns fn's error unchanged,
	// a panic in fn ends the transaction and continues in the caller's
	// goroutine, a ctx already done returns ctx.Err() without calling fn,
	// the Tx is valid only until fn returns, and after Close View returns
	// ErrClosed. fn must not call InTx or View on the same store.
	//
	// Views may run concurrently with one another. Whether they also run
	// beside a transaction in InTx is the store's property: sqlitestore's
	// do; memstore's wait for it, since its transactions change data in
	// place.
	View(ctx context.Context, fn func(ctx context.Context, tx Tx) error) error
}

// KeyLocker is implemented by stores shared by several processes (pgstore).
// The processor holds the lock for a resource key ("entitlement:<id>" or
// "account:<id>") from before its deduplication check until after its
// commit, so that duplicate deliveries handled by two replicas never run
// callbacks concurrently or twice. The processor also serialises keys
// within the process, so a KeyLocker only has to exclude other processes,
// though excluding goroutines too is harmless.
//
// LockKey blocks until the lock is held or ctx is done (then it returns an
// error). unlock releases it and must be safe to call once.
type KeyLocker interface {
	LockKey(ctx context.Context, key string) (unlock func(), err error)
}

// ConnPool is implemented by stores that serve transactions and key locks
// from a bounded pool of connections (pgstore). With a KeyLocker store, the
// processor holds a key lock for every message in flight and, meanwhile, a
// transaction, each on a connection of its own (CompleteSignup and an
// account's purge hold an entitlement's lock under the account's). If the
// pool has fewer connections than that, they can all end up held by key
// locks whose holders wait for a connection for their transaction, and
// processing stalls until their contexts end, then stalls again. So New
// refuses a KeyLocker store whose MaxConns is below twice the concurrency
// (Config.Concurrency) plus 2, the 2 for a CompleteSignup, Approve, Reject or
// Reconcile call and the usage reporter running meanwhile.
type ConnPool interface {
	// MaxConns reports how many connections the store holds at most.
	MaxConns() int
}

// ErrReadOnly is wrapped by the error of a write method called on the Tx of
// a read-only transaction (Viewer.View).
var ErrReadOnly = errors.New("marketplace: write in a read-only transaction")

// Tx is the view of a Store inside one transaction. Use it only from the
// goroutine running fn. Its methods return an error wrapping ctx.Err() once
// ctx is done, ErrTxDone once the transaction has ended, and ErrInvalid for
// an empty identifier; such an error leaves the transaction usable.
//
// Times are kept at microsecond precision or better and returned in UTC.
type Tx interface {
	// Lock serialises all transactions that lock the same key (an account
	// or entitlement id) until this transaction ends, across goroutines
	// and, for stores shared between processes, across processes. Locking a
	// key the transaction already holds is a no-op.
	Lock(ctx context.Context, key string) error

	// MarkProcessed records that eventID's effects are part of this
	// transaction. first is false if the id was already recorded (committed
	// earlier, or earlier in this transaction). Of N concurrent
	// transactions marking the same id, exactly one commits with first
	// true.
	MarkProcessed(ctx context.Context, eventID string, at time.Time) (first bool, err error)
	// IsProcessed reports whether eventID is recorded.
	IsProcessed(ctx context.Context, eventID string) (bool, error)
	// PruneProcessed deletes the records processed strictly before before
	// (the retention policy), returning how many it deleted. A pruned id is
	// new again, so keep ids longer than Pub/Sub may redeliver; prune often
	// enough that each call, one transaction, stays small.
	PruneProcessed(ctx context.Context, before time.Time) (int, error)

	// GetAccount returns the account, or an error wrapping ErrNotFound.
	GetAccount(ctx context.Context, id string) (Account, error)
	// PutAccount inserts or replaces the account with a.ID.
	PutAccount(ctx context.Context, a Account) error
	// DeleteAccount deletes the account and its history (every Transition
	// with its AccountID: customer data goes with the customer); deleting
	// an absent one is not an error.
	DeleteAccount(ctx context.Context, id string) error
	// ListAccounts returns every account, sorted by ID.
	ListAccounts(ctx context.Context) ([]Account, error)

	// GetEntitlement returns the entitlement, or an error wrapping
	// ErrNotFound.
	GetEntitlement(ctx context.Context, id string) (Entitlement, error)
	// PutEntitlement inserts or replaces the entitlement with e.ID,
	// whatever its UpdateTime.
	PutEntitlement(ctx context.Context, e Entitlement) error
	// AdvanceEntitlement is the updateTime guard against stale or
	// reordered notifications: it writes e only if no entitlement with
	// e.ID exists or e.UpdateTime is strictly after the stored UpdateTime.
	// applied reports whether it wrote.
	AdvanceEntitlement(ctx context.Context, e Entitlement) (applied bool, err error)
	// DeleteEntitlement deletes the entitlement; deleting an absent one is
	// not an error.
	DeleteEntitlement(ctx context.Context, id string) error
	// ListEntitlements returns the entitlements matching q, sorted by ID.
	ListEntitlements(ctx context.Context, q EntitlementQuery) ([]Entitlement, error)

	// EnqueueApproval adds r to the manual approval queue, keyed by
	// (EntitlementID, Kind), and returns it with Seq set. Enqueueing an
	// existing key keeps its Seq (its place in the queue) and replaces the
	// other fields.
	EnqueueApproval(ctx context.Context, r ApprovalRequest) (ApprovalRequest, error)
	// GetApproval returns the queued request, or an error wrapping
	// ErrNotFound.
	GetApproval(ctx context.Context, entitlementID string, kind ApprovalKind) (ApprovalRequest, error)
	// ListApprovals returns the queue in FIFO order (Seq ascending).
	ListApprovals(ctx context.Context) ([]ApprovalRequest, error)
	// DeleteApproval removes a request from the queue; removing an absent
	// one is not an error.
	DeleteApproval(ctx context.Context, entitlementID string, kind ApprovalKind) error

	// RecordPoison keeps a message that cannot be decoded or keeps failing,
	// for operators to inspect. Stores keep at least the first
	// PoisonDataLimit bytes of p.Data.
	RecordPoison(ctx context.Context, p Poison) error
	// ListPoison returns up to limit poison messages, newest (At) first;
	// limit <= 0 means all.
	ListPoison(ctx context.Context, limit int) ([]Poison, error)
	// DeletePoison removes every poison record of the Pub/Sub message
	// messageID (Processor.Redrive does, once it processed the message);
	// removing an absent one is not an error.
	DeletePoison(ctx context.Context, messageID string) error

	// AppendTransition adds t to the history, with Seq set by the store
	// (t.Seq is ignored): greater than that of every transition appended
	// by a transaction committed before. t.EntitlementID must not be empty.
	AppendTransition(ctx context.Context, t Transition) error
	// ListTransitions returns the transitions q selects in Seq order
	// (oldest first); with q.Limit > 0, only the newest q.Limit of them.
	ListTransitions(ctx context.Context, q HistoryQuery) ([]Transition, error)
}

// PoisonDataLimit is the number of bytes of Poison.Data a Store must keep.
// Stores may drop the rest: the payload can hold customer identifiers, and a
// prefix is enough to diagnose a bad message.
const PoisonDataLimit = 4096

// Account is a customer's Procurement account as this integration knows it.
type Account struct {
	ID             string    // Procurement account id
	SignupApproved bool      // the "signup" approval is APPROVED at Google
	VendorUserID   string    // the vendor's own user/tenant id, linked at sign-up ("" until linked)
	UserIdentity   string    // google.user_identity from the sign-up JWT
	UpdateTime     time.Time // Procurement updateTime last applied
	CreatedAt      time.Time // local bookkeeping, set by the caller
}

// Entitlement is a purchase of one product plan by an account.
type Entitlement struct {
	ID               string                       // Procurement entitlement id
	AccountID        string                       // owning Procurement account id
	Product          string                       // product (service) name
	Plan             string                       // current plan
	PendingPlan      string                       // plan requested by a pending plan change ("" if none)
	Offer            string                       // offer resource name, as Procurement's offer field ("" if none, or if stored by an older version)
	State            procurement.EntitlementState // Google's enum value, e.g. procurement.EntitlementActive
	UsageReportingID string                       // consumer id for Service Control usage reports
	UpdateTime       time.Time                    // Procurement updateTime last applied
	Parked           bool                         // requested before the account signed up; approved at sign-up
	ParkedAt         time.Time                    // when it was parked; zero if never
	CancelTime       time.Time                    // when it was cancelled (usage after this is refused); zero if not
}

// EntitlementQuery selects entitlements for ListEntitlements. Its zero value
// selects all of them; set fields narrow the result (they are ANDed).
type EntitlementQuery struct {
	AccountID  string                       // "" = any account
	State      procurement.EntitlementState // "" = any state
	ParkedOnly bool                         // only entitlements with Parked set
}

// ApprovalKind says what a queued approval request is for.
type ApprovalKind string

// Approval kinds.
const (
	ApprovalEntitlement ApprovalKind = "entitlement" // a new entitlement awaits approval
	ApprovalPlanChange  ApprovalKind = "plan_change" // a plan change awaits approval
)

// ApprovalRequest is an entry in the manual approval queue.
type ApprovalRequest struct {
	EntitlementID string
	Kind          ApprovalKind
	AccountID     string
	Plan          string    // requested plan (the new pending plan for a plan change)
	RequestedAt   time.Time // when the request was queued, set by the caller
	Seq           int64     // queue position, assigned by the store
}

// Poison is a message that could not be decoded or failed permanently.
type Poison struct {
	MessageID string    // Pub/Sub message id
	EventID   string    // "" if the message could not be decoded
	Reason    string    // why it was set aside
	Data      []byte    // the payload, or its first PoisonDataLimit bytes
	At        time.Time // when it was set aside
}
