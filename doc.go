// Package gcpmarketplace is the root of a Go SDK for selling a SaaS product
// through Google Cloud Marketplace. The root package holds no code: import
// the package for the job at hand.
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
//     value and routes it to a per-event Handler. Standard library only.
//   - procurement: a Partner Procurement API client with typed resources,
//     errors usable with errors.Is, retries, and idempotent approval helpers
//     that re-read state before acting.
//   - usage: reports metered usage to Service Control, persisted before it
//     is sent and sent with deterministic operation ids, so that none is lost
//     and none is billed twice.
//   - marketplace: the Processor (exactly-once callbacks, approval policies,
//     parking until sign-up, pull and push transports, sign-up verification,
//     Reconcile) and the Store it keeps its state in, with memstore (tests),
//     sqlitestore (embedded default), pgstore (PostgreSQL, several replicas)
//     and storetest (the contract every Store passes).
//   - marketplace/marketplacetest: an offline Marketplace (Procurement,
//     Service Control, Pub/Sub through pstest, sign-up and push tokens,
//     faults, a manual clock) that the real Google clients talk to. Run it
//     standalone with "go run ./examples/emulator".
//
// README.md has the status table.
//
// # A short example
//
// Decode a Pub/Sub message and route it to the callbacks an app cares about:
//
//	type app struct{ events.HandlerDefaults }
//
//	func (app) OnEntitlementActive(ctx context.Context, e *events.EntitlementActive) error {
//		// Provision the customer's service.
//		return nil
//	}
//
//	ev, err := events.Decode(msg.Data)
//	if err != nil {
//		return err // malformed: a *events.DecodeError
//	}
//	return events.Dispatch(ctx, app{}, ev)
package gcpmarketplace
