package agent

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync/atomic"
	"time"

	"github.com/gcpmarketplace/gcpmarketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/verify"
	"github.com/gcpmarketplace/gcpmarketplace/procurement"
)

// Order is a Marketplace order of an agent listing, with the OAuth client
// issued for it.
type Order struct {
	ID               string // google.order (Entitlement.OrderID)
	AccountID        string // Procurement account id (the statement's sub)
	EntitlementID    string // the entitlement that bills the order
	UsageReportingID string // that entitlement's usageReportingId: the Service Control consumer
	ClientID         string // the OAuth client issued for the order
	RedirectURIs     []string
	CreatedAt        time.Time
	RevokedAt        time.Time // zero while the order's client is valid
}

// Revoked reports whether the order's client has been revoked.
func (o Order) Revoked() bool { return !o.RevokedAt.IsZero() }

// Client is an OAuth client the vendor's identity provider issued.
type Client struct {
	ID     string
	Secret string
}

// String hides the secret, so that a Client printed by mistake leaks
// nothing.
func (c Client) String() string { return "agent.Client{ID: " + c.ID + ", Secret: [hidden]}" }

// LogValue hides the secret from slog.
func (c Client) LogValue() slog.Value { return slog.StringValue(c.String()) }

// ClientRequest asks the identity provider for a client for an order.
type ClientRequest struct {
	OrderID       string
	AccountID     string
	EntitlementID string
	RedirectURIs  []string
}

// IdentityProvider is the vendor's OAuth authorization server, as the SDK
// needs it. The app implements it (Keycloak, Okta, its own).
//
// Errors wrapping ErrRefused are permanent refusals (an HTTP 4xx of the
// identity provider's API): CreateClient's is answered invalid_redirect_uri,
// DeleteClient's is logged and dropped. Any other error is transient: the
// DCR request gets server_error, the lifecycle callback is retried.
type IdentityProvider interface {
	// CreateClient creates an OAuth client for the order. It may be
	// idempotent ("create or return"): returning a client it created
	// earlier for the same order is allowed, and such a client is never
	// deleted as an orphan while a stored order holds it.
	CreateClient(ctx context.Context, r ClientRequest) (Client, error)
	// DeleteClient deletes (revokes) a client; an unknown client is not
	// an error.
	DeleteClient(ctx context.Context, clientID string) error
}

// ErrRefused is wrapped by an IdentityProvider's errors that retrying
// cannot fix: the identity provider refused the request (for example a
// redirect URI it does not allow).
var ErrRefused = errors.New("agent: identity provider refused the request")

// ErrInvalidConfig is matched by New's errors.
var ErrInvalidConfig = errors.New("agent: invalid config")

// OrderRecord is an Order as a Store keeps it: the client secret sealed
// (AES-256-GCM under Config.SecretKey), never in plain text.
type OrderRecord struct {
	Order
	SealedSecret []byte
}

// OrderQuery selects orders for Store.ListOrders; fields are ANDed.
type OrderQuery struct {
	AccountID     string
	EntitlementID string
}

// Store keeps orders. memstore, sqlitestore and pgstore implement it;
// storetest.RunOrders checks it.
type Store interface {
	// InsertOrder stores r unless an order with r.ID exists; it returns
	// the stored record and whether this call inserted it. Of concurrent
	// calls for one order, exactly one inserts. An empty ID or ClientID,
	// or a ClientID another order holds, is an error matching
	// marketplace.ErrInvalid.
	InsertOrder(ctx context.Context, r OrderRecord) (stored OrderRecord, inserted bool, err error)
	// GetOrder returns the order, or an error matching
	// marketplace.ErrNotFound.
	GetOrder(ctx context.Context, orderID string) (OrderRecord, error)
	// GetOrderByClient returns the order whose ClientID is clientID, or an
	// error matching marketplace.ErrNotFound.
	GetOrderByClient(ctx context.Context, clientID string) (OrderRecord, error)
	// ListOrders lists the orders q selects, sorted by id.
	ListOrders(ctx context.Context, q OrderQuery) ([]OrderRecord, error)
	// RevokeOrder sets the order's RevokedAt (kept if already set), or
	// returns an error matching marketplace.ErrNotFound.
	RevokeOrder(ctx context.Context, orderID string, at time.Time) error
	// DeleteOrders deletes the account's orders (its purge) and returns
	// how many there were.
	DeleteOrders(ctx context.Context, accountID string) (int, error)
}

// Defaults of the Config fields that make the uncertain points of
// Gemini Enterprise's behaviour configurable.
const (
	// DefaultSuccessStatus is the DCR success status: 201, as RFC 7591 and
	// Red Hat's agent answer (another public agent answers 200).
	DefaultSuccessStatus = http.StatusCreated
	// DefaultMaxBodyBytes bounds a DCR request body. A software statement
	// is about 1 KiB.
	DefaultMaxBodyBytes = 64 << 10
)

// DefaultUsableStates returns the entitlement states served when
// Config.UsableStates is nil: ACTIVE, PENDING_PLAN_CHANGE,
// PENDING_PLAN_CHANGE_APPROVAL and PENDING_CANCELLATION, the states of a
// provisioned entitlement (the customer pays until a cancellation takes
// effect, and keeps the current plan while a change is pending).
func DefaultUsableStates() []procurement.EntitlementState {
	return []procurement.EntitlementState{
		procurement.EntitlementActive, procurement.EntitlementPendingPlanChange,
		procurement.EntitlementPendingPlanChangeApproval, procurement.EntitlementPendingCancellation,
	}
}

// Config configures a Registry. Every field is required unless marked
// optional.
type Config struct {
	gcpmarketplace.Runtime

	Procurement *procurement.Client       // live account and entitlement reads (the DCR cross-check)
	Store       Store                     // orders
	Verifier    *verify.StatementVerifier // software statements
	IdP         IdentityProvider          // creates and deletes OAuth clients
	SecretKey   []byte                    // 32 random bytes (not all zero): seals client secrets at rest; see the package doc on rotation

	// UsableStates are the entitlement states in which an order may
	// register a client, and in which Middleware serves it. Optional:
	// nil means DefaultUsableStates, every state in which the customer is
	// still paying for the product. Set it to ENTITLEMENT_ACTIVE alone
	// for Red Hat's stricter check (which refuses a customer with a
	// pending plan change or cancellation).
	UsableStates []procurement.EntitlementState

	// SuccessStatus is the status of a successful registration, 200 or
	// 201. Optional: 0 means DefaultSuccessStatus. Which one Gemini
	// Enterprise expects is not documented; both are observed.
	SuccessStatus int

	// MaxBodyBytes bounds the DCR request body. Optional: 0 means
	// DefaultMaxBodyBytes.
	MaxBodyBytes int64

	// ApproveAccounts completes the sign-up of a statement's account whose
	// "signup" approval is still pending, at its first registration: the
	// attached Processor's CompleteSignup with the account id as
	// VendorUserID, which approves the account and settles its parked
	// entitlements under the Processor's policy. It is for a listing
	// without a sign-up page, whose accounts would otherwise wait forever
	// (see the package doc); the statement is Google-signed and names the
	// account, as a sign-up JWT does. Optional: false leaves such
	// registrations refused (unapproved_software_statement).
	ApproveAccounts bool
}

// Registry registers Gemini Enterprise's OAuth clients per order and knows
// which order a client belongs to. It is safe for concurrent use.
type Registry struct {
	cfg    Config
	log    *slog.Logger
	now    func() time.Time
	aead   cipher.AEAD
	usable []procurement.EntitlementState
	// verify is cfg.Verifier.Verify; tests of this package replace it.
	verify func(ctx context.Context, token string) (verify.StatementClaims, error)
	ident  identCache // middleware.go: who is calling, cached
	met    metrics
	proc   atomic.Pointer[marketplace.Processor] // set by Attach
}

// ErrNotAttached is returned (and answered as a server error) while no
// Processor is attached: see Attach.
var ErrNotAttached = errors.New("agent: no Processor attached (call Registry.Attach)")

// Attach gives the Registry the Processor whose stored entitlements it
// reads (the order's entitlement and its state). The Processor is created
// with Registry.Handler(yours), so it can only exist after New: create the
// Registry, then the Processor with its Handler, then Attach it, before
// serving DCRHandler or Middleware. Until then DCRHandler still registers,
// reading every entitlement from Procurement (and logging a warning), while
// Middleware answers 503 (ErrNotAttached) to every request. Attaching again
// replaces the Processor.
func (r *Registry) Attach(p *marketplace.Processor) { r.proc.Store(p) }

// entitlement reads a stored entitlement through the attached Processor.
func (r *Registry) entitlement(ctx context.Context, id string) (marketplace.Entitlement, error) {
	p := r.proc.Load()
	if p == nil {
		return marketplace.Entitlement{}, ErrNotAttached
	}
	return p.Entitlement(ctx, id)
}

// New returns a Registry, or an error matching ErrInvalidConfig.
func New(cfg Config) (*Registry, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(cfg.SecretKey)
	if err != nil {
		return nil, fmt.Errorf("%w: SecretKey: %w", ErrInvalidConfig, err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("%w: SecretKey: %w", ErrInvalidConfig, err)
	}
	met, err := newMetrics(cfg.Meter(meterName))
	if err != nil {
		return nil, err
	}
	r := &Registry{
		met:    met,
		cfg:    cfg,
		log:    cfg.Log().With("component", "agent"),
		now:    cfg.NowFunc(),
		aead:   aead,
		usable: cfg.UsableStates,
		verify: cfg.Verifier.Verify,
	}
	if r.usable == nil {
		r.usable = DefaultUsableStates()
	}
	if r.cfg.SuccessStatus == 0 {
		r.cfg.SuccessStatus = DefaultSuccessStatus
	}
	if r.cfg.MaxBodyBytes == 0 {
		r.cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	return r, nil
}

func (c *Config) validate() error {
	var missing []string
	for name, isNil := range map[string]bool{
		"Procurement": c.Procurement == nil, "Store": c.Store == nil,
		"Verifier": c.Verifier == nil, "IdP": c.IdP == nil,
	} {
		if isNil {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return fmt.Errorf("%w: missing %v", ErrInvalidConfig, missing)
	}
	if len(c.SecretKey) != 32 {
		return fmt.Errorf("%w: SecretKey has %d bytes, want 32 (AES-256)", ErrInvalidConfig, len(c.SecretKey))
	}
	if !slices.ContainsFunc(c.SecretKey, func(b byte) bool { return b != 0 }) {
		// A zeroed key is a placeholder left in, not a secret.
		return fmt.Errorf("%w: SecretKey is all zero bytes", ErrInvalidConfig)
	}
	if c.SuccessStatus != 0 && c.SuccessStatus != http.StatusOK && c.SuccessStatus != http.StatusCreated {
		return fmt.Errorf("%w: SuccessStatus %d, want 200 or 201", ErrInvalidConfig, c.SuccessStatus)
	}
	if c.MaxBodyBytes < 0 {
		return fmt.Errorf("%w: negative MaxBodyBytes", ErrInvalidConfig)
	}
	for _, s := range c.UsableStates {
		if s == procurement.EntitlementCancelled || s == procurement.EntitlementActivationRequested {
			return fmt.Errorf("%w: UsableStates holds %s, which is never usable", ErrInvalidConfig, s)
		}
	}
	return nil
}

// Usable reports whether an order whose entitlement is in state s may be
// served (Config.UsableStates).
func (r *Registry) Usable(s procurement.EntitlementState) bool { return slices.Contains(r.usable, s) }

// Order returns the order, or an error matching marketplace.ErrNotFound.
func (r *Registry) Order(ctx context.Context, orderID string) (Order, error) {
	rec, err := r.cfg.Store.GetOrder(ctx, orderID)
	if err != nil {
		return Order{}, fmt.Errorf("agent: order %q: %w", orderID, err)
	}
	return rec.Order, nil
}

// OrderByClient returns the order of an OAuth client, or an error matching
// marketplace.ErrNotFound.
func (r *Registry) OrderByClient(ctx context.Context, clientID string) (Order, error) {
	rec, err := r.cfg.Store.GetOrderByClient(ctx, clientID)
	if err != nil {
		return Order{}, fmt.Errorf("agent: order of client %q: %w", clientID, err)
	}
	return rec.Order, nil
}
