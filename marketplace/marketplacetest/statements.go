package marketplacetest

// This file plays Gemini Enterprise's signer: the software_statement JWT
// it sends to an AI agent's Dynamic Client Registration endpoint, signed by
// the cloud-agentspace service account with its own keys (not the sign-up
// keys), and the endpoint serving them. Minting and the attacks are the
// sign-up token's (tokens.go, attacks.go) with the claims and the extra
// attack kinds of a statement.

import (
	"errors"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// AgentspaceIssuer is the iss claim of a software_statement: the x509
// metadata URL of the cloud-agentspace service account, where Google
// serves its keys ({kid: PEM certificate}). The emulator serves the same
// map at StatementCertsURL.
const AgentspaceIssuer = "https://www.googleapis.com/service_accounts/v1/metadata/x509/" + agentspaceAccount

// TestStatementIssuer is the iss of BadTokenTestIssuer statements: another
// service account's metadata URL, as a sandbox minting its own statements
// would use. A verifier accepts it only when configured to (for
// verify.Config.TestStatementIssuers); the emulator signs it with the
// agentspace keys, served at StatementCertsURL.
const TestStatementIssuer = "https://www.googleapis.com/service_accounts/v1/metadata/x509/statement-tester@vendor-project.iam.gserviceaccount.com"

// StatementTokenLifetime is exp − iat of a minted statement. Google's is
// not documented; 300 s is the figure reported for Gemini Enterprise.
const StatementTokenLifetime = 300 * time.Second

const (
	agentspaceAccount = "cloud-agentspace@system.gserviceaccount.com"
	statementCertPath = "/service_accounts/v1/metadata/x509/" + agentspaceAccount
	// attackerStatementCertPath serves the foreign key: the key URL an
	// attacker would put in iss (BadTokenAttackerIssuer).
	attackerStatementCertPath = "/attacker" + statementCertPath
)

// GeminiEnterpriseRedirectURIs returns the OAuth redirect URIs Google
// documents for Gemini Enterprise: the auth_app_redirect_uris of a minted
// statement unless StatementParams.RedirectURIs says otherwise. It returns a
// new slice on every call.
func GeminiEnterpriseRedirectURIs() []string {
	return []string{
		"https://vertexaisearch.cloud.google.com/oauth-redirect",
		"https://vertexaisearch.cloud.google.com/static/oauth/oauth.html",
	}
}

// The BadToken kinds below apply to software statements only (see
// StatementAttackTokens).
const (
	BadTokenNoOrder             BadToken = "no-order"              // google claim without order
	BadTokenEmptyOrder          BadToken = "empty-order"           // "google": {"order": ""}
	BadTokenNumericOrder        BadToken = "numeric-order"         // google.order a JSON number
	BadTokenHTTPRedirectURI     BadToken = "http-redirect-uri"     // an http:// redirect URI
	BadTokenRedirectURIFragment BadToken = "redirect-uri-fragment" // a redirect URI with a #fragment
	BadTokenRelativeRedirectURI BadToken = "relative-redirect-uri" // a redirect URI without scheme and host
	BadTokenRedirectURIUserinfo BadToken = "redirect-uri-userinfo" // https://user@host/...
	BadTokenTooManyRedirectURIs BadToken = "too-many-redirect-uris"
	BadTokenTestIssuer          BadToken = "test-issuer" // iss TestStatementIssuer, genuine key
)

// TooManyRedirectURIs is the number of auth_app_redirect_uris of a
// BadTokenTooManyRedirectURIs statement: ten times Gemini Enterprise's two,
// and few enough that the statement stays well under any token size limit.
const TooManyRedirectURIs = 20

var statementTokens = &tokenKind{
	name:     "software-statement",
	issuer:   AgentspaceIssuer,
	lifetime: StatementTokenLifetime,
	// A genuine Google issuer, with the sign-up key URL: the statement
	// verifier must not share the sign-up verifier's constants.
	wrongIssuer: SignupIssuer,
	attacks: []BadToken{
		BadTokenAlgNone, BadTokenHS256PublicKey, BadTokenWrongIssuer, BadTokenAttackerIssuer,
		BadTokenWrongAudience, BadTokenExpired, BadTokenIssuedInFuture, BadTokenEmptySubject,
		BadTokenUnknownKeyID, BadTokenForeignKey, BadTokenTamperedPayload, BadTokenTruncated,
		BadTokenOversize, BadTokenCritHeader, BadTokenSignatureNewline, BadTokenSignatureLowBits,
		BadTokenLongLifetime, BadTokenStringExpiry, BadTokenSubjectPath,
		BadTokenNoOrder, BadTokenEmptyOrder, BadTokenNumericOrder, BadTokenHTTPRedirectURI,
		BadTokenRedirectURIFragment, BadTokenRelativeRedirectURI, BadTokenRedirectURIUserinfo,
		BadTokenTooManyRedirectURIs, BadTokenTestIssuer,
	},
	hmacKey:      func(k *signingKey) []byte { return k.certPEM },
	claims:       statementClaims,
	attackerPath: attackerStatementCertPath,
	edit:         statementAttack,
}

// StatementAttackTokens lists every BadToken kind that applies to software
// statements: the sign-up token's kinds (BadTokenWrongIssuer names the
// sign-up issuer) and the statement's own. It returns a new slice on every
// call.
func StatementAttackTokens() []BadToken { return slices.Clone(statementTokens.attacks) }

// StatementParams describes a software_statement to mint. AccountID and
// OrderID are required: a statement without them is not one Gemini
// Enterprise sends, so StatementToken panics rather than invent them (use
// Bad, Extra or Omit to mint one that lacks them on purpose).
type StatementParams struct {
	AccountID    string   // sub
	OrderID      string   // google.order
	Audience     string   // aud: the agent card's provider.url, used as given
	RedirectURIs []string // auth_app_redirect_uris; nil: GeminiEnterpriseRedirectURIs
	Bad          BadToken // an attack kind from StatementAttackTokens; "" for a good token

	// Issuer is iss; "" = AgentspaceIssuer. Keys are the agentspace keys
	// whatever it says.
	Issuer string
	// IssuedAt is iat (zero = the emulator clock's now); ExpiresAt is exp
	// (zero = IssuedAt + StatementTokenLifetime).
	IssuedAt, ExpiresAt time.Time
	// Extra claims are added last and override the ones above; Omit lists
	// claims to leave out, e.g. "auth_app_redirect_uris".
	Extra map[string]any
	Omit  []string
}

// StatementToken mints a software_statement signed as Gemini Enterprise
// (cloud-agentspace) signs it: RS256 with a kid, iss AgentspaceIssuer, aud,
// sub the account, iat now (emulator clock), exp iat+StatementTokenLifetime,
// "google": {"order": OrderID} and auth_app_redirect_uris. p.Bad, Extra and
// Omit make it wrong on purpose.
//
// StatementToken panics if AccountID or OrderID is empty, if p.Bad does not
// apply to statements, or if signing fails: mistakes of the test, not
// outcomes to handle.
func (s *Server) StatementToken(p StatementParams) string {
	return mustToken(s.statement.mintStatement(p))
}

// StatementCertsURL is where the emulator serves the agentspace signing
// keys ({kid: PEM certificate}): verify.Config.StatementCertsURL in tests.
func (s *Server) StatementCertsURL() string { return s.statement.baseURL + statementCertPath }

// RotateStatementKey makes a new statement signing key. Statements minted
// afterwards carry its kid; StatementCertsURL serves the new and the
// previous key.
func (s *Server) RotateStatementKey() error {
	_, err := s.statement.ring.rotate()
	return err
}

func (i *issuer) mintStatement(p StatementParams) (string, error) {
	if p.AccountID == "" || p.OrderID == "" {
		return "", errors.New("marketplacetest: StatementToken: AccountID and OrderID are required")
	}
	uris := p.RedirectURIs
	if uris == nil {
		uris = GeminiEnterpriseRedirectURIs()
	}
	extra := map[string]any{"auth_app_redirect_uris": slices.Clone(uris)}
	maps.Copy(extra, p.Extra)
	return i.mint(TokenParams{
		Subject: p.AccountID, Audience: p.Audience, Issuer: p.Issuer,
		IssuedAt: p.IssuedAt, ExpiresAt: p.ExpiresAt, Bad: p.Bad,
		Google: map[string]any{"order": p.OrderID},
		Extra:  extra, Omit: p.Omit,
	})
}

func statementClaims(_ *issuer, p TokenParams, iat, exp time.Time) jwt.MapClaims {
	sub := p.Subject
	if p.EmptySubject {
		sub = ""
	}
	return jwt.MapClaims{
		"iss":    p.Issuer,
		"iat":    iat.Unix(),
		"exp":    exp.Unix(),
		"aud":    p.Audience,
		"sub":    sub,
		"google": p.Google,
	}
}

// statementAttack applies the statement-only attack kinds.
func statementAttack(kind BadToken, p *TokenParams) {
	redirect := func(uris ...string) {
		p.Extra = withClaims(p.Extra, map[string]any{"auth_app_redirect_uris": uris})
	}
	const ge = "https://vertexaisearch.cloud.google.com/oauth-redirect"
	switch kind {
	case BadTokenNoOrder:
		p.Google = map[string]any{}
	case BadTokenEmptyOrder:
		p.Google = map[string]any{"order": ""}
	case BadTokenNumericOrder:
		p.Google = map[string]any{"order": 4242}
	case BadTokenHTTPRedirectURI:
		redirect(ge, "http://vertexaisearch.cloud.google.com/oauth-redirect")
	case BadTokenRedirectURIFragment:
		redirect(ge + "#attacker")
	case BadTokenRelativeRedirectURI:
		redirect("/oauth-redirect")
	case BadTokenRedirectURIUserinfo:
		redirect("https://vertexaisearch.cloud.google.com@attacker.example.com/oauth-redirect")
	case BadTokenTooManyRedirectURIs:
		uris := make([]string, TooManyRedirectURIs)
		for n := range uris {
			uris[n] = ge + "?n=" + strconv.Itoa(n)
		}
		redirect(uris...)
	case BadTokenTestIssuer:
		p.Issuer = TestStatementIssuer
	}
}

func (i *issuer) statementRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET "+statementCertPath, redirecting(&i.redirect, i.attackerCertsURL, func(w http.ResponseWriter, r *http.Request) {
		keys, err := i.ring.published()
		serveCertMap(w, keys, err)
	}))
	mux.HandleFunc("GET "+attackerStatementCertPath, func(w http.ResponseWriter, r *http.Request) {
		k, err := i.ring.foreignKey()
		serveCertMap(w, []*signingKey{k}, err)
	})
}
