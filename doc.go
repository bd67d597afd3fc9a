// Package gcpmarketplace is the root of a Go SDK for selling a SaaS product
// through Google Cloud Marketplace. The root package holds one type,
// Runtime: the logger, meter provider and clock that every package's Config
// embeds, so they are given once. Import the package for the job at hand.
//
// Marketplace tells a vendor about its customers through Pub/Sub messages
// (an account was created, a plan was chosen, a plan change was requested,
// the entitlement was cancelled, the account was deleted). The vendor reacts
// through the Partner Procurement API (approve the account once the customer
// signed up, approve or reject entitlements and plan changes, post a message
// to the customer) and, for usage-based plans, reports usage every hour to
// Service Control. Each step has rules that are easy to get wrong: messages
// arrive twice and out of order, an entitlement cannot be approved before the
// account's sign-up is, a plan change must be approved with the plan the API
// holds now, a retried usage report must not bill twice.
//
// # Packages
//
//   - events: decodes every Pub/Sub message Google sends into a typed Go
//     value. Standard library only.
//   - procurement: a Partner Procurement API client with typed resources,
//     errors usable with errors.Is, retries, and idempotent approval helpers
//     that re-read state before acting.
//   - usage: reports metered usage to Service Control, persisted before it
//     is sent and sent with deterministic operation ids, so that none is lost
//     and none is billed twice.
//   - marketplace: the Handler your app writes (one callback per change,
//     its argument the re-read state), the Processor (exactly-once
//     callbacks, approval policies, parking until sign-up, pull and push
//     transports, Run and Close, the operator API, Reconcile) and the Store
//     it keeps its state in, with memstore (tests), sqlitestore (embedded
//     default), pgstore (PostgreSQL, several replicas) and storetest (the
//     contract every Store passes).
//   - marketplace/verify: verifies Google's sign-up JWT and push OIDC
//     tokens. marketplace/signup: the sign-up URL (each token used once,
//     then a signed session cookie). marketplace/doctor: checks a
//     configuration against Google's APIs.
//   - usage/ledger: the contract a usage ledger (a Store) implements.
//   - marketplace/marketplacetest: an offline Marketplace (Procurement,
//     Service Control, Pub/Sub through pstest, sign-up and push tokens,
//     faults, a manual clock) that the real Google clients talk to. Run it
//     standalone with "go run ./examples/emulator".
//
// README.md has the status table.
//
// # A short example
//
// Write the callbacks your app needs; each gets a *marketplace.Change
// holding the entitlement as just re-read from the Procurement API and the
// customer you linked at sign-up:
//
//	type app struct{ marketplace.HandlerDefaults }
//
//	func (app) OnEntitlementActive(ctx context.Context, c *marketplace.Change) error {
//		// Provision plan c.Entitlement.Plan for your user c.Linked.VendorUserID.
//		return nil
//	}
//
// The Processor calls them once per change, whatever the order and number
// of the Pub/Sub messages:
//
//	proc, err := marketplace.New(store, client, app{}, nil)
//
// Package events only decodes a message into a typed event, for code that
// reads messages itself:
//
//	ev, err := events.Decode(msg.Data)
//	if err != nil {
//		return err // malformed: a *events.DecodeError
//	}
//	if e, ok := ev.(*events.EntitlementOfferAccepted); ok {
//		fmt.Println(e.Entitlement.ID, e.Entitlement.NewOfferStartTime)
//	}
package gcpmarketplace
