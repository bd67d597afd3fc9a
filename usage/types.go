package usage

import "github.com/gcpmarketplace/gcpmarketplace/usage/ledger"

// The ledger's types that the Reporter's API shows, so that an application
// needs no package but usage: they are the types of package ledger (the
// store implementers' contract), under the same names.
type (
	// Consumer is an entitlement whose usage is reported (Register).
	Consumer = ledger.Consumer
	// Block says why a consumer must not be served (Serving).
	Block = ledger.Block
	// Window is one sealed operation (Backlog, ReadBack, DeadlineAlert).
	Window = ledger.Window
	// WindowState is where a window is in its reporting life.
	WindowState = ledger.WindowState
	// WindowKey is a window's place in ReadBack's order: a page cursor.
	WindowKey = ledger.WindowKey
	// MetricValue is one metric of a sealed window.
	MetricValue = ledger.MetricValue
	// MetricKind is the value type of a metric (Config.Metrics).
	MetricKind = ledger.MetricKind
)

// Metric kinds (see ledger.Int64 and ledger.Double).
const (
	Int64  = ledger.Int64
	Double = ledger.Double
)

// Window states (see ledger.StatePending and the package documentation).
const (
	StatePending  = ledger.StatePending
	StateUnknown  = ledger.StateUnknown
	StateReported = ledger.StateReported
	StateRejected = ledger.StateRejected
	StateExpired  = ledger.StateExpired
)

// Errors Record returns (wrapped); they are the ledger's (see
// ledger.ErrUnknownConsumer), so errors.Is matches either name.
var (
	ErrUnknownConsumer = ledger.ErrUnknownConsumer
	ErrBeforeStart     = ledger.ErrBeforeStart
	ErrAfterEnd        = ledger.ErrAfterEnd
	ErrWindowSealed    = ledger.ErrWindowSealed
	ErrInvalid         = ledger.ErrInvalid
)
