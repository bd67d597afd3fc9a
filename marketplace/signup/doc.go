// Package signup serves a Marketplace SaaS product's sign-up URL: where
// Google sends the buyer's browser, with a sign-up JWT, when a purchase
// needs the vendor's sign-up.
//
// Sessions is the flow to use: Begin verifies the token once on arrival
// (with a verify.SignupVerifier), records it as used in the Store
// (UsedTokens, which memstore, sqlitestore and pgstore implement) so that a
// copy of it cannot start another sign-up, and carries the verified claims
// to the vendor's form in a short-lived signed cookie; Handler serves the
// form with that session, however long after the token expired. The form
// calls marketplace.Processor.CompleteSignup.
//
// Handler, the plain handler, verifies the token and calls the page at
// once, for pages that complete the sign-up in the same request.
//
// Configure both with a Config, which embeds the gcpmarketplace.Runtime
// (logger and clock) shared by every package of the SDK; a nil *Config
// means the defaults.
package signup
