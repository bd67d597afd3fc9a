package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace/verify"
)

// The RFC 7591 error codes the DCR endpoint answers with.
const (
	// CodeInvalidSoftwareStatement: the statement is missing, malformed,
	// or fails verification (signature, issuer, audience, lifetime, order).
	CodeInvalidSoftwareStatement = "invalid_software_statement"
	// CodeUnapprovedSoftwareStatement: the statement is valid but its
	// account is not active, or its order has no usable entitlement.
	CodeUnapprovedSoftwareStatement = "unapproved_software_statement"
	// CodeInvalidRedirectURI: the identity provider refused the client
	// (ErrRefused), most likely for its redirect URIs.
	CodeInvalidRedirectURI = "invalid_redirect_uri"
	// CodeServerError: a transient failure (Procurement, the store, the
	// identity provider); Gemini Enterprise may try again.
	CodeServerError = "server_error"
)

// dcrRequest is the registration body Gemini Enterprise posts. Other
// fields are ignored, as RFC 7591 lets a server ignore metadata it does
// not understand.
type dcrRequest struct {
	SoftwareStatement string `json:"software_statement"`
}

// dcrResponse is RFC 7591's client information response.
// client_secret_expires_at is 0 (never): Gemini Enterprise does not rotate
// secrets.
type dcrResponse struct {
	ClientID              string `json:"client_id"`
	ClientSecret          string `json:"client_secret"`
	ClientIDIssuedAt      int64  `json:"client_id_issued_at"`
	ClientSecretExpiresAt int64  `json:"client_secret_expires_at"`
}

// dcrError is an answer other than success: an RFC 7591 error, with the
// cause kept for the log only.
type dcrError struct {
	status int
	code   string
	desc   string // sent to the caller: says what failed, never a secret
	cause  error  // logged; may be nil
}

func (e *dcrError) Error() string {
	if e.cause != nil {
		return e.code + ": " + e.desc + ": " + e.cause.Error()
	}
	return e.code + ": " + e.desc
}

func (e *dcrError) Unwrap() error { return e.cause }

func refusal(code, desc string, cause error) *dcrError {
	return &dcrError{status: http.StatusBadRequest, code: code, desc: desc, cause: cause}
}

func serverError(desc string, cause error) *dcrError {
	return &dcrError{status: http.StatusInternalServerError, code: CodeServerError, desc: desc, cause: cause}
}

// DCRHandler is the Dynamic Client Registration endpoint (the agent card's
// DCR extension target_url). It accepts a POST of
// {"software_statement": "<JWT>"}, verifies the statement, checks that its
// account is active and its order's entitlement usable, and answers with
// the order's OAuth client: created at the identity provider the first
// time, the same one on every later registration of the order.
func (r *Registry) DCRHandler() http.Handler {
	return http.HandlerFunc(r.serveDCR)
}

func (r *Registry) serveDCR(w http.ResponseWriter, req *http.Request) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	if req.Method != http.MethodPost {
		h.Set("Allow", http.MethodPost)
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{
			"error": "invalid_request", "error_description": "use POST",
		})
		return
	}
	resp, err := r.register(req.Context(), w, req)
	if err != nil {
		var de *dcrError
		if !errors.As(err, &de) {
			de = serverError("registration failed", err)
		}
		level := r.log.Warn
		if de.status >= 500 {
			level = r.log.Error
		}
		level("agent: DCR refused", "code", de.code, "error", de.Error())
		r.met.registered(req.Context(), de.code)
		writeJSON(w, de.status, map[string]string{"error": de.code, "error_description": de.desc})
		return
	}
	writeJSON(w, r.cfg.SuccessStatus, resp)
}

// register handles one registration; every error is a *dcrError.
func (r *Registry) register(ctx context.Context, w http.ResponseWriter, req *http.Request) (dcrResponse, error) {
	stmt, err := readStatement(w, req, r.cfg.MaxBodyBytes)
	if err != nil {
		return dcrResponse{}, err
	}
	claims, err := r.verify(ctx, stmt)
	if err != nil {
		desc := "the software statement does not verify"
		var te *verify.TokenError
		if errors.As(err, &te) {
			desc += ": " + string(te.Reason) // a fixed phrase, never token content
		}
		return dcrResponse{}, refusal(CodeInvalidSoftwareStatement, desc, err)
	}
	if claims.OrderID == "" || claims.AccountID == "" {
		return dcrResponse{}, refusal(CodeInvalidSoftwareStatement, "the software statement names no order or account", nil)
	}
	ent, err := r.checkOrder(ctx, claims.AccountID, claims.OrderID)
	if err != nil {
		return dcrResponse{}, err
	}
	rec, secret, created, err := r.clientFor(ctx, claims, ent)
	if err != nil {
		return dcrResponse{}, err
	}
	result := resultExisting
	if created {
		result = resultCreated
	}
	r.met.registered(ctx, result)
	r.log.Info("agent: DCR registered", "order", rec.ID, "account", rec.AccountID,
		"entitlement", rec.EntitlementID, "client", rec.ClientID, "result", result)
	return dcrResponse{
		ClientID: rec.ClientID, ClientSecret: secret,
		ClientIDIssuedAt: rec.CreatedAt.Unix(), ClientSecretExpiresAt: 0,
	}, nil
}

// readStatement reads the size-bounded JSON body.
func readStatement(w http.ResponseWriter, req *http.Request, limit int64) (string, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, limit))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return "", refusal(CodeInvalidSoftwareStatement, fmt.Sprintf("the body is larger than %d bytes", limit), nil)
		}
		return "", refusal(CodeInvalidSoftwareStatement, "the body could not be read", err)
	}
	stmt, err := decodeRequest(body)
	if err != nil {
		return "", refusal(CodeInvalidSoftwareStatement, err.Error(), nil)
	}
	return stmt, nil
}

// decodeRequest parses a DCR body: a JSON object with a non-empty string
// software_statement. Its errors say what is wrong without echoing input.
func decodeRequest(body []byte) (string, error) {
	var in dcrRequest
	if err := json.Unmarshal(body, &in); err != nil {
		return "", errors.New("the body is not a JSON object with a string software_statement")
	}
	if in.SoftwareStatement == "" {
		return "", errors.New("software_statement is missing")
	}
	return in.SoftwareStatement, nil
}

// clientFor returns the order's client: the stored one, or a new one from
// the identity provider. Of concurrent registrations for one order, the
// store lets one insert; the others delete the client they created (unless
// an idempotent identity provider gave them the winner's) and return the
// winner's.
func (r *Registry) clientFor(ctx context.Context, c verify.StatementClaims, ent entitlementRef) (rec OrderRecord, secret string, created bool, err error) {
	if rec, secret, found, err := r.existing(ctx, c); found || err != nil {
		return rec, secret, false, err
	}
	if len(c.RedirectURIs) == 0 {
		// An OAuth client without redirect URIs cannot complete the
		// authorization code flow Gemini Enterprise uses.
		return OrderRecord{}, "", false, refusal(CodeInvalidRedirectURI, "the software statement has no auth_app_redirect_uris", nil)
	}
	cl, err := r.cfg.IdP.CreateClient(ctx, ClientRequest{
		OrderID: c.OrderID, AccountID: c.AccountID, EntitlementID: ent.id, RedirectURIs: c.RedirectURIs,
	})
	if err != nil {
		if errors.Is(err, ErrRefused) {
			return OrderRecord{}, "", false, refusal(CodeInvalidRedirectURI, "the identity provider refused the client", err)
		}
		return OrderRecord{}, "", false, serverError("the identity provider failed", err)
	}
	if cl.ID == "" || cl.Secret == "" {
		r.deleteOrphan(ctx, c.OrderID, cl.ID)
		return OrderRecord{}, "", false, serverError("the identity provider returned no client id or secret", nil)
	}
	rec = OrderRecord{Order: Order{
		ID: c.OrderID, AccountID: c.AccountID, EntitlementID: ent.id, UsageReportingID: ent.usageReportingID,
		ClientID: cl.ID, RedirectURIs: c.RedirectURIs, CreatedAt: r.now().UTC(),
	}, SealedSecret: r.seal(c.OrderID, cl.Secret)}
	stored, inserted, err := r.cfg.Store.InsertOrder(ctx, rec)
	if err != nil {
		r.deleteOrphan(ctx, c.OrderID, cl.ID)
		return OrderRecord{}, "", false, serverError("the order could not be stored", err)
	}
	if inserted {
		if err := r.confirmUsable(ctx, stored); err != nil {
			return OrderRecord{}, "", false, err
		}
		return stored, cl.Secret, true, nil
	}
	// A concurrent registration won: ours is an orphan.
	r.deleteOrphan(ctx, c.OrderID, cl.ID)
	rec, secret, err = r.reuse(c, stored)
	return rec, secret, false, err
}

// existing returns the order's stored client, if any.
func (r *Registry) existing(ctx context.Context, c verify.StatementClaims) (OrderRecord, string, bool, error) {
	rec, err := r.cfg.Store.GetOrder(ctx, c.OrderID)
	if err != nil {
		if isNotFound(err) {
			return OrderRecord{}, "", false, nil
		}
		return OrderRecord{}, "", false, serverError("the order could not be read", err)
	}
	rec, secret, err := r.reuse(c, rec)
	return rec, secret, true, err
}

// reuse returns a stored order's client for a new registration of it.
func (r *Registry) reuse(c verify.StatementClaims, rec OrderRecord) (OrderRecord, string, error) {
	if rec.AccountID != c.AccountID {
		return OrderRecord{}, "", refusal(CodeUnapprovedSoftwareStatement, "the order belongs to another account",
			fmt.Errorf("order %q: stored account %q, statement account %q", c.OrderID, rec.AccountID, c.AccountID))
	}
	if rec.Revoked() {
		return OrderRecord{}, "", refusal(CodeUnapprovedSoftwareStatement, "the order's client was revoked", nil)
	}
	secret, err := r.open(rec.ID, rec.SealedSecret)
	if err != nil {
		return OrderRecord{}, "", serverError("the stored client secret could not be opened", err)
	}
	return rec, secret, nil
}

// deleteOrphan deletes a client this registration created but could not
// store; a failure leaves a client nobody knows the secret of, which is
// logged for the operator. An identity provider may return an existing
// client from CreateClient (see IdentityProvider), so the client is
// deleted only if no stored order holds it: a concurrent registration's
// winner may hold the very same id. When the store cannot tell, the
// client is kept (an orphan costs less than a paying customer's client).
func (r *Registry) deleteOrphan(ctx context.Context, orderID, clientID string) {
	if clientID == "" {
		return
	}
	ctx = context.WithoutCancel(ctx)
	holder, err := r.cfg.Store.GetOrderByClient(ctx, clientID)
	switch {
	case err == nil:
		r.log.Info("agent: client kept: a stored order holds it", "order", orderID, "holder", holder.ID, "client", clientID)
		return
	case !isNotFound(err):
		r.log.Error("agent: possibly orphan OAuth client kept: the store could not say whether an order holds it",
			"order", orderID, "client", clientID, "error", err)
		return
	}
	if err := r.cfg.IdP.DeleteClient(ctx, clientID); err != nil {
		r.log.Error("agent: orphan OAuth client not deleted; delete it at the identity provider",
			"order", orderID, "client", clientID, "error", err)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client went away: nothing to do
}
