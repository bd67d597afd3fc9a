// Package agent sells an A2A agent through Cloud Marketplace: Dynamic
// Client Registration for Gemini Enterprise (one OAuth client per order),
// the order's lifecycle (its client revoked when the entitlement ends), and
// the identity of each request (which order, entitlement and account).
//
// SCAFFOLD: shapes agreed in the session design; the agent branches fill
// them in.
package agent

import (
	"context"
	"errors"
	"net/http"
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

// Client is an OAuth client the vendor's identity provider issued.
type Client struct {
	ID     string
	Secret string
}

// ClientRequest asks the identity provider for a client for an order.
type ClientRequest struct {
	OrderID       string
	AccountID     string
	EntitlementID string
	RedirectURIs  []string
}

// IdentityProvider is the vendor's OAuth authorization server, as the SDK
// needs it. The app implements it (Keycloak, Okta, its own).
type IdentityProvider interface {
	// CreateClient creates an OAuth client for the order.
	CreateClient(ctx context.Context, r ClientRequest) (Client, error)
	// DeleteClient deletes (revokes) a client; an unknown client is not
	// an error.
	DeleteClient(ctx context.Context, clientID string) error
}

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
// storetest checks it.
type Store interface {
	// InsertOrder stores r unless an order with r.ID exists; it returns
	// the stored record and whether this call inserted it. Of concurrent
	// calls for one order, exactly one inserts.
	InsertOrder(ctx context.Context, r OrderRecord) (stored OrderRecord, inserted bool, err error)
	// GetOrder returns the order, or an error matching
	// marketplace.ErrNotFound.
	GetOrder(ctx context.Context, orderID string) (OrderRecord, error)
	// GetOrderByClient returns the order whose ClientID is clientID, or an
	// error matching marketplace.ErrNotFound.
	GetOrderByClient(ctx context.Context, clientID string) (OrderRecord, error)
	// ListOrders lists the orders q selects, sorted by id.
	ListOrders(ctx context.Context, q OrderQuery) ([]OrderRecord, error)
	// RevokeOrder sets the order's RevokedAt (kept if already set).
	RevokeOrder(ctx context.Context, orderID string, at time.Time) error
	// DeleteOrders deletes the account's orders (its purge).
	DeleteOrders(ctx context.Context, accountID string) (int, error)
}

// Config configures a Registry.
type Config struct {
	gcpmarketplace.Runtime

	Processor   *marketplace.Processor    // stored accounts and entitlements
	Procurement *procurement.Client       // read when the store has not heard of an order yet
	Store       Store                     // orders
	Verifier    *verify.StatementVerifier // software statements
	IdP         IdentityProvider          // creates and deletes OAuth clients
	SecretKey   []byte                    // 32 bytes: seals client secrets at rest
}

// Registry registers Gemini Enterprise's OAuth clients per order and knows
// which order a client belongs to.
type Registry struct {
	cfg   Config
	ident identCache // middleware.go: who is calling, cached
}

// New returns a Registry.
func New(cfg Config) (*Registry, error) { return &Registry{cfg: cfg}, nil }

var errScaffold = errors.New("agent: not implemented yet")

// DCRHandler is the Dynamic Client Registration endpoint (the agent card's
// DCR extension target_url).
func (r *Registry) DCRHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "not implemented", http.StatusNotImplemented)
	})
}

// Handler wraps the app's marketplace.Handler: when an order's entitlement
// is cancelled or deleted its client is deleted at the identity provider
// (once, with the processor's guarantees), and an account's deletion
// purges its orders; then next runs.
func (r *Registry) Handler(next marketplace.Handler) marketplace.Handler { return next }

// Order returns the order, or an error matching marketplace.ErrNotFound.
func (r *Registry) Order(ctx context.Context, orderID string) (Order, error) {
	return Order{}, errScaffold
}

// OrderByClient returns the order of an OAuth client, or an error matching
// marketplace.ErrNotFound.
func (r *Registry) OrderByClient(ctx context.Context, clientID string) (Order, error) {
	return Order{}, errScaffold
}
