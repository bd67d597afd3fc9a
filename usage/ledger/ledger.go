// Package ledger is the contract between the usage Reporter and the store
// that keeps its state: registered consumers, usage not yet sealed into a
// window, and sealed windows with their reporting state. Applications use
// package usage and pick a store (memstore, sqlitestore, pgstore); this
// package is for those who write a store, and for the stores themselves.
//
// A store implements Ledger, calls Admit in AddUsage (the one rule that
// decides whether usage is accepted and into which bucket), and passes the
// contract cases of marketplace/storetest.
package ledger

import (
	"context"
	"errors"
	"time"
)

// Ledger is the durable state behind a usage.Reporter: registered consumers,
// aggregated usage not yet sealed into a window, and sealed windows with
// their reporting state. Every method is one atomic transaction; when it
// returns nil its effects are durable to the degree the implementation
// documents (sqlitestore: synchronous=FULL by default).
//
// Implementations in this module: memstore and sqlitestore; pgstore
// implements it for fleets. Every implementation must pass the contract cases
// in marketplace/storetest (storetest.Run runs them for any store that
// implements Ledger).
//
// Times are stored at microsecond precision or better and returned in UTC.
// Methods return an error wrapping ErrInvalid for an empty entitlement or
// operation id.
//
// Concurrency: a Ledger is safe for concurrent use, also by several
// processes sharing it (pgstore). AddUsage and Seal for the same consumer
// must serialise (the store locks the consumer's row in both), so that a
// record either lands in a window before Seal reads it or sees the advanced
// frontier afterwards; ClaimWindows must never hand the same window to two
// callers whose leases overlap (pgstore: FOR UPDATE SKIP LOCKED).
type Ledger interface {
	// PutConsumer inserts or updates the consumer c.EntitlementID. On
	// insert its frontier (the start of its first unsealed window) is set
	// to frontier and it is serving; on update UsageReportingID, Start and
	// End are replaced and the frontier and block are kept.
	PutConsumer(ctx context.Context, c Consumer, frontier time.Time) error

	// GetConsumer returns the consumer, or an error wrapping
	// ErrUnknownConsumer.
	GetConsumer(ctx context.Context, entitlementID string) (ConsumerState, error)

	// ListConsumers returns the consumers matching q, sorted by
	// EntitlementID.
	ListConsumers(ctx context.Context, q ConsumerQuery) ([]ConsumerState, error)

	// SetBlock records whether the consumer is blocked (b.Code != "") or
	// serving (b.Code == ""). It fails with ErrUnknownConsumer for an
	// unknown consumer.
	SetBlock(ctx context.Context, entitlementID string, b Block) error

	// AddUsage adds u to the consumer's aggregated usage under the rule of
	// Admit: no consumer u.EntitlementID is ErrUnknownConsumer; otherwise
	// Admit(consumer, u) decides, and on success the row keyed
	// (EntitlementID, bucket, Metric, Labels) is created with u's values
	// and Kind, or u.Int64 and u.Double are added to it. It returns the
	// bucket. On error nothing is stored.
	AddUsage(ctx context.Context, u Usage) (bucket time.Time, err error)

	// Seal turns closed usage into windows, in one transaction for up to
	// p.Limit consumers (p.Limit <= 0: no limit). A consumer is ended when
	// its End is non-zero and not after a non-zero p.Ended; every other
	// consumer is live. Seal selects:
	//   - the consumers whose frontier is before both p.Before and their End
	//     (End zero: no end);
	//   - the consumers that have usage rows whose bucket is before p.Before;
	//   - the ended consumers whose frontier is before their End or that
	//     have any usage row;
	// except the consumers in p.Held, which it leaves untouched.
	// For each it calls fn with the consumer and its rows (ordered by
	// bucket, metric, labels): every row of an ended consumer, whatever its
	// window, and only the rows whose bucket is before p.Before of a live
	// one. It then inserts the windows fn returns (an OperationID already
	// present is left as it is), deletes the rows it passed to fn, and sets
	// the frontier to the returned one. Consumers are taken in (frontier,
	// EntitlementID) order. fn is pure computation: no I/O, no calls to the
	// Ledger. If fn returns an error, Seal rolls back and returns it. Seal
	// returns how many consumers it sealed; fewer than p.Limit means none is
	// left.
	Seal(ctx context.Context, p SealParams, fn SealFunc) (int, error)

	// ClaimWindows leases up to p.Limit (<= 0: no limit) windows in state
	// Pending or Unknown whose LeaseUntil is not after p.Now, ordered by
	// (Start, OperationID): it sets LeaseOwner = p.Owner and LeaseUntil =
	// p.LeaseUntil, increments LeaseToken, and returns them so updated. A
	// lease is also a not-before time: a window released with a later
	// LeaseUntil is not claimed again until then.
	ClaimWindows(ctx context.Context, p ClaimParams) ([]Window, error)

	// UpdateWindows applies each update to the window with its OperationID
	// if the window's LeaseOwner is owner and its LeaseToken is the
	// update's (no claim happened since the one the update comes from),
	// or if owner is "" (an operator's override, which also increments
	// LeaseToken, so that the holder of a lease can no longer update the
	// window). It sets State, Reason, Attempts, LastAttempt, ReportedAt and
	// LeaseUntil from the update and keeps every other field. lost lists
	// the updates not applied (unknown id, or the lease now belongs to
	// another owner or another claim), in the order given. The check and
	// the update are one transaction: the Reporter marks windows sent with
	// it and sends only those it did not lose, which is what fences a
	// reporter that stalled past its lease.
	UpdateWindows(ctx context.Context, owner string, updates []WindowUpdate) (lost []string, err error)

	// ListWindows returns the windows matching q ordered by (Start,
	// OperationID), at most q.Limit of them.
	ListWindows(ctx context.Context, q WindowQuery) ([]Window, error)

	// PruneWindows deletes windows in state Reported or Rejected sealed
	// before before, returning how many it deleted. Windows in other states
	// are never pruned.
	PruneWindows(ctx context.Context, before time.Time) (int, error)
}

// Errors of the Ledger contract, also returned (wrapped) by usage's
// Reporter.Record (package usage re-exports them).
var (
	// ErrUnknownConsumer: no consumer is registered for the entitlement.
	ErrUnknownConsumer = errors.New("usage: entitlement not registered")
	// ErrBeforeStart: the usage happened before the consumer's Start.
	ErrBeforeStart = errors.New("usage: usage before the entitlement's start")
	// ErrAfterEnd: the usage happened at or after the consumer's End
	// (cancellation); Google must never be billed for it.
	ErrAfterEnd = errors.New("usage: usage at or after the entitlement's end")
	// ErrWindowSealed: the usage happened before End but the consumer's
	// final window has already been sealed, so no later window exists to
	// carry it.
	ErrWindowSealed = errors.New("usage: the entitlement's final window is already sealed")
	// ErrInvalid: an argument is unusable (empty id, bad label, negative
	// value, unknown metric, time in the future).
	ErrInvalid = errors.New("usage: invalid argument")
)

// MetricKind is the value type of a metric.
type MetricKind int

// Metric kinds.
const (
	// Int64 metrics carry int64Value (the default and what Google's
	// usage billing supports).
	Int64 MetricKind = iota
	// Double metrics carry doubleValue; use only where the metric is
	// defined as DOUBLE.
	Double
)

// String returns "int64" or "double".
func (k MetricKind) String() string {
	if k == Double {
		return "double"
	}
	return "int64"
}

// Consumer is an entitlement whose usage is reported, registered with
// usage's Reporter.Register.
type Consumer struct {
	EntitlementID    string
	UsageReportingID string    // Service Control consumerId (the entitlement's usageReportingId)
	Start            time.Time // usage before this is refused (zero: no lower bound)
	End              time.Time // cancellation/end time: usage at or after it is refused (zero: open)
}

// Block says why a consumer must not be served; the zero value means it is
// serving.
type Block struct {
	Code   string    // the services.check error code, e.g. "BILLING_DISABLED"; "" = serving
	Detail string    // Google's detail text (short)
	Since  time.Time // when it was first seen
}

// ConsumerState is a consumer as the Ledger keeps it.
type ConsumerState struct {
	Consumer
	// Frontier is the start of the consumer's first unsealed window: the
	// end of the last window sealed.
	Frontier time.Time
	Block    Block
}

// Usage is one addition to aggregated usage (see Ledger.AddUsage).
type Usage struct {
	EntitlementID string
	At            time.Time // when the usage happened
	// Bucket is the start of the bucket containing At: a minute (or less,
	// dividing the window) that the reporter groups into its window at
	// seal, so that usage can be split at a consumer's End.
	Bucket time.Time
	Metric string     // full metric name, "<service>/<metric>"
	Kind   MetricKind // stored when the row is created
	Labels string     // canonical user labels (a JSON object with sorted keys, "{}" for none)
	Int64  int64
	Double float64
}

// Row is aggregated usage not yet sealed: the sum of the Usage added to
// one bucket of one consumer for one metric and label set.
type Row struct {
	Bucket time.Time // the bucket (see Usage.Bucket), or the consumer's frontier when it was later
	Metric string
	Kind   MetricKind
	Labels string
	Int64  int64
	Double float64
}

// SealParams selects what Ledger.Seal seals.
type SealParams struct {
	// Before: seal the windows that start before this.
	Before time.Time
	// Ended: also seal, through their End, the consumers whose non-zero End
	// is not after this (zero: none). The Reporter passes now minus the seal
	// grace: a cancelled consumer's final window [start, End) takes no usage
	// after End, so waiting for the next window boundary would only bring
	// it closer to (or past) its deadline, End plus one hour.
	Ended time.Time
	// Limit: consumers per call; <= 0 = all.
	Limit int
	// Held: entitlement ids Seal must leave alone in this call, whatever
	// they have to seal: their rows, windows and frontier stay as they are,
	// and they do not count against Limit. The Reporter holds a consumer
	// whose sealing must wait (its end is not confirmed yet, or its usage
	// source failed); a later call seals it.
	Held map[string]bool
}

// EndedBy reports whether Seal treats c as ended under p: its End is
// non-zero and not after a non-zero p.Ended. Every Ledger and the
// Reporter's SealFunc use it, so that they agree on which consumers are sealed through
// End.
func (p SealParams) EndedBy(c Consumer) bool {
	return !p.Ended.IsZero() && !c.End.IsZero() && !c.End.After(p.Ended)
}

// SealFunc computes a consumer's sealed windows from its unsealed usage:
// every row passed must end up in one returned window (possibly a Rejected
// one). Frontier must not be before End for an ended consumer (see
// Ledger.Seal), nor before min(Before, End) for a live one, unless the
// consumer has nothing left to seal; otherwise Seal would select it again.
type SealFunc func(c ConsumerState, rows []Row) (Sealed, error)

// Sealed is what a SealFunc returns.
type Sealed struct {
	Windows  []Window
	Frontier time.Time
}

// WindowState is where a window is in its reporting life.
type WindowState string

// Window states. Pending → Unknown (sent, outcome not yet known) → Reported
// or Rejected; Pending or Unknown windows are resent with the same
// operation id; an Unknown window whose deadline passed becomes Expired
// and is no longer resent automatically.
const (
	StatePending  WindowState = "pending"
	StateUnknown  WindowState = "unknown"
	StateReported WindowState = "reported"
	StateRejected WindowState = "rejected"
	StateExpired  WindowState = "expired"
)

// MetricValue is one metric of a sealed window.
type MetricValue struct {
	Metric string
	Kind   MetricKind
	Int64  int64
	Double float64
}

// Window is one sealed operation: a consumer's usage with one set of user
// labels over [Start, End). Its OperationID and content never change once
// sealed.
type Window struct {
	OperationID   string
	EntitlementID string
	ConsumerID    string // usageReportingId at seal time
	Start, End    time.Time
	Labels        string        // canonical user labels, "{}" for none
	Values        []MetricValue // sorted by Metric
	State         WindowState
	Reason        string    // why it is not Reported (last error, rejection, block)
	Deadline      time.Time // when Google must have it (one hour after End, month-end cut-off)
	Attempts      int       // report calls that carried it
	SealedAt      time.Time
	LastAttempt   time.Time // zero if never sent
	ReportedAt    time.Time // when Google confirmed it; zero otherwise
	LeaseOwner    string
	LeaseUntil    time.Time
	// LeaseToken counts the claims of the window (ClaimWindows increments
	// it); an update carries the token of the claim it comes from.
	LeaseToken int64
}

// ClaimParams are the arguments of Ledger.ClaimWindows.
type ClaimParams struct {
	Owner      string
	Now        time.Time
	LeaseUntil time.Time
	Limit      int
}

// WindowUpdate is the new mutable state of a window (Ledger.UpdateWindows).
type WindowUpdate struct {
	OperationID string
	State       WindowState
	Reason      string
	Attempts    int
	LastAttempt time.Time
	ReportedAt  time.Time
	LeaseUntil  time.Time
	LeaseToken  int64 // the Window.LeaseToken of the claim; ignored for an override
}

// WindowQuery selects windows for Ledger.ListWindows. Its zero value selects
// every window; set fields narrow the result (they are ANDed).
type WindowQuery struct {
	States        []WindowState // nil = any state
	EntitlementID string        // "" = any consumer
	OperationID   string        // "" = any window
	// From and To bound the windows' Start: From <= Start < To (a zero
	// time leaves that side open).
	From, To time.Time
	// After resumes a listing: only windows that come after this key in
	// ListWindows's order are returned (zero: from the first). Pass the
	// Key of the last window of the previous page.
	After WindowKey
	Limit int // <= 0 = all
}

// WindowKey is a window's place in ListWindows's order, (Start,
// OperationID): a page cursor that stays valid while windows are added or
// pruned.
type WindowKey struct {
	Start       time.Time
	OperationID string // "" = the zero key, before every window
}

// IsZero reports whether k is the zero key.
func (k WindowKey) IsZero() bool { return k.OperationID == "" }

// Key returns w's place in ListWindows's order.
func (w Window) Key() WindowKey { return WindowKey{Start: w.Start, OperationID: w.OperationID} }

// ConsumerQuery selects consumers for Ledger.ListConsumers. Its zero value
// selects all of them.
type ConsumerQuery struct {
	BlockedOnly bool // only consumers with a Block (Block.Code != "")
}
