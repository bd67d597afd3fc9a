// Package verify checks the tokens Google sends a Marketplace integration,
// before anything in them is used (verify, then decode, as stripe-go's
// webhook package does):
//
//   - the sign-up JWT (x-gcp-marketplace-token) that Google posts to the
//     partner's sign-up URL when a customer finishes buying: SignupVerifier;
//   - the OIDC token that Pub/Sub puts in the Authorization header of push
//     deliveries to an authenticated push subscription: PushVerifier, which
//     marketplace.Processor.PushHandler takes;
//   - the software_statement that Gemini Enterprise sends an AI agent's
//     Dynamic Client Registration endpoint, naming the Marketplace order and
//     account: StatementVerifier, which package agent takes.
//
// All three run one RS256 verification core (strict base64url, alg RS256 only,
// no crit header, the issuer checked before any key is fetched, Google's
// keys cached and refreshed at a bounded rate and never through a redirect,
// numeric dates, a bounded lifetime, a sub shaped like an id). A refusal is
// a *TokenError whose Reason is one of the Err* constants.
//
// The three share no constant: each pins its own issuer and key URL, and a
// token of one kind never verifies as another.
//
// Configure them with a Config, which embeds the gcpmarketplace.Runtime
// (logger and clock) shared by every package of the SDK; a nil *Config
// means the defaults. The browser sign-up flow built on SignupVerifier is
// in package signup.
package verify
