// Package events decodes the Pub/Sub messages Google Cloud Marketplace
// sends to a SaaS partner into typed events. The callbacks an application
// writes are not here: they are marketplace.Handler's, which the
// marketplace.Processor calls with the state re-read from the Procurement
// API, not with the message.
//
// # The message
//
// Marketplace publishes one JSON object per change to the partner's topic
// (the Pub/Sub message's data; Pub/Sub attributes carry nothing). It names
// the change and the one resource it is about:
//
//	{
//	  "eventId": "CREATE_ENTITLEMENT-0c0ad6e8-...",
//	  "eventType": "ENTITLEMENT_OFFER_ACCEPTED",
//	  "providerId": "acme-public",
//	  "entitlement": {
//	    "id": "0c0ad6e8-...",
//	    "updateTime": "2026-01-21T00:06:19.754732Z",
//	    "newPlan": "enterprise-P2Y",
//	    "newOffer": "projects/123/services/svc/privateOffers/456",
//	    "orderId": "0c0ad6e8-...",
//	    "entitlementBenefitIds": ["..."]
//	  }
//	}
//
// Every message has an eventId (an opaque string, the key to deduplicate
// on) and exactly one of an "account" or an "entitlement" object with an
// id. eventType is one of the sixteen values listed as the [Type]
// constants; Google's account sign-up message has no eventType at all and
// decodes to [*AccountMessage]. Any other eventType decodes to [*Unknown],
// never to an error, so a type Google adds later is logged and
// acknowledged rather than redelivered forever.
//
// [Decode] returns one concrete type per eventType (for example
// [*EntitlementCreationRequested]); a type switch reaches its fields.
//
// # A message is a hint, not the truth
//
// Messages can arrive late, twice and out of order, and they carry only a
// few fields of the resource. Treat one as "this account or entitlement
// changed": re-read the resource from the Partner Procurement API and act on
// what the API says, using eventId to skip duplicates and updateTime to
// skip stale messages. The marketplace package does this for you.
//
// Because the content is only a hint, Decode is strict about what it needs
// to route a message (eventId and the resource id must be non-empty JSON
// strings; anything else is a [*DecodeError] matching [ErrMalformed]) and
// lenient about everything else: an optional field that cannot be read (a
// time that is not RFC 3339, a number where a string belongs, ...) is left
// zero and reported by the event's Problems method, and the event still
// decodes. Unknown JSON fields are ignored.
//
// Errors and problems never quote the payload, not even its start: messages
// contain customer identifiers. They identify it by a [Fingerprint] (length
// and SHA-256 prefix) instead.
package events
