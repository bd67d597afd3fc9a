// Package agent sells an A2A agent through Cloud Marketplace: Dynamic
// Client Registration for Gemini Enterprise (one OAuth client per order),
// the order's lifecycle (its client revoked when the entitlement ends), and
// the identity of each request (which order, entitlement and account).
//
// # Wiring
//
// A Registry needs a Procurement client (live reads), a Store for orders
// (memstore, sqlitestore and pgstore implement it beside
// marketplace.Store), a verify.StatementVerifier whose audience is the
// agent card's provider.url, the app's IdentityProvider, and a 32-byte
// SecretKey. Give the Processor Registry.Handler(yourHandler), so that
// ended orders lose their clients, then Attach the Processor to the
// Registry (it reads the stored entitlements through it):
//
//	reg, err := agent.New(agent.Config{...})
//	proc, err := marketplace.New(store, client, reg.Handler(app), cfg)
//	reg.Attach(proc)
//
// Serve DCRHandler at the URL the agent card's DCR extension names
// (params.target_url).
//
// # Registration
//
// Gemini Enterprise POSTs {"software_statement": "<JWT>"} to the DCR
// endpoint. The endpoint verifies the statement, then checks with a live
// Procurement read that the account (the statement's sub) is
// ACCOUNT_ACTIVE, and that the order (google.order) has a usable
// entitlement, and answers with the order's client:
//
//	201 {"client_id": "...", "client_secret": "...", "client_id_issued_at": 1700000000, "client_secret_expires_at": 0}
//
// with Cache-Control: no-store and Pragma: no-cache. Registering an order
// again returns the same client and secret (Gemini Enterprise may register
// several times per order), so the secret is kept sealed with AES-256-GCM
// under SecretKey, the order id as additional data, never hashed and never
// in plain text; it is never logged, nor is the statement. Of concurrent
// first registrations, the Store lets one insert; the others delete the
// client they created at the identity provider and answer with the
// winner's. A new order's entitlement is read once more after the order is
// stored, so that a cancellation processed while its client was being
// created (whose callback found no order to revoke) revokes it all the
// same. Errors are RFC 7591's 400 {"error", "error_description"} with
// invalid_software_statement (body or statement bad; the description names
// the verifier's reason), unapproved_software_statement (account or order
// not active, order of another account, order revoked),
// invalid_redirect_uri (the identity provider refused the client with
// ErrRefused, or the statement has no auth_app_redirect_uris), and 500
// server_error for transient failures; 405 for other methods than POST.
//
// # Accounts without a sign-up page
//
// Registration requires a usable entitlement. A SaaS listing's account has
// its "signup" approval granted when the customer signs up on the vendor's
// page (marketplace.Processor.CompleteSignup); until then the Processor
// parks its entitlements. An agent listing without a sign-up page (the
// public agents have none) therefore leaves the entitlements parked,
// waiting for a sign-up that never comes, and every registration is
// refused unapproved_software_statement. Either set
// Config.ApproveAccounts, which calls Processor.CompleteSignup (with the
// account id as VendorUserID) at the account's first registration, whose
// statement Google signed; or have Google approve accounts itself
// (auto-approval in Producer Portal); or call CompleteSignup from your own
// onboarding with your id for the customer.
//
// # Identifying requests
//
// Middleware identifies a request by its bearer token only (the app's
// TokenChecker gives the client id, the client its order). A
// software_statement that Gemini Enterprise may put in the A2A request
// metadata is not read by the Middleware, which does not parse the body:
// the agent code verifies it by calling Registry.IdentifyStatement, and
// compares its order with CallerFrom's, as examples/ai-agent does. An
// IdentifyStatement error whose verify.TokenError is Retryable
// (ErrKeysUnavailable), or that is not one of the refusals it documents,
// is a failure to check, not a refusal: answer an internal error.
//
// A request whose order registered before Pub/Sub told the Processor of
// its entitlement is served from a live Procurement read of the
// entitlement, as registration does.
//
// # SecretKey
//
// Client secrets are sealed under Config.SecretKey and must be opened for
// every later registration of their order, so the key cannot be rotated:
// there is no second key to open old secrets with. Under another key,
// every existing order's re-registration fails with server_error (the
// secret cannot be opened), while the tokens already issued keep working.
// Keep the key in a secret store for the life of the orders; if it must
// change, delete the orders' clients at the identity provider and their
// rows in the Store, so that Gemini Enterprise's next registration creates
// new clients.
//
// # What is observed and what is inferred
//
// Nothing here is documented by Google beyond the agent card; the DCR
// contract is what two public agents (Red Hat's lightspeed agent and a
// sample agent on GitHub) do, and some of it is guessed. Each uncertain
// point is a choice with a safe default, configurable where it matters:
//
//   - Success status: 201, as RFC 7591 and Red Hat's agent (the sample
//     answers 200): Config.SuccessStatus.
//   - Which entitlement states may register and be served: by default
//     ACTIVE, PENDING_PLAN_CHANGE, PENDING_PLAN_CHANGE_APPROVAL and
//     PENDING_CANCELLATION (DefaultUsableStates: the customer pays until a
//     cancellation takes effect); Red Hat's agent accepts ACTIVE only,
//     which refuses paying customers with a pending change.
//     Config.UsableStates.
//   - Order and entitlement: observed equal, not documented so. The order's
//     entitlement is the stored entitlement with the order's id when it is
//     usable; else entitlements.get of that id if its orderId matches;
//     else the account's entitlements listed and matched on orderId. The
//     live read also means a registration that arrives before the Pub/Sub
//     message is not refused (inferred to happen).
//   - A statement without auth_app_redirect_uris (never observed) is
//     refused: a client without redirect URIs cannot serve the
//     authorization code flow.
//   - Whether Google ever rotates or deletes a client is unknown: secrets
//     never expire (client_secret_expires_at 0, as observed), and clients
//     are deleted only by the lifecycle below.
//
// # Lifecycle
//
// Registry.Handler wraps the app's marketplace.Handler. When an
// entitlement is cancelled (OnEntitlementCancelled) or deleted
// (OnEntitlementDeleted), the clients of its orders are deleted at the
// identity provider and the orders marked revoked, then the app's callback
// runs. A pending cancellation keeps the client until the term ends.
// Identity provider refusals (ErrRefused, events.Permanent) are logged and
// dropped, as Red Hat's agent does with 4xx; other errors fail the
// callback so that the Processor redelivers it. Each order is revoked once.
// OnAccountDeleted deletes the account's remaining clients and its orders
// (the purge).
//
// # Metrics
//
// With Config.MeterProvider set: gcpmarketplace.agent.registrations, DCR
// requests by "result" (created, existing, or the error code answered),
// and gcpmarketplace.agent.revocations, orders by "cause"
// (entitlement_ended, account_deleted).
package agent
