// Package usage reports metered usage to Google Service Control for Cloud
// Marketplace SaaS products, so that no unit is ever lost or billed twice.
//
// It stands alone: a vendor with no other use for this SDK registers each
// usage-based entitlement (Register), records usage as it happens (Record)
// and runs the flush loop (Run). The marketplace package's processor calls
// Register itself when given the Reporter in its Config.
//
//	ledger, _ := sqlitestore.Open(ctx, "state.db")
//	r, _ := usage.New(ctx, "my-product.endpoints.my-provider.cloud.goog", ledger,
//		&usage.Config{Metrics: map[string]usage.MetricKind{"requests": usage.Int64}})
//	defer r.Close(ctx) // stops Run, flushes one last time
//	_ = r.Register(ctx, usage.Consumer{EntitlementID: id, UsageReportingID: urid})
//	go r.Run(ctx)
//	_ = r.Record(ctx, usage.Record{EntitlementID: id, Metric: "requests", Int64: 3})
//
// # The pipeline
//
// Record validates its input and adds it, in one ledger transaction, to an
// aggregate row keyed by (entitlement, window, metric, user labels): when it
// returns nil the usage is durable. Concurrent Records share commits
// (sqlitestore's group commit), so durability costs no throughput beyond
// the commit itself.
//
// Flush seals every closed window (one whose end is at least the seal grace,
// one minute by default, in the past), checks each window's operation with
// services.check under its own operation id and sends every sealed window
// that passed with services.report, many operations per call, each call at
// most Config.MaxRequestBytes on the wire (its protobuf size, on which
// Service Control states its 1 MB limit, not its JSON; 1,000,000 bytes by
// default, as "1MB" may mean 10^6; a call refused whole, 400 or 413, is
// halved to find the operation at fault). The ledger records each window as sent (Unknown) before the
// call and its outcome after it. Every window is in one state:
//
//   - Pending: sealed, not yet accepted; sent at the next flush.
//   - Unknown: sent, outcome not known (the call failed, timed out, or the
//     process died before recording the answer). Resent with the same
//     operation id until Google confirms it or its deadline passes.
//   - Reported: Google accepted it (the call succeeded and reportErrors did
//     not name it).
//   - Rejected: Google refused it permanently (a reportError such as
//     INVALID_ARGUMENT), with the reason; Retry puts it back.
//   - Expired: still Unknown past its deadline after at least 3 sends (so
//     a window sealed after its deadline, in catch-up, is sent 3 times),
//     or Unknown and running past an End learned after it was sent;
//     no longer resent on its own, surfaced through Backlog and
//     DeadlineAlert for an operator to reconcile with the billing export
//     and Settle or Retry.
//
// Per-operation reportErrors are handled one by one: UNAVAILABLE, INTERNAL,
// ABORTED and RESOURCE_EXHAUSTED leave the window Pending, and so do
// NOT_FOUND, PERMISSION_DENIED and UNAUTHENTICATED (as the same answers to
// the whole call do; IAM changes take a minute to apply); FAILED_PRECONDITION
// leaves it Pending and checks it again (its consumer is usually blocked);
// DEADLINE_EXCEEDED, UNKNOWN and an error without a status leave it Unknown;
// any other code rejects it. A whole-request 400 is split to isolate the bad
// operation. 429, 401, 403 and 404 answers mean nothing was applied
// (Pending); other failures are Unknown. Retries back off from 5 s to 5 min.
//
// # Design decisions
//
// Windows. Usage is aggregated in windows of Config.Window (one hour by default,
// aligned to the hour), contiguous per consumer: each window starts where
// the previous one ended, from the window of the first registration (or the
// consumer's Start, if later) to its End. Every window produces at least one
// operation: one per set of user labels with usage, or, for an hour without
// usage, one zero operation carrying every declared metric at 0. That is
// what Google's codelab does, keeps every reported interval within one hour
// and one month (a window spanning idle hours could straddle a month end and
// land on the wrong invoice), and makes the reporter's liveness visible:
// a gap in a consumer's reports is a bug, and the tests assert there is
// none. The cost is one small operation per idle consumer per hour (about
// 5,800 fit in one 1 MB request).
//
// Late records. A record whose window is already sealed is added to the
// consumer's first unsealed window (the frontier), so it is billed once, in
// its own, later operation; a sealed operation never changes. Every
// operation of a consumer thus covers a distinct interval, and the
// emulator's OverlappingUsage detector stays silent. The price is that such
// usage is billed up to one window later than it happened. After a
// cancellation there is no later window: a record for the final window
// arriving after it was sealed is refused with ErrWindowSealed (Google must
// never receive usage timestamped after the end). The final window [start,
// End) is sealed by the first flush after End plus the grace, not at the next
// window boundary: its deadline is an hour after End, so waiting for the
// boundary could leave a cancellation at 10:00:30 no time to retry a failed
// send. Usage from before End must therefore be recorded within the grace
// of the cancellation.
//
// Cancellations learned late. Google reports a cancellation after the fact
// (End is the entitlement's updateTime, in the past when the message
// arrives), so usage may have been recorded after End before it was known.
// The ledger keeps usage in one-minute buckets (shorter if the window is not
// a whole number of minutes) until it is sealed; at seal,
// buckets that start at or after End become a Rejected window, never sent,
// and only the usage of the minute that contains End can be billed past it.
//
// That protects only until the window is sealed, so a window is not sealed
// on the reporter's word alone. Before sealing, the Reporter asks its
// EndConfirmer (Config.EndConfirmer; *procurement.Client is one, and the
// marketplace Processor sets its own when given the Reporter) which of the
// consumers due have ended, according to Procurement itself: one filtered
// entitlements.list of the live entitlements per flush that has windows to
// seal (200 per call) and a GET for each consumer the listing leaves out. An
// end it learns is recorded as the consumer's End, so the window is sealed
// up to it. If Procurement cannot be read, the consumers wait, unsealed,
// for a later flush, however close their deadline: a window reported late
// can still be settled, usage billed after a cancellation can only be
// credited back. Config.OnDeadlineAlert is told when such a held
// window nears and passes its deadline (its Window has no operation id
// yet). A deleted entitlement's end is no longer readable: its registered
// End stands, and without one the consumer waits until Register sets it.
// SealHolders (HoldSealsWith) hold consumers too:
// the marketplace Processor holds an entitlement while a message about it
// is in flight or failed and awaits redelivery (per process; replicas rely
// on the confirmation). Without an EndConfirmer the Reporter seals blind,
// as before, and logs a warning at its first seal. An End learned after
// windows past it were sealed (Register, or the confirmation) is reported
// to Config.OnBilledAfterEnd and logged at Error, with the operation
// ids and values billed, so that the vendor can credit the customer; a
// sealed window past it that was not sent yet is rejected unsent, never
// billed (Service Control refuses usage after the end, and an interval
// that straddles it), even if the End is registered while a flush is
// about to send it: the flush re-reads the ends after marking its windows
// sent. A window sent with an unknown outcome that runs past an End
// learned afterwards is not resent: it goes to Expired, for an operator to
// reconcile. An End in effect (in the past) is never cleared nor moved
// later by Register; only an End still in the future (a pending
// cancellation, which the customer can revert) can be cleared.
//
// Operation ids. Each operation id is the UUIDv5 (OperationNamespace) of
// the entitlement id, the window start, the sorted metric names and the
// canonical user labels (see OperationID). services.check and
// services.report use the same id. Windows are sealed exactly once, so no
// sequence number is needed for late operations: they belong to another
// window. Deterministic ids mean a resend after an unknown outcome carries
// the same id, which is what lets Google deduplicate; whether it does is
// undocumented, so the window states above also bound resends to the
// reporting deadline.
//
// Durability. Record commits before it returns. Sealing, claiming and every
// state change are ledger transactions; the "sent" mark is committed before
// the report call and the outcome after it, so a crash between the two
// leaves the window Unknown and it is resent with the same id: no usage is
// lost, and a duplicate can only be a same-id resend of a call whose answer
// the crash (or the network) swallowed. No client can do better: a lost
// response is indistinguishable from a failed call.
//
// Sealing. A window is sealed when a flush picks it up after its end (or,
// for the final window, the consumer's End) plus the grace: its rows are turned into windows and deleted in the same
// transaction that advances the consumer's frontier, so a concurrent Record
// either lands in the window before the seal reads it or sees the new
// frontier and goes to the next window.
//
// Leases. Replicas sharing a ledger (pgstore) each flush; ClaimWindows
// leases windows to one owner (Config.Owner, Config.Lease), and a window released
// after a failure carries a not-before time, which is how backoff works
// across replicas. A replica that dies leaves its windows leased until the
// lease expires; another then resends them with the same ids. Every claim
// increments the window's lease token, and the "sent" mark applies only
// under the token of the claim it comes from (in the same transaction), and
// renews the lease for the call: a replica that stalled past its lease
// (a long pause, a partition) while another claimed its windows loses the
// mark and sends nothing, and its outcome updates are ignored, even if both
// run under one owner name.
//
// Stores. The ledger New takes is a ledger.Ledger, the contract of package
// usage/ledger that memstore, sqlitestore and pgstore implement; every one
// admits usage by the same rule, ledger.Admit. An application needs only
// package usage: the ledger's types its API shows (Consumer, Window, ...)
// are aliased here.
//
// Shutdown. Close stops Run, flushes once more (sealing and sending what
// has closed by then) and unregisters the reporter's metric callbacks.
// What is still open stays in the ledger for the next start.
//
// Cancellation. A Flush whose context ends returns an error wrapping
// ctx.Err(), never nil. The outcome of a report call already answered is
// still recorded (it is what keeps a confirmed window from being sent
// again), and windows not yet checked or sent are released at once for the
// next flush.
//
// Metrics. Int64 by default; a metric declared Double carries doubleValue.
// Undeclared metrics are refused by Record.
//
// # Usage from the vendor's own records
//
// A vendor that already meters in its own database or warehouse can give
// the Reporter a Source (Config.Source) instead of calling Record. When a
// consumer's window is due to be sealed, Flush asks the source for the
// consumer's totals over the window, [start, end), never past the
// consumer's End (a final window asks for [start, End)), one call per
// window, outside any ledger transaction; Seal then folds the answer into
// the sealed window, so the numbers are persisted with it, atomically, and
// every resend carries them under the same operation id. A crash before
// the seal only means the source is asked again. The answer is final:
// what the vendor's records gain for a window after it was sealed is not
// billed (Config.SealGrace gives late writes time).
//
// A source's metrics are taken from it alone: Record refuses them, and the
// source may return no other metric, so no unit is counted twice. Metrics
// not given to the source are recorded as usual, and a window's operation
// carries both. A source error, a timeout (Config.RPCTimeout) or an invalid
// total (negative, non-finite, not the source's metric, bad labels:
// ErrBadTotal, never clamped or dropped) holds every window of that
// consumer: none is sealed, the source is asked again at the next flush,
// and the deadline alert fires with DeadlineAlert.Held set when the oldest
// window's deadline nears and when it passes. A consumer whose End changed
// while the source was read is read again.
//
// # Serving
//
// Every window is checked with services.check under its own operation id
// (the id it is then reported under, as Google's usage guidance asks),
// catch-up windows included. An answer is reused for the same operation id
// for at most 60 s (Config.CheckCacheTTL), so a resend after a failure within a
// minute is not checked again. One Flush makes at most Config.MaxChecksPerFlush
// check calls (10,000 by default: one per consumer in steady state, where
// each consumer has one window per hour); windows over the budget wait for
// the next flush, oldest first, so a catch-up after downtime or a larger
// fleet spreads its checks over a few flushes.
//
// The answer is about the consumer (a project), and Google refuses only the
// intervals after it stopped being billable, so a consumer's serving state
// is taken from the answer to its latest window checked. Codes in
// DefaultStopServingCodes block the consumer: the ledger records it,
// Config.OnServingChange runs, and Serving reports false until a later
// check passes (then the callback runs again). Usage of a blocked consumer
// keeps being collected in hourly windows and is replayed when it is served
// again, for up to Config.ReplayLimit (30 days); while it is blocked, only its
// latest window is checked at each flush (the others are held with the same
// answer, not sent), and once that check passes every held window is
// checked with its own id before it is sent. Transient codes
// (*_UNAVAILABLE, LOAD_SHEDDING, RESOURCE_EXHAUSTED, INJECTED_ERROR) and
// failed check calls delay reporting but never block anyone.
//
// Any other check error code (for example API_TARGET_BLOCKED or
// SECURITY_POLICY_VIOLATED) is treated as transient until the window's
// deadline has passed and this process has seen at least three such
// answers for it; the window then leaves Pending: it is Rejected with the
// code in its Reason (listed by Backlog, logged at error level, after the
// DeadlineAlert with Missed set), and no longer checked. If the code means
// the consumer cannot be billed, add it to Config.StopServingCodes; once
// the cause is fixed, Retry sends the window with the same id.
//
// # Deadlines and catch-up
//
// Google wants usage within an hour, and a month's usage by 1 AM US Pacific
// time on the first of the next month (see Deadline). After downtime, the
// next flush seals and sends every missed window, none skipped, late or not.
// Windows still unreported near their deadline (Config.DeadlineAlertMargin)
// or after it are passed to the alert callback; Backlog lists every window
// that is not reported, with its reason, for operators.
//
// # Read-back
//
// ReadBack lists the sealed windows, oldest first, filtered by entitlement,
// state and window start, in pages resumed by key (WindowKey), with each
// window's operation id, values, state, attempts and times. Export writes
// the same as CSV or JSON Lines, one line per operation and metric, in the
// stable ExportColumns, for reconciliation with Cloud Billing's export.
// Reported and Rejected windows are pruned after Config.Retention (40 days by
// default) after they were sealed: export them before then (daily, say) to
// keep a longer record.
package usage
