// Package marketplace integrates a SaaS product with Google Cloud
// Marketplace: it turns Google's at-least-once, unordered Pub/Sub
// notifications into exactly-once, in-order effects on your application,
// and drives the Partner Procurement API the way Google's documentation
// requires (approve sign-ups, approve or reject entitlements and plan
// changes, purge deleted customers).
//
// A Processor assembles a procurement.Client, a Store (memstore,
// sqlitestore, pgstore) and your Handler:
//
//	rt := gcpmarketplace.Runtime{Logger: logger}                 // shared by every Config
//	proc, err := marketplace.New(store, client, handler,
//		&marketplace.Config{Runtime: rt})                          // nil Policy: approve automatically
//	defer proc.Close()
//	go proc.Run(ctx, pubsubClient.Subscriber("marketplace"))      // reconcile, pull, prune
//	mux.Handle("/pubsub", proc.PushHandler(pushVerifier))         // or push (a *verify.PushVerifier), with proc.Run(ctx, nil)
//	sessions, err := signup.NewSessions(signupVerifier, store, sessionKeys, &signup.Config{Runtime: rt})
//	mux.Handle("POST /signup", sessions.Begin("/signup/form"))     // Google's redirect
//	mux.Handle("/signup/form", sessions.Handler(yourSignupPage))   // then CompleteSignup
//
// # The pipeline
//
// Every message, whatever its transport, goes through HandleMessage:
//
//  1. Decode (events.Decode). An undecodable message is recorded as
//     poison in the Store (Processor.Poison) with the reason, and acknowledged.
//  2. Serialise: work on one entitlement or account runs one at a time
//     (an in-process keyed lock, plus the Store's KeyLocker when several
//     processes share the Store).
//  3. Skip the message if its eventId was processed already.
//  4. Re-read the entitlement or account from the Procurement API: the
//     message is only a hint. A 404 means the resource was deleted.
//  5. Compare with the stored state: nothing newer (updateTime) means no
//     effects.
//  6. Apply the Marketplace rule (below), through the idempotent
//     procurement helpers. Before it approves or rejects anything at
//     Google, the callbacks for the changes observed so far run and the
//     re-read state is committed, without the eventId.
//  7. Run the app's callbacks for the changes observed (or, after an
//     approval or rejection, for the changes it caused).
//  8. Commit, in one Store transaction: the eventId, the new local state,
//     the parking and approval-queue changes. No transaction is held across
//     a network call.
//  9. Acknowledge. Any failure before the commit leaves the message
//     unacknowledged (nack), and Pub/Sub redelivers it.
//
// A callback error marked with events.Permanent, an invalid resource id or
// (with Config.PoisonAfter) too many failed attempts make the message poison:
// recorded with the reason and acknowledged, never a hot loop; Redrive runs
// it again once the cause is fixed. A panicking
// callback is recovered as a *PanicError and the message is redelivered.
// An eventType this SDK does not know goes to the handler's OnUnknown, is
// logged, and is acknowledged.
//
// # The rules
//
//   - An entitlement waiting for approval (ENTITLEMENT_ACTIVATION_REQUESTED,
//     after ENTITLEMENT_CREATION_REQUESTED): if its account's sign-up is
//     approved, the Policy decides (approve; reject with a reason; hold in
//     the Store's approval queue for an operator, showing messageToUser to
//     the customer). Otherwise it is parked until the account signs up
//     (CompleteSignup approves it then) or Reconcile finds the account
//     approved. Approving before sign-up would fail with Google's
//     "Precondition check failed".
//   - A plan change waiting for approval (ENTITLEMENT_PLAN_CHANGE_REQUESTED):
//     the Policy decides; approval sends the pending plan just re-read,
//     never one from the message.
//   - ENTITLEMENT_OFFER_ACCEPTED (automatic approval): nothing to approve;
//     the app hears of the offer and its start time, then of the
//     activation when Google activates it (ENTITLEMENT_ACTIVE at
//     newOfferStartTime).
//   - Every other event: local state follows the re-read resource.
//   - ACCOUNT_DELETED (once the API no longer has the account): the
//     account's entitlements are settled (turn-off callbacks), then the
//     handler's OnAccountDeleted runs (delete the customer's data: its
//     Change's Linked.VendorUserID), then the account's local
//     state is removed. Exactly once, however often it is delivered.
//
// Policies: a nil Config.Policy approves automatically; ManualApproval(message)
// sends everything to the queue (PendingApprovals, Approve, Reject); or any
// PolicyFunc, whose Decision.Outcome is OutcomeApproved, OutcomeRejected or
// OutcomeQueued.
//
// # Callbacks follow changes, not messages
//
// Messages arrive late, twice and out of order, so the callback that runs
// is chosen by the transition between the stored state and the re-read
// resource (and then the state the processor's own approval produced),
// not by the message's eventType. A late ENTITLEMENT_ACTIVE after a
// cancellation provisions nothing; an ENTITLEMENT_CREATION_REQUESTED that
// arrives after the entitlement became active still leads to exactly one
// OnEntitlementActive. Each callback fires once per logical change; when
// several changes are observed at once they fire in the order of the rows:
//
//	from (stored)                  to (re-read)                       callback
//	none                           ACTIVATION_REQUESTED               OnEntitlementCreationRequested
//	none / ACTIVATION_REQUESTED    ACTIVATION_REQUESTED, approved,    OnEntitlementOfferAccepted ("provision at
//	                               waiting for newOfferStartTime        c.Entitlement.NewOfferStartTime")
//	none / ACTIVATION_REQUESTED    ACTIVE or another usable state     OnEntitlementActive ("provision")
//	usable, plan p                 usable, plan q (or, ending a       OnEntitlementPlanChanged ("change plan")
//	                               pending change, another offer)
//	PENDING_PLAN_CHANGE(_APPROVAL) usable, same plan and offer        OnEntitlementPlanChangeCancelled (rejected or withdrawn)
//	PENDING_CANCELLATION           ACTIVE (or another usable state)   OnEntitlementCancellationReverted
//	usable                         PENDING_PLAN_CHANGE_APPROVAL       OnEntitlementPlanChangeRequested (informational;
//	                               (or another plan asked)              the Policy decides)
//	usable                         PENDING_CANCELLATION               OnEntitlementPendingCancellation ("stop at term end")
//	any but CANCELLED              CANCELLED                          OnEntitlementCancelled ("turn off")
//	any                            deleted (404)                      OnEntitlementCancelled if not yet cancelled,
//	                                                                    then OnEntitlementDeleted
//	none                           CANCELLED                          nothing (never provisioned here)
//	account unknown                account exists                     OnAccountActive (for any of the three account
//	                                                                    message shapes, or CompleteSignup)
//	account known                  account deleted (404)              OnAccountDeleted ("purge")
//
// "Usable" is ACTIVE, PENDING_PLAN_CHANGE_APPROVAL, PENDING_PLAN_CHANGE or
// PENDING_CANCELLATION. For example an entitlement first seen pending
// cancellation gets OnEntitlementActive then
// OnEntitlementPendingCancellation. After the processor's own approval or
// rejection, the same table runs again from the state read to the state
// that produced (a first-seen request approved at once gets
// OnEntitlementCreationRequested then OnEntitlementActive). Three events
// change nothing the processor stores and fire their callback once per
// eventId instead, after the others: ENTITLEMENT_RENEWED and
// ENTITLEMENT_OFFER_ENDED while the entitlement is usable, and
// ENTITLEMENT_CANCELLING while it is not yet cancelled (when Google
// cancels at once, the re-read already says CANCELLED and
// OnEntitlementCancelled covers it). Account creation is reported as
// OnAccountActive whichever message revealed it; an account is "known"
// when it or one of its entitlements is stored.
//
// This holds when the process dies between its own approval or rejection
// and the commit that follows, whatever triggered it (a message,
// CompleteSignup, Approve, Reject, Reconcile): the request was committed
// before Google's change (step 6), so whatever settles the entitlement next
// (the redelivery, Google's notification of the change, Reconcile) fires
// only what followed it, such as OnEntitlementActive, and
// OnEntitlementCreationRequested or OnEntitlementPlanChangeRequested is
// neither lost nor repeated.
//
// Each callback gets a *Change holding what to act on, never a message
// to interpret: Change.Entitlement is the entitlement as just read (never
// nil in entitlement callbacks; after a deletion, the last state read),
// Change.Previous the stored state before the change, Change.Account the
// account when it was read, Change.Linked the stored account with your
// VendorUserID, and Change.Trigger the message that led there (nil for
// CompleteSignup, Reconcile, Approve and Reject).
//
// # The Handler contract, as seen from this package
//
//   - Return nil once the effect is done and durable. The processor then
//     commits and acknowledges.
//   - Return an error to have the message redelivered; wrap it with
//     events.Permanent to give up (poison, acknowledged).
//   - Callbacks are at-least-once when something fails: a callback runs
//     again if a later callback for the same message, or the commit,
//     fails. Make them idempotent (key them on the entitlement id and the
//     state reached).
//   - Callbacks for one entitlement or account never run concurrently;
//     callbacks for different ones may.
//   - ctx is cancelled when the transport stops (Run's context or Close, the
//     push request's); return promptly with its error. Work whose callbacks
//     all returned before a shutdown is still committed.
//
// # Sign-up
//
// Google sends the customer to your sign-up URL with a signed token, valid
// for about five minutes. Package signup's Sessions verifies it there
// (verify.SignupVerifier), once, records it as used (a copy of it is
// refused), and carries the verified claims to your form in a signed
// cookie lasting an hour. Create
// or find the customer in your system, then call CompleteSignup with the
// session's account id and your user id: it
// approves the account's sign-up at Google, links the account in the Store,
// and approves (or queues, per Policy) every entitlement waiting for the
// sign-up, including those whose notification has not arrived yet.
//
// # Transports
//
// Run with a Subscriber runs the pull transport
// (cloud.google.com/go/pubsub/v2) with flow control (Config.Concurrency)
// and several streams (Config.ReceiveStreams). PushHandler serves a push
// subscription (run Run with a nil Subscriber beside it, for the reconcile
// at start and the pruning): it verifies the Google-signed OIDC token
// (verify.PushVerifier)
// before reading the body and answers 2xx only after the commit. Both
// acknowledge nothing unprocessed. Any other transport can call
// HandleMessage. Whatever the transport, at most Config.Concurrency
// messages are processed at once; HandleMessage waits for room beyond that.
//
// # Running and operating
//
// Run owns the running life: Reconcile at start (what changed while no
// processor ran), receiving, pruning old event ids. It returns when its
// context ends or Close is called, once the messages in flight are settled;
// Close also unregisters the metric callbacks, so Processors can come and
// go on one MeterProvider. WaitIdle waits until no message is in flight
// (tests, graceful shutdown of a custom transport).
//
// Operators read and act through the Processor, never a Store transaction
// (package ops serves all of it as a JSON API and a web console): Accounts,
// Account, Entitlements and Entitlement (the stored state), History (each
// committed transition of an entitlement: callback, states, plans, source,
// written in the commit's transaction and deleted with the account),
// Poison, Redrive and Dismiss (messages set aside), Parked (entitlements
// waiting for sign-up), PendingApprovals, Approve and Reject (the manual
// queue), Reconcile (one Result per resource changed), Ping (store and
// Procurement API reachable) and Health (how receiving is going, from
// memory), the last two for readiness checks.
//
// # Usage-based products
//
// With Config.Usage, entitlements that have a usageReportingId are
// registered with the usage.Reporter as they change (before the commit):
// usage is accepted once they are usable and refused after their
// cancellation or the end of a pending cancellation's term.
//
// # Observability
//
// Logs (log/slog, Config.Logger; slog.Default() without it) carry event_id,
// event_type, account_id and entitlement_id, each key once, and never a
// payload or a token: a malformed message is identified by its length and
// SHA-256 prefix (events.Fingerprint). Metrics use the OpenTelemetry metric
// API (Config.MeterProvider; no-ops without one):
// gcpmarketplace.events.received, .processed, .duplicate, .stale,
// .not_found, .poison and .failed counters by event_type, and the
// gcpmarketplace.events.duration histogram (seconds, buckets from 1 ms to
// 60 s) by event_type and outcome.
package marketplace
