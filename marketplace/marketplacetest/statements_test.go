package marketplacetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	statementTestAudience = "https://acme.example"
	statementTestAccount  = "acct-1"
	statementTestOrder    = "order-1"
)

func statementVerifier(s *Server) strictVerifier {
	return strictVerifier{issuer: AgentspaceIssuer, audience: statementTestAudience, keys: certMapKeys(s.StatementCertsURL()), now: s.Clock().Now}
}

func goodStatement(p StatementParams) StatementParams {
	if p.AccountID == "" {
		p.AccountID = statementTestAccount
	}
	if p.OrderID == "" {
		p.OrderID = statementTestOrder
	}
	if p.Audience == "" {
		p.Audience = statementTestAudience
	}
	return p
}

func TestStatementTokens(t *testing.T) {
	t.Parallel()
	s := New(t)
	verifier := statementVerifier(s)

	t.Run("genuine statement verifies against the agentspace keys", func(t *testing.T) {
		tok := s.StatementToken(goodStatement(StatementParams{}))
		claims, err := verifier.verify(t, tok)
		require.NoError(t, err)
		now := s.Clock().Now().Unix()
		assert.Equal(t, AgentspaceIssuer, claims["iss"])
		assert.Equal(t, statementTestAudience, claims["aud"])
		assert.Equal(t, statementTestAccount, claims["sub"])
		assert.EqualValues(t, now, claims["iat"])
		assert.EqualValues(t, now+300, claims["exp"])
		assert.Equal(t, map[string]any{"order": statementTestOrder}, claims["google"])
		assert.Equal(t, []any{
			"https://vertexaisearch.cloud.google.com/oauth-redirect",
			"https://vertexaisearch.cloud.google.com/static/oauth/oauth.html",
		}, claims["auth_app_redirect_uris"])
		header := decodeSegment(t, tok, 0)
		assert.Equal(t, "RS256", header["alg"])
		assert.Len(t, header["kid"], 40)
		// Its own key: neither the sign-up nor the push endpoint serves it.
		assert.NotContains(t, certMapKeys(s.CertsURL())(t), header["kid"])
		assert.NotContains(t, jwksKeys(s.PushJWKSURL())(t), header["kid"])
	})

	t.Run("fields", func(t *testing.T) {
		iat := s.Clock().Now().Add(-time.Minute)
		tok := s.StatementToken(goodStatement(StatementParams{
			RedirectURIs: []string{"https://a.example/cb"}, Issuer: TestStatementIssuer,
			IssuedAt: iat, ExpiresAt: iat.Add(time.Hour),
			Extra: map[string]any{"jti": "x"}, Omit: []string{"aud"},
		}))
		claims := decodeSegment(t, tok, 1)
		assert.Equal(t, TestStatementIssuer, claims["iss"])
		assert.Equal(t, []any{"https://a.example/cb"}, claims["auth_app_redirect_uris"])
		assert.EqualValues(t, iat.Unix()+3600, claims["exp"])
		assert.Equal(t, "x", claims["jti"])
		assert.NotContains(t, claims, "aud")

		tok = s.StatementToken(goodStatement(StatementParams{RedirectURIs: []string{}}))
		assert.Equal(t, []any{}, decodeSegment(t, tok, 1)["auth_app_redirect_uris"])
	})

	t.Run("account and order are required", func(t *testing.T) {
		const msg = "marketplacetest: StatementToken: AccountID and OrderID are required"
		require.PanicsWithError(t, msg, func() { s.StatementToken(StatementParams{AccountID: "a", Audience: "x"}) })
		require.PanicsWithError(t, msg, func() { s.StatementToken(StatementParams{OrderID: "o", Audience: "x"}) })
	})

	t.Run("key rotation keeps the previous key published", func(t *testing.T) {
		old := decodeSegment(t, s.StatementToken(goodStatement(StatementParams{})), 0)["kid"]
		require.NoError(t, s.RotateStatementKey())
		tok := s.StatementToken(goodStatement(StatementParams{}))
		assert.NotEqual(t, old, decodeSegment(t, tok, 0)["kid"])
		assert.Len(t, certMapKeys(s.StatementCertsURL())(t), 2)
		_, err := verifier.verify(t, tok)
		require.NoError(t, err)
	})
}

func TestStatementAttackTokens(t *testing.T) {
	t.Parallel()
	s := New(t)
	verifier := statementVerifier(s)

	// The sign-up token's kinds are refused by a strict verifier as they are
	// for sign-up tokens.
	shared := map[BadToken]error{
		BadTokenAlgNone: errAlg, BadTokenHS256PublicKey: errAlg, BadTokenWrongIssuer: errIssuer,
		BadTokenAttackerIssuer: errIssuer, BadTokenWrongAudience: errAudience, BadTokenExpired: errExpired,
		BadTokenIssuedInFuture: errIssuedInFuture, BadTokenEmptySubject: errSubject, BadTokenUnknownKeyID: errUnknownKid,
		BadTokenForeignKey: errSignature, BadTokenTamperedPayload: errSignature, BadTokenTruncated: errSignature,
		BadTokenOversize: errTooLarge, BadTokenCritHeader: errMalformed, BadTokenSignatureNewline: errMalformed,
		BadTokenSignatureLowBits: errMalformed, BadTokenLongLifetime: errLifetime, BadTokenStringExpiry: errMalformed,
		BadTokenSubjectPath: errSubject, BadTokenTestIssuer: errIssuer,
	}
	// The statement's own kinds are genuinely signed; only a claim is wrong.
	ownClaims := map[BadToken]func(t *testing.T, c map[string]any){
		BadTokenNoOrder:      func(t *testing.T, c map[string]any) { assert.Equal(t, map[string]any{}, c["google"]) },
		BadTokenEmptyOrder:   func(t *testing.T, c map[string]any) { assert.Equal(t, map[string]any{"order": ""}, c["google"]) },
		BadTokenNumericOrder: func(t *testing.T, c map[string]any) { assert.Equal(t, map[string]any{"order": 4242.0}, c["google"]) },
		BadTokenHTTPRedirectURI: func(t *testing.T, c map[string]any) {
			assert.Contains(t, c["auth_app_redirect_uris"], "http://vertexaisearch.cloud.google.com/oauth-redirect")
		},
		BadTokenRedirectURIFragment: func(t *testing.T, c map[string]any) {
			assert.Equal(t, []any{"https://vertexaisearch.cloud.google.com/oauth-redirect#attacker"}, c["auth_app_redirect_uris"])
		},
		BadTokenRelativeRedirectURI: func(t *testing.T, c map[string]any) {
			assert.Equal(t, []any{"/oauth-redirect"}, c["auth_app_redirect_uris"])
		},
		BadTokenRedirectURIUserinfo: func(t *testing.T, c map[string]any) {
			assert.Contains(t, c["auth_app_redirect_uris"].([]any)[0], "@attacker.example.com/")
		},
		BadTokenTooManyRedirectURIs: func(t *testing.T, c map[string]any) {
			assert.Len(t, c["auth_app_redirect_uris"], TooManyRedirectURIs)
		},
	}
	require.Len(t, StatementAttackTokens(), len(shared)+len(ownClaims))
	for _, kind := range StatementAttackTokens() {
		t.Run("bad/"+string(kind), func(t *testing.T) {
			tok := s.StatementToken(goodStatement(StatementParams{Bad: kind}))
			claims, err := verifier.verify(t, tok)
			if want, ok := shared[kind]; ok {
				require.ErrorIs(t, err, want)
				return
			}
			require.NoError(t, err)
			check, ok := ownClaims[kind]
			require.True(t, ok, "no check for %s", kind)
			check(t, claims)
		})
	}

	t.Run("the wrong issuer is the sign-up issuer", func(t *testing.T) {
		tok := s.StatementToken(goodStatement(StatementParams{Bad: BadTokenWrongIssuer}))
		assert.Equal(t, SignupIssuer, decodeSegment(t, tok, 1)["iss"])
	})
	t.Run("the attacker issuer serves the foreign key", func(t *testing.T) {
		tok := s.StatementToken(goodStatement(StatementParams{Bad: BadTokenAttackerIssuer}))
		iss := decodeSegment(t, tok, 1)["iss"].(string)
		assert.Contains(t, certMapKeys(iss)(t), decodeSegment(t, tok, 0)["kid"])
		s.RedirectKeysToAttacker(true)
		defer s.RedirectKeysToAttacker(false)
		assert.Contains(t, certMapKeys(s.StatementCertsURL())(t), decodeSegment(t, tok, 0)["kid"])
	})
	t.Run("bad kinds of other tokens are refused", func(t *testing.T) {
		require.PanicsWithError(t, `marketplacetest: bad token kind "wrong-email" does not apply to software-statement tokens`, func() {
			s.StatementToken(goodStatement(StatementParams{Bad: BadTokenWrongEmail}))
		})
		require.Panics(t, func() { s.SignupToken(TokenParams{Subject: "a", Audience: "x", Bad: BadTokenNoOrder}) })
	})
}
