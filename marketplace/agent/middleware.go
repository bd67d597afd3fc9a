package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
)

// Caller is who is calling the agent: the order, its entitlement, and the
// account (Order.AccountID). Record usage for it with
// Entitlement.ID and Entitlement.UsageReportingID. Callers are shared
// between requests: do not modify Order.RedirectURIs.
type Caller struct {
	Order       Order
	Entitlement marketplace.Entitlement
}

// TokenChecker is the app's check of an access token its authorization
// server issued (introspection or local JWT validation): it returns the
// OAuth client id the token was issued to. Any error refuses the request
// with 401.
type TokenChecker interface {
	ClientID(ctx context.Context, accessToken string) (string, error)
}

// TokenCheckerFunc adapts a function to TokenChecker.
type TokenCheckerFunc func(ctx context.Context, accessToken string) (string, error)

// ClientID calls f.
func (f TokenCheckerFunc) ClientID(ctx context.Context, accessToken string) (string, error) {
	return f(ctx, accessToken)
}

// Identification errors. Unknown orders and clients match
// marketplace.ErrNotFound instead.
var (
	// ErrNoToken: the request has no bearer token.
	ErrNoToken = errors.New("agent: no bearer token")
	// ErrInvalidToken wraps the TokenChecker's refusal of a token.
	ErrInvalidToken = errors.New("agent: access token refused")
	// ErrOrderInactive: the order's client was revoked, or its entitlement
	// is not in a usable state (Config.UsableStates).
	ErrOrderInactive = errors.New("agent: order not active")
	// ErrStatementMismatch: a verified software_statement names another
	// account than the one the order belongs to.
	ErrStatementMismatch = errors.New("agent: software_statement account does not own the order")
)

// CallerCacheTTL bounds how long an identified order (with its
// entitlement) is served from memory. This process forgets an order at
// once when its Registry.Handler sees the entitlement change; the TTL
// bounds what other replicas, which did not handle that message, serve
// from a stale entry.
const CallerCacheTTL = 30 * time.Second

// maxCached bounds each identification cache, so that a flood of distinct
// statements cannot grow memory without limit.
const maxCached = 1 << 14

// JSONRPCUnauthorized is the JSON-RPC error code of the middleware's 401
// and 403 answers (the code the observed implementations use; A2A does
// not define one).
const JSONRPCUnauthorized = -32001

type callerKey struct{}

// CallerFrom returns the Caller the Middleware put in ctx.
func CallerFrom(ctx context.Context) (Caller, bool) {
	c, ok := ctx.Value(callerKey{}).(*Caller)
	if !ok {
		return Caller{}, false
	}
	return *c, true
}

// WithCaller returns ctx carrying c, as the Middleware does; for agent
// code that identifies a caller itself (IdentifyStatement) and for tests.
func WithCaller(ctx context.Context, c Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, &c)
}

// Middleware identifies each request's order from its bearer token and
// refuses inactive or unknown orders. The token goes to tc, the client id
// it yields to the order issued for it (OrderByClient), the order to its
// stored entitlement. Missing or refused tokens get 401 with
// WWW-Authenticate: Bearer; unknown, revoked or inactive orders get 403;
// both with a JSON-RPC error body (code JSONRPCUnauthorized), since A2A
// speaks JSON-RPC. The Caller is in the request's context (CallerFrom).
// Identified orders are cached (CallerCacheTTL), so after the first
// request of an order a request costs tc and two map lookups.
func (r *Registry) Middleware(tc TokenChecker) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			c, err := r.identifyBearer(req.Context(), tc, req.Header.Get("Authorization"))
			if err != nil {
				r.refuse(w, req, err)
				return
			}
			next.ServeHTTP(w, req.WithContext(context.WithValue(req.Context(), callerKey{}, c)))
		})
	}
}

// identifyBearer returns the caller of an Authorization header.
func (r *Registry) identifyBearer(ctx context.Context, tc TokenChecker, authorization string) (*Caller, error) {
	scheme, token, ok := strings.Cut(authorization, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return nil, ErrNoToken
	}
	clientID, err := tc.ClientID(ctx, strings.TrimSpace(token))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	if clientID == "" {
		return nil, fmt.Errorf("%w: no client id", ErrInvalidToken)
	}
	now := r.now()
	if orderID, ok := r.ident.clientOrder(clientID); ok {
		if c, ok := r.ident.caller(orderID, now); ok {
			return c, nil
		}
	}
	since := r.ident.generation() // before the order is read
	o, err := r.OrderByClient(ctx, clientID)
	if err != nil {
		return nil, fmt.Errorf("identify client %s: %w", clientID, err)
	}
	c, err := r.loadCaller(ctx, o, now, since)
	if err != nil {
		return nil, err
	}
	r.ident.putClient(clientID, o.ID)
	return c, nil
}

// IdentifyStatement identifies the caller from a software_statement (as
// sent in A2A request metadata): the statement is verified (Config.Verifier),
// then its order resolved as the Middleware does; the statement's account
// must own the order. Verified statements are cached until they expire,
// keyed by a hash of the token, so a repeated statement costs a lookup, not
// an RSA verification. Errors match those of the Verifier (a
// *verify.TokenError), marketplace.ErrNotFound, ErrOrderInactive or
// ErrStatementMismatch.
func (r *Registry) IdentifyStatement(ctx context.Context, statement string) (Caller, error) {
	now := r.now()
	key := r.ident.statementKey(statement)
	st, ok := r.ident.statement(key, now)
	if !ok {
		claims, err := r.verify(ctx, statement)
		if err != nil {
			return Caller{}, fmt.Errorf("identify software_statement: %w", err)
		}
		st = verifiedStatement{orderID: claims.OrderID, accountID: claims.AccountID, exp: claims.ExpiresAt}
		r.ident.putStatement(key, st, now)
	}
	c, ok := r.ident.caller(st.orderID, now)
	if !ok {
		since := r.ident.generation() // before the order is read
		o, err := r.Order(ctx, st.orderID)
		if err != nil {
			return Caller{}, fmt.Errorf("identify order %s: %w", st.orderID, err)
		}
		if c, err = r.loadCaller(ctx, o, now, since); err != nil {
			return Caller{}, err
		}
	}
	if c.Order.AccountID != "" && c.Order.AccountID != st.accountID {
		return Caller{}, fmt.Errorf("%w: order %s", ErrStatementMismatch, st.orderID)
	}
	return *c, nil
}

// loadCaller checks o and its entitlement and caches the caller, unless
// the order or its entitlement was forgotten since generation since (read
// before o was): what was read may predate the change that forgot it.
func (r *Registry) loadCaller(ctx context.Context, o Order, now time.Time, since uint64) (*Caller, error) {
	if !o.RevokedAt.IsZero() {
		return nil, fmt.Errorf("%w: order %s revoked at %s", ErrOrderInactive, o.ID, o.RevokedAt.Format(time.RFC3339))
	}
	e, err := r.callerEntitlement(ctx, o)
	if err != nil {
		return nil, err
	}
	if !r.Usable(e.State) {
		return nil, fmt.Errorf("%w: order %s, entitlement %s is %s", ErrOrderInactive, o.ID, e.ID, e.State)
	}
	if o.UsageReportingID == "" {
		o.UsageReportingID = e.UsageReportingID
	}
	c := &Caller{Order: o, Entitlement: e}
	r.ident.putCaller(o.ID, c, now.Add(CallerCacheTTL), since)
	return c, nil
}

// callerEntitlement returns the order's entitlement: the stored one, or,
// when the Processor has not heard of it yet (a registration can succeed,
// reading Procurement, before the Pub/Sub message arrives), Procurement's,
// so that the order's first requests are not refused meanwhile.
func (r *Registry) callerEntitlement(ctx context.Context, o Order) (marketplace.Entitlement, error) {
	e, err := r.entitlement(ctx, o.EntitlementID)
	if err == nil {
		return e, nil
	}
	if !errors.Is(err, marketplace.ErrNotFound) {
		return marketplace.Entitlement{}, fmt.Errorf("entitlement %s of order %s: %w", o.EntitlementID, o.ID, err)
	}
	live, lerr := r.cfg.Procurement.GetEntitlement(ctx, o.EntitlementID)
	switch {
	case isNotFound(lerr):
		return marketplace.Entitlement{}, fmt.Errorf("entitlement %s of order %s: %w (nor in Procurement: %w)", o.EntitlementID, o.ID, err, lerr)
	case lerr != nil:
		// Not a refusal: the store said not found, Procurement failed.
		return marketplace.Entitlement{}, fmt.Errorf("entitlement %s of order %s: not stored yet, and Procurement failed: %w",
			o.EntitlementID, o.ID, lerr)
	case live.AccountID != o.AccountID:
		return marketplace.Entitlement{}, fmt.Errorf("%w: entitlement %s of order %s belongs to account %s",
			ErrOrderInactive, live.ID, o.ID, live.AccountID)
	}
	return marketplace.EntitlementOf(&live), nil
}

// forgetOrder drops the cached caller of an order. Registry.Handler calls
// it when the order's entitlement changes or its client is revoked, so this
// process refuses the order's next request at once.
func (r *Registry) forgetOrder(orderID string) { r.ident.forgetOrder(orderID) }

// forgetEntitlement drops the cached callers of an entitlement's orders
// (for changes that name the entitlement, not the order).
func (r *Registry) forgetEntitlement(entitlementID string) {
	r.ident.forgetEntitlement(entitlementID)
}

// refuse answers a request the middleware could not identify. A refused
// token is logged without the checker's error, which may quote it.
func (r *Registry) refuse(w http.ResponseWriter, req *http.Request, err error) {
	ctx := req.Context()
	status, code, message := http.StatusForbidden, JSONRPCUnauthorized, "order not active"
	switch {
	case errors.Is(err, ErrNoToken):
		status, message = http.StatusUnauthorized, "bearer token required"
		w.Header().Set("WWW-Authenticate", `Bearer`)
		r.log.DebugContext(ctx, "agent: request refused", "status", status, "reason", "no bearer token")
	case errors.Is(err, ErrInvalidToken):
		status, message = http.StatusUnauthorized, "invalid access token"
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		r.log.DebugContext(ctx, "agent: request refused", "status", status, "reason", "token refused")
	case errors.Is(err, marketplace.ErrNotFound) || errors.Is(err, ErrOrderInactive):
		if errors.Is(err, marketplace.ErrNotFound) {
			message = "unknown order"
		}
		r.log.InfoContext(ctx, "agent: request refused", "status", status, "reason", err)
	default: // the store, not the caller
		status, code, message = http.StatusServiceUnavailable, jsonRPCInternalError, "try again"
		r.log.ErrorContext(ctx, "agent: identifying the caller failed", "error", err)
	}
	writeJSONRPCError(w, status, code, message)
}

// jsonRPCInternalError is JSON-RPC's "Internal error".
const jsonRPCInternalError = -32603

// writeJSONRPCError writes a JSON-RPC 2.0 error response; the id is null
// because the middleware does not read the request body.
func writeJSONRPCError(w http.ResponseWriter, status, code int, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"jsonrpc": "2.0", "id": nil,
		"error": map[string]any{"code": code, "message": message}})
}

// identCache holds what identification learned: the order of each client
// (fixed once issued), each order's caller until a deadline, and verified
// statements until they expire. Its zero value is ready to use.
//
// A request that read an order before a change forgot it must not cache
// what it read after the forget: every forget bumps gen and records it
// for the order or entitlement (forgot), and a caller is cached only if
// neither was forgotten since the generation its request started at. (A
// request that starts after the forget but reads before the Processor
// commits the change can still cache the old state, for CallerCacheTTL at
// most: the Processor's callbacks run before its commit.)
type identCache struct {
	mu         sync.RWMutex
	clients    map[string]string // client id → order id
	callers    map[string]cachedCaller
	statements map[stmtKey]verifiedStatement
	gen        uint64            // bumped by every forget
	forgot     map[string]uint64 // forgetKey → gen of its last forget
	forgotLow  uint64            // gen when forgot was last emptied: older forgets are assumed then

	seedOnce sync.Once
	seeds    [2]maphash.Seed
}

// stmtKey is a statement's 128-bit hash under two secret random seeds:
// nobody can aim a token at another's entry without the seeds, and
// computing it costs a tenth of a SHA-256 of a 1 KiB token (the statement
// cache is there to make a request cost a lookup).
type stmtKey [2]uint64

func (ic *identCache) statementKey(token string) stmtKey {
	ic.seedOnce.Do(func() { ic.seeds = [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()} })
	return stmtKey{maphash.String(ic.seeds[0], token), maphash.String(ic.seeds[1], token)}
}

type cachedCaller struct {
	c     *Caller
	until time.Time
}

type verifiedStatement struct {
	orderID, accountID string
	exp                time.Time
}

func (ic *identCache) clientOrder(clientID string) (string, bool) {
	ic.mu.RLock()
	defer ic.mu.RUnlock()
	o, ok := ic.clients[clientID]
	return o, ok
}

func (ic *identCache) caller(orderID string, now time.Time) (*Caller, bool) {
	ic.mu.RLock()
	defer ic.mu.RUnlock()
	cc, ok := ic.callers[orderID]
	if !ok || !now.Before(cc.until) {
		return nil, false
	}
	return cc.c, true
}

func (ic *identCache) statement(key stmtKey, now time.Time) (verifiedStatement, bool) {
	ic.mu.RLock()
	defer ic.mu.RUnlock()
	st, ok := ic.statements[key]
	if !ok || !now.Before(st.exp) {
		return verifiedStatement{}, false
	}
	return st, true
}

func (ic *identCache) putClient(clientID, orderID string) {
	ic.mu.Lock()
	defer ic.mu.Unlock()
	if ic.clients == nil {
		ic.clients = map[string]string{}
	}
	if len(ic.clients) >= maxCached {
		evictOne(ic.clients, func(string) bool { return true })
	}
	ic.clients[clientID] = orderID
}

// generation returns the current forget generation, for putCaller.
func (ic *identCache) generation() uint64 {
	ic.mu.RLock()
	defer ic.mu.RUnlock()
	return ic.gen
}

// forgetKey names an order ('o') or an entitlement ('e') in forgot.
func forgetKey(kind byte, id string) string { return string(kind) + id }

// forgottenSince reports whether the key was forgotten after generation
// since; ic.mu is held.
func (ic *identCache) forgottenSince(key string, since uint64) bool {
	return ic.forgotLow > since || ic.forgot[key] > since
}

// markForgotten records a forget of key at a new generation; ic.mu is held
// for writing.
func (ic *identCache) markForgotten(key string) {
	ic.gen++
	if ic.forgot == nil {
		ic.forgot = map[string]uint64{}
	}
	if len(ic.forgot) >= maxCached {
		// Emptying is safe: every request in flight then caches nothing.
		clear(ic.forgot)
		ic.forgotLow = ic.gen
	}
	ic.forgot[key] = ic.gen
}

// putCaller caches c until the deadline, unless its order or entitlement
// was forgotten after generation since.
func (ic *identCache) putCaller(orderID string, c *Caller, until time.Time, since uint64) {
	ic.mu.Lock()
	defer ic.mu.Unlock()
	if ic.forgottenSince(forgetKey('o', orderID), since) ||
		ic.forgottenSince(forgetKey('e', c.Entitlement.ID), since) ||
		ic.forgottenSince(forgetKey('e', c.Order.EntitlementID), since) {
		return
	}
	if ic.callers == nil {
		ic.callers = map[string]cachedCaller{}
	}
	if len(ic.callers) >= maxCached {
		now := until.Add(-CallerCacheTTL)
		evictOne(ic.callers, func(cc cachedCaller) bool { return !now.Before(cc.until) })
	}
	ic.callers[orderID] = cachedCaller{c: c, until: until}
}

func (ic *identCache) putStatement(key stmtKey, st verifiedStatement, now time.Time) {
	ic.mu.Lock()
	defer ic.mu.Unlock()
	if ic.statements == nil {
		ic.statements = map[stmtKey]verifiedStatement{}
	}
	if len(ic.statements) >= maxCached {
		evictOne(ic.statements, func(s verifiedStatement) bool { return !now.Before(s.exp) })
	}
	ic.statements[key] = st
}

func (ic *identCache) forgetOrder(orderID string) {
	ic.mu.Lock()
	defer ic.mu.Unlock()
	ic.markForgotten(forgetKey('o', orderID))
	delete(ic.callers, orderID)
}

func (ic *identCache) forgetEntitlement(entitlementID string) {
	ic.mu.Lock()
	defer ic.mu.Unlock()
	ic.markForgotten(forgetKey('e', entitlementID))
	for id, cc := range ic.callers {
		if cc.c.Entitlement.ID == entitlementID || cc.c.Order.EntitlementID == entitlementID {
			delete(ic.callers, id)
		}
	}
}

// evictOne makes room in a full cache: it deletes the stale entries, or
// if there are none, one entry (map order: effectively random, which
// needs no bookkeeping and cannot be steered by a flood of new keys).
func evictOne[K comparable, V any](m map[K]V, stale func(V) bool) {
	for k, v := range m {
		if stale(v) {
			delete(m, k)
		}
	}
	if len(m) < maxCached {
		return
	}
	for k := range m {
		delete(m, k)
		return
	}
}
