package verify

import (
	"fmt"
	"net/http"
	"time"

	"github.com/gcpmarketplace/gcpmarketplace"
)

// Config configures a SignupVerifier, a PushVerifier and a
// StatementVerifier. One value can serve all three: each verifier reads the
// fields that concern it and ignores the Signup*, Push* or Statement*
// fields of the others. A nil *Config means the zero
// Config, which suits a sign-up verifier in production; a push verifier
// needs PushServiceAccount.
type Config struct {
	// Runtime gives the logger (key fetches) and the clock (exp and iat
	// checks, the key cache's expiry and refresh rate limit); tests pass
	// the emulator's clock. The verifiers record no metrics.
	gcpmarketplace.Runtime

	// HTTPClient fetches the signing keys. nil means a client with a 10
	// second timeout. The verifier fetches with a copy of it that refuses
	// redirects; HTTPClient is not modified.
	HTTPClient *http.Client

	// Leeway is the clock skew allowed on exp and iat, at most MaxLeeway.
	// 0 means 30 seconds; a negative value means none.
	Leeway time.Duration

	// SignupCertsURL replaces the URL the sign-up signing keys are fetched
	// from (a JSON map {kid: PEM certificate}, the format SignupIssuer
	// serves). Empty means SignupIssuer.
	//
	// FOR TESTS ONLY: point it at the emulator (marketplacetest's
	// CertsURL). Production code must NOT set it: the default is the only
	// URL Google's keys are published at, and any other URL trusts
	// whoever serves it to sign sign-ups for any account. It must be
	// https, or http to a loopback host. The iss claim is still required
	// to equal SignupIssuer.
	SignupCertsURL string

	// PushJWKSURL replaces the JWK Set URL the push signing keys are
	// fetched from. Empty means DefaultPushJWKSURL.
	//
	// FOR TESTS ONLY: point it at the emulator (marketplacetest's
	// PushJWKSURL). Production code must NOT set it: any other URL than
	// Google's trusts whoever serves it. It must be https, or http to a
	// loopback host.
	PushJWKSURL string

	// PushServiceAccount is the service account the push subscription's
	// OIDC token is issued for: a push token's email must be this address
	// (compared after ASCII lower-casing) and email_verified true.
	// NewPushVerifier requires it unless AnyPushServiceAccount is set:
	// anyone can have Google sign a token for your endpoint's audience
	// with their own service account, so the audience alone proves
	// nothing.
	PushServiceAccount string

	// AnyPushServiceAccount accepts a Google-signed push token for the
	// audience whatever service account it was issued to. Anyone with a
	// Google Cloud project can then push messages to your endpoint. The
	// processor re-reads every resource, so such a message cannot approve
	// or change anything, but it can fire the informational callbacks of
	// an active entitlement (OnEntitlementRenewed, OnEntitlementOfferEnded,
	// OnEntitlementCancelling) with fields of its choosing, and spend your
	// concurrency and API quota. For tests and for a network path no one
	// else can reach. It is ignored when PushServiceAccount is set.
	AnyPushServiceAccount bool

	// StatementCertsURL replaces the URL the software_statement signing
	// keys are fetched from (a JSON map {kid: PEM certificate}), for every
	// accepted issuer. Empty means each statement's issuer URL
	// (AgentspaceIssuer, or the TestStatementIssuers entry it names), each
	// with its own key cache.
	//
	// FOR TESTS ONLY: point it at the emulator (marketplacetest's
	// StatementCertsURL). Production code must NOT set it: any other URL
	// trusts whoever serves it to sign registrations for any order. It must
	// be https, or http to a loopback host. The iss claim is still required
	// to equal AgentspaceIssuer or a TestStatementIssuers entry.
	StatementCertsURL string

	// TestStatementIssuers are further issuers a StatementVerifier
	// accepts: Google's x509 metadata URLs of service accounts, exactly
	// https://www.googleapis.com/service_accounts/v1/metadata/x509/<email>
	// (NewStatementVerifier refuses anything else), for a sandbox that
	// mints its own statements with a service account key. Their keys are
	// fetched from that URL. Empty (the default) accepts AgentspaceIssuer
	// only; leave it empty in production, where anyone holding that
	// service account's key could register clients for any order.
	TestStatementIssuers []string
}

// settings are a Config's values with the defaults applied.
type settings struct {
	Config
	leeway time.Duration
	now    func() time.Time
}

// resolve applies the defaults to cfg (nil: the zero Config) and checks
// what the verifiers share. caller names the constructor in errors.
func resolve(cfg *Config, caller string) (settings, error) {
	var s settings
	if cfg != nil {
		s.Config = *cfg
	}
	switch {
	case s.Leeway == 0:
		s.leeway = defaultTokenLeeway
	case s.Leeway > 0:
		s.leeway = s.Leeway
	}
	if err := checkLeeway(s.leeway); err != nil {
		return settings{}, fmt.Errorf("verify: %s: %w", caller, err)
	}
	if s.HTTPClient == nil {
		s.HTTPClient = newKeyHTTPClient()
	}
	s.now = s.NowFunc()
	s.Logger = s.Log()
	return s, nil
}
