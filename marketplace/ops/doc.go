// Package ops is the operator's surface of a Marketplace integration: a JSON
// API and a small server-rendered web console over the marketplace
// Processor's and usage Reporter's public API, mounted as one http.Handler,
// the way net/http/pprof is mounted:
//
//	h, err := ops.New(ops.Config{
//		Runtime:   rt,
//		Processor: proc,
//		Reporter:  rep, // optional: the usage routes answer 404 without it
//		Auth:      ops.BearerTokens(map[string]string{os.Getenv("OPS_TOKEN"): "oncall"}),
//	})
//	mux.Handle("/ops/", h) // Config.BasePath, "/ops" by default, plus "/"
//
// # Authentication and cross-site requests
//
// Every route requires Config.Auth: an Authenticator such as BearerTokens
// (constant-time comparison), or the vendor's own as an AuthenticatorFunc
// (an IAP JWT header check, a session lookup). Without credentials, or with
// ones the Authenticator refuses, every route answers 401 with
// WWW-Authenticate: the API with a JSON error; a console page (a GET
// outside /api/) without an Authorization header with the login form as
// the body (no redirect), clearing a bad or expired session cookie.
//
// GET {base}/login is the only page served to anyone: a form posting a token
// to POST {base}/login, which checks it through Config.Auth as
// "Authorization: Bearer <token>" and sets an HMAC-SHA256-signed session
// cookie (HttpOnly, SameSite=Strict, Path={base}, valid for
// Config.SessionTTL) naming the principal, then redirects to {base}/. The
// cookie is Secure unless the request's host is a loopback one (localhost,
// 127.0.0.0/8, ::1): the request's own TLS cannot tell, since behind a
// TLS-terminating proxy such as Cloud Run's it arrives over plain HTTP; so
// browse the console over HTTPS, or on a loopback host during development.
// The signing key is Config.SessionKey (at least 32 bytes), or random per
// Handler. POST {base}/logout clears it.
//
// Every unsafe request (POST) from another site is refused with 403 by
// http.CrossOriginProtection (Sec-Fetch-Site, or Origin against Host),
// before authentication. Every action is logged through Config.Logger
// ("ops: operator action") with the principal, the action and the id it
// was applied to, and the error if it failed. PrincipalFrom gives the
// principal to a vendor's handlers.
//
// # JSON API
//
// Routes are under {base}/api/v1/. Keys are lower camel case; times are RFC
// 3339 in UTC, and left out when unknown. Lists answer
//
//	{"<items>": [...], "nextPageToken": "..."}
//
// and take the query parameters pageSize (default 50, at most 500) and
// pageToken (the nextPageToken of the previous page, opaque; "" on the last
// page). Errors answer
//
//	{"error": {"code": 404, "status": "NOT_FOUND", "message": "..."}}
//
// with status INVALID_ARGUMENT (400: a bad parameter or page token),
// UNAUTHENTICATED (401), PERMISSION_DENIED (403: cross-site), NOT_FOUND (404:
// an unknown id, nothing queued, no Reporter), ABORTED (409: the request is
// no longer pending at Google), UNAVAILABLE (503: the processor is closed)
// or INTERNAL (500). An {id} in a path is path-escaped: a Pub/Sub message
// id may hold a "/", sent as %2F (the console's links do so). Actions take
// parameters as a form or a JSON object and answer
// {"ok": true, "action": "<name>", "id": "<id>"}.
//
//	GET  overview                  {"parked", "approvals", "poison", "blocked", "deadline": counts}
//	GET  accounts                  {"accounts": [Account]}, sorted by id
//	GET  accounts/{id}             {"account": Account, "entitlements": [Entitlement], "history": [Transition]}
//	GET  entitlements              {"entitlements": [Entitlement]}; ?state= (ACTIVE or ENTITLEMENT_ACTIVE), ?account=, ?parked=true
//	GET  entitlements/{id}         {"entitlement": Entitlement, "history": [Transition]}
//	GET  parked                    {"parked": [Entitlement + "waitingSeconds"]}
//	GET  approvals                 {"approvals": [Approval]}, oldest first
//	POST approvals/{id}/approve    approves the queued request of entitlement id
//	POST approvals/{id}/reject     rejects it; reason (1 to 256 bytes) is required
//	GET  poison                    {"poison": [Poison]}, newest first
//	POST poison/{id}/redrive       runs the message (event id or message id) again
//	POST poison/{id}/dismiss       removes it without running it
//	GET  consumers                 {"consumers": [Consumer]}; ?blocked=true: only those not to be served
//	GET  consumers/{id}/windows    {"windows": [Window]} of entitlement id (consumer routes take the entitlement id), oldest first; ?state=pending,unknown,reported,rejected,expired (any case)
//	GET  consumers/{id}/billed     {"hours": [Billed]}: Reported windows summed per hour and metric; ?from=, ?to= (RFC 3339, on the hour's start)
//	POST windows/{id}/retry        puts window (operation id) back to pending, to be sent again
//	POST windows/{id}/settle       state=reported|rejected, reason: an operator's decision after checking Google's billing
//	POST reconcile                 Reconcile now: Reconcile
//	GET  health                    Health
//
// The objects:
//
//	Account     {"id", "signupApproved", "vendorUserId", "userIdentity", "updateTime", "createdAt"}
//	Entitlement {"id", "accountId", "product", "plan", "pendingPlan", "offer", "state" (Procurement's enum),
//	             "usageReportingId", "updateTime", "parked", "parkedAt", "cancelTime"}
//	Transition  {"seq", "entitlementId", "accountId", "at", "change" (the event type), "fromState", "toState",
//	             "fromPlan", "toPlan", "source" (message, reconcile, signup, operator, redrive), "eventId"}
//	Approval    {"entitlementId", "kind" (entitlement or plan_change), "accountId", "plan", "requestedAt", "seq"}
//	Poison      {"messageId", "eventId", "reason", "data" (the payload as text) or "dataBase64", "at"}
//	Consumer    {"entitlementId", "usageReportingId", "start", "end", "frontier" (sealed up to), "serving",
//	             "blockCode" (the services.check code, e.g. BILLING_DISABLED), "blockDetail", "blockedSince"}
//	Window      {"operationId", "entitlementId", "consumerId", "start", "end", "labels" (object),
//	             "values": [{"metric", "kind" (int64 or double), "int64", "double"}], "state", "reason",
//	             "deadline", "attempts", "sealedAt", "lastAttempt", "reportedAt"}
//	Billed      {"hour", "metric", "kind", "int64", "double"}
//	Reconcile   {"changed", "failed", "results": [{"kind" (account or entitlement), "id", "outcomes": [...],
//	             "state", "error"}]}
//	Health      {"running", "pull", "since", "lastMessage", "lastError", "lastErrorAt", "inFlight", "handled",
//	             "failed", "usageBacklog" (windows unreported or rejected; absent without a Reporter)}
//
// The overview's deadline counts unreported windows (pending, unknown,
// expired) whose reporting deadline is less than 30 minutes away or passed.
//
// # Console
//
// Server-rendered HTML (html/template, embedded; no script, no external
// asset: every read works without JavaScript). Pages, and the element ids a
// browser test may rely on:
//
//	GET  {base}/                         overview: counts first (span ids count-parked, count-approvals,
//	                                     count-poison, count-blocked, count-deadline), table id="parked"
//	                                     (rows data-entitlement, data-account, linking to the customer), receiving health
//	GET  {base}/customers                accounts (table id="accounts")
//	GET  {base}/customers/{accountID}    id="account", table id="entitlements", list id="timeline",
//	                                     <svg id="usage-chart">: recorded against reported usage per hour (?metric=)
//	GET  {base}/approvals                rows data-entitlement, each with a POST form to approvals/{id}/approve
//	GET  {base}/approvals/{id}/reject    confirm page with a reason; POST to the same URL
//	GET  {base}/poison                   rows data-message, each with a POST form to poison/{id}/redrive
//	GET  {base}/poison/{id}/dismiss      confirm page; POST to the same URL
//	GET  {base}/consumers                table id="blocked" (rows data-entitlement, with the check code), all consumers
//	GET  {base}/usage?entitlement={id}   table id="windows" (rows data-state="Reported", ...), billed hours (table id="billed")
//	POST {base}/usage/windows/{id}/retry
//	GET  {base}/usage/windows/{id}/settle confirm page; POST to the same URL
//	POST {base}/reconcile
//
// Destructive actions (reject, dismiss, settle) show a confirmation page
// whose form carries a hidden confirm=yes; without it the POST shows the
// page again (400). After a POST action the console redirects (303) back to
// the page it came from, with the outcome in <p id="flash">.
package ops
