package events

import (
	"strconv"
	"time"
)

// Type is the eventType of a message. It is an open set: a value this
// package does not know decodes to [*Unknown] and reports Known() == false.
type Type string

// The eventType values Google Cloud Marketplace documents.
const (
	// TypeAccountCreationRequested is deprecated by Google: accounts are now
	// created directly in the active state.
	TypeAccountCreationRequested Type = "ACCOUNT_CREATION_REQUESTED"
	// TypeAccountActive: the customer's account has been created.
	TypeAccountActive Type = "ACCOUNT_ACTIVE"
	// TypeAccountDeleted: the customer's account was deleted from Google
	// Cloud. Delete the customer's data.
	TypeAccountDeleted Type = "ACCOUNT_DELETED"

	// TypeEntitlementCreationRequested: the customer chose a plan or an offer;
	// the entitlement waits for the partner's approval.
	TypeEntitlementCreationRequested Type = "ENTITLEMENT_CREATION_REQUESTED"
	// TypeEntitlementActive: the chosen plan is active. Provision here.
	TypeEntitlementActive Type = "ENTITLEMENT_ACTIVE"
	// TypeEntitlementPlanChangeRequested: the customer chose a new plan or
	// offer; the change waits for the partner's approval.
	TypeEntitlementPlanChangeRequested Type = "ENTITLEMENT_PLAN_CHANGE_REQUESTED"
	// TypeEntitlementPlanChanged: an approved plan change has taken effect.
	TypeEntitlementPlanChanged Type = "ENTITLEMENT_PLAN_CHANGED"
	// TypeEntitlementPlanChangeCancelled: a plan change was not approved or
	// the customer went back to the old plan.
	TypeEntitlementPlanChangeCancelled Type = "ENTITLEMENT_PLAN_CHANGE_CANCELLED"
	// TypeEntitlementPendingCancellation: the customer cancelled; the
	// entitlement stays usable until the end of the billing cycle or term.
	TypeEntitlementPendingCancellation Type = "ENTITLEMENT_PENDING_CANCELLATION"
	// TypeEntitlementCancellationReverted: a pending cancellation was undone.
	TypeEntitlementCancellationReverted Type = "ENTITLEMENT_CANCELLATION_REVERTED"
	// TypeEntitlementCancelling: the entitlement is being cancelled.
	TypeEntitlementCancelling Type = "ENTITLEMENT_CANCELLING"
	// TypeEntitlementCancelled: the entitlement was cancelled. Stop serving.
	TypeEntitlementCancelled Type = "ENTITLEMENT_CANCELLED"
	// TypeEntitlementDeleted: Marketplace deleted the entitlement's data. It
	// always follows a cancellation.
	TypeEntitlementDeleted Type = "ENTITLEMENT_DELETED"
	// TypeEntitlementOfferAccepted: a private offer was accepted on a product
	// with automatic offer approval; it replaces the two *_REQUESTED types
	// for such products. Provision at NewOfferStartTime.
	TypeEntitlementOfferAccepted Type = "ENTITLEMENT_OFFER_ACCEPTED"
	// TypeEntitlementRenewed: the entitlement renewed for a new term.
	TypeEntitlementRenewed Type = "ENTITLEMENT_RENEWED"
	// TypeEntitlementOfferEnded: a private offer's term ended; the
	// entitlement is then cancelled or continues at list price.
	TypeEntitlementOfferEnded Type = "ENTITLEMENT_OFFER_ENDED"
)

// Known reports whether t is one of the sixteen documented eventType values.
// The empty Type of an [*AccountMessage] is not Known.
func (t Type) Known() bool { return t.kind() != 0 }

// String returns the eventType as it appears in the message.
func (t Type) String() string { return string(t) }

// kind is the resource a known type is about, or 0 for an unknown type.
func (t Type) kind() ResourceKind {
	switch t {
	case TypeAccountCreationRequested, TypeAccountActive, TypeAccountDeleted:
		return ResourceAccount
	case TypeEntitlementCreationRequested, TypeEntitlementActive,
		TypeEntitlementPlanChangeRequested, TypeEntitlementPlanChanged,
		TypeEntitlementPlanChangeCancelled, TypeEntitlementPendingCancellation,
		TypeEntitlementCancellationReverted, TypeEntitlementCancelling,
		TypeEntitlementCancelled, TypeEntitlementDeleted,
		TypeEntitlementOfferAccepted, TypeEntitlementRenewed,
		TypeEntitlementOfferEnded:
		return ResourceEntitlement
	}
	return 0
}

// ResourceKind says whether a message is about an account or an entitlement.
type ResourceKind uint8

// The two kinds of resource a message can be about.
const (
	ResourceAccount ResourceKind = iota + 1
	ResourceEntitlement
)

// String returns "account" or "entitlement", the message's JSON key.
func (k ResourceKind) String() string {
	switch k {
	case ResourceAccount:
		return "account"
	case ResourceEntitlement:
		return "entitlement"
	}
	return "ResourceKind(" + strconv.Itoa(int(k)) + ")"
}

// Resource names the account or entitlement a message is about: the key to
// serialise processing on and the resource to re-read from the Partner
// Procurement API. It is comparable and can be used as a map key.
type Resource struct {
	Kind ResourceKind
	ID   string // the account or entitlement id, never empty in a decoded event
}

// Event is a decoded message. Its concrete type is one of the pointer types
// of this package: one per [Type], [*AccountMessage] or [*Unknown]. Use a
// type switch to reach the fields of a given type.
type Event interface {
	// ID returns the eventId, an opaque key to deduplicate on.
	ID() string
	// Type returns the eventType as sent ("" for an [*AccountMessage], any
	// string for an [*Unknown]).
	Type() Type
	// Resource returns the account or entitlement the message is about.
	Resource() Resource
	// Problems lists the optional fields that could not be read and were
	// left zero. It is empty for a well-formed message.
	Problems() []FieldProblem

	isEvent()
}

// Header holds what every message carries besides its resource. Every event
// type embeds it.
type Header struct {
	EventID    string // eventId
	EventType  Type   // eventType; "" when the message has none
	ProviderID string // providerId, the partner id; may be empty

	problems []FieldProblem
}

// ID returns the eventId.
func (h Header) ID() string { return h.EventID }

// Type returns the eventType.
func (h Header) Type() Type { return h.EventType }

// Problems lists the optional fields Decode could not read. Log them: they
// suggest the message format changed. The slice must not be modified.
func (h Header) Problems() []FieldProblem { return h.problems }

// Account is the "account" object of a message.
type Account struct {
	ID         string    // id: the Procurement account id
	UpdateTime time.Time // updateTime; zero if absent or unreadable
}

// Resource returns the account's Resource.
func (a Account) Resource() Resource { return Resource{ResourceAccount, a.ID} }

// Entitlement is the "entitlement" object of a message. Only ID is always
// set; which other fields appear depends on the event and the offer, and
// the Partner Procurement API is the authority on all of them.
type Entitlement struct {
	ID         string    // id: the entitlement id
	UpdateTime time.Time // updateTime; zero if absent or unreadable

	NewPlan    string // newPlan: the plan requested or taken
	NewProduct string // newProduct
	NewOffer   string // newOffer: projects/{p}/services/{s}/privateOffers/{o} or .../standardOffers/{o}

	// NewOfferDuration is the offer's term as an ISO 8601 duration in years
	// and months ("P2Y3M"), from newOfferDuration or its alias
	// newPendingOfferDuration (the documentation uses both; when both are
	// non-empty, newOfferDuration wins). Empty when the offer has an end
	// date instead.
	NewOfferDuration  string
	NewOfferStartTime time.Time // newOfferStartTime: when an accepted offer takes effect
	NewOfferEndTime   time.Time // newOfferEndTime: a fixed end date for the offer

	OrderID               string   // orderId, without the "orders/" prefix
	EntitlementBenefitIDs []string // entitlementBenefitIds; nil if absent or empty
}

// Resource returns the entitlement's Resource.
func (e Entitlement) Resource() Resource { return Resource{ResourceEntitlement, e.ID} }

// AccountMessage is the account message of Google's sign-up flow, which has
// no eventType: an account was created or changed. Re-read the account.
type AccountMessage struct {
	Header
	Account Account
}

// AccountCreationRequested is an ACCOUNT_CREATION_REQUESTED message, a type
// Google has deprecated.
type AccountCreationRequested struct {
	Header
	Account Account
}

// AccountActive is an ACCOUNT_ACTIVE message: the account was created.
type AccountActive struct {
	Header
	Account Account
}

// AccountDeleted is an ACCOUNT_DELETED message: the account was deleted and
// the customer's data should be too.
type AccountDeleted struct {
	Header
	Account Account
}

// EntitlementCreationRequested is an ENTITLEMENT_CREATION_REQUESTED message:
// the entitlement waits for approval.
type EntitlementCreationRequested struct {
	Header
	Entitlement Entitlement
}

// EntitlementActive is an ENTITLEMENT_ACTIVE message: provision the service.
type EntitlementActive struct {
	Header
	Entitlement Entitlement
}

// EntitlementPlanChangeRequested is an ENTITLEMENT_PLAN_CHANGE_REQUESTED
// message: a plan change waits for approval. NewPlan is a hint; approve the
// entitlement's newPendingPlan as re-read from the API.
type EntitlementPlanChangeRequested struct {
	Header
	Entitlement Entitlement
}

// EntitlementPlanChanged is an ENTITLEMENT_PLAN_CHANGED message: the new
// plan is in effect.
type EntitlementPlanChanged struct {
	Header
	Entitlement Entitlement
}

// EntitlementPlanChangeCancelled is an ENTITLEMENT_PLAN_CHANGE_CANCELLED
// message: the entitlement stays on its old plan.
type EntitlementPlanChangeCancelled struct {
	Header
	Entitlement Entitlement
}

// EntitlementPendingCancellation is an ENTITLEMENT_PENDING_CANCELLATION
// message: the entitlement ends at the end of its cycle or term.
type EntitlementPendingCancellation struct {
	Header
	Entitlement Entitlement
}

// EntitlementCancellationReverted is an ENTITLEMENT_CANCELLATION_REVERTED
// message: a pending cancellation was undone.
type EntitlementCancellationReverted struct {
	Header
	Entitlement Entitlement
}

// EntitlementCancelling is an ENTITLEMENT_CANCELLING message.
type EntitlementCancelling struct {
	Header
	Entitlement Entitlement
}

// EntitlementCancelled is an ENTITLEMENT_CANCELLED message: stop serving.
type EntitlementCancelled struct {
	Header
	Entitlement Entitlement
}

// EntitlementDeleted is an ENTITLEMENT_DELETED message: Marketplace deleted
// the entitlement's data after its cancellation.
type EntitlementDeleted struct {
	Header
	Entitlement Entitlement
}

// EntitlementOfferAccepted is an ENTITLEMENT_OFFER_ACCEPTED message: a
// private offer was accepted under automatic approval.
type EntitlementOfferAccepted struct {
	Header
	Entitlement Entitlement
}

// EntitlementRenewed is an ENTITLEMENT_RENEWED message: a new term began.
type EntitlementRenewed struct {
	Header
	Entitlement Entitlement
}

// EntitlementOfferEnded is an ENTITLEMENT_OFFER_ENDED message: a private
// offer's term ended.
type EntitlementOfferEnded struct {
	Header
	Entitlement Entitlement
}

// Unknown is a message whose eventType this package does not know (or an
// entitlement message without eventType, or one whose eventType is not a
// string). For an entitlement message without eventType, or an eventType
// that is not a string, exactly one of Account and Entitlement is set and has
// an id. For an eventType Google added after this package was written,
// Decode checks nothing but eventId: Account and Entitlement are set when the
// message names them with a usable id (none, one or both), so a processor
// can still re-read what it can. Log it and acknowledge it.
type Unknown struct {
	Header
	Account     *Account     // the "account" object, or nil
	Entitlement *Entitlement // the "entitlement" object, or nil
	Raw         []byte       // the message as received (a copy)
}

// Resource returns the account or entitlement the message is about.
func (e *Unknown) Resource() Resource {
	if e.Entitlement != nil {
		return e.Entitlement.Resource()
	}
	if e.Account != nil {
		return e.Account.Resource()
	}
	return Resource{}
}

// Resource returns the account the message is about.
func (e *AccountMessage) Resource() Resource { return e.Account.Resource() }

// Resource returns the account the message is about.
func (e *AccountCreationRequested) Resource() Resource { return e.Account.Resource() }

// Resource returns the account the message is about.
func (e *AccountActive) Resource() Resource { return e.Account.Resource() }

// Resource returns the account the message is about.
func (e *AccountDeleted) Resource() Resource { return e.Account.Resource() }

// Resource returns the entitlement the message is about.
func (e *EntitlementCreationRequested) Resource() Resource { return e.Entitlement.Resource() }

// Resource returns the entitlement the message is about.
func (e *EntitlementActive) Resource() Resource { return e.Entitlement.Resource() }

// Resource returns the entitlement the message is about.
func (e *EntitlementPlanChangeRequested) Resource() Resource { return e.Entitlement.Resource() }

// Resource returns the entitlement the message is about.
func (e *EntitlementPlanChanged) Resource() Resource { return e.Entitlement.Resource() }

// Resource returns the entitlement the message is about.
func (e *EntitlementPlanChangeCancelled) Resource() Resource { return e.Entitlement.Resource() }

// Resource returns the entitlement the message is about.
func (e *EntitlementPendingCancellation) Resource() Resource { return e.Entitlement.Resource() }

// Resource returns the entitlement the message is about.
func (e *EntitlementCancellationReverted) Resource() Resource { return e.Entitlement.Resource() }

// Resource returns the entitlement the message is about.
func (e *EntitlementCancelling) Resource() Resource { return e.Entitlement.Resource() }

// Resource returns the entitlement the message is about.
func (e *EntitlementCancelled) Resource() Resource { return e.Entitlement.Resource() }

// Resource returns the entitlement the message is about.
func (e *EntitlementDeleted) Resource() Resource { return e.Entitlement.Resource() }

// Resource returns the entitlement the message is about.
func (e *EntitlementOfferAccepted) Resource() Resource { return e.Entitlement.Resource() }

// Resource returns the entitlement the message is about.
func (e *EntitlementRenewed) Resource() Resource { return e.Entitlement.Resource() }

// Resource returns the entitlement the message is about.
func (e *EntitlementOfferEnded) Resource() Resource { return e.Entitlement.Resource() }

// isEvent keeps Event's implementations to this package's types, the ones
// a type switch over the types of this package covers.
func (*AccountMessage) isEvent()                  {}
func (*AccountCreationRequested) isEvent()        {}
func (*AccountActive) isEvent()                   {}
func (*AccountDeleted) isEvent()                  {}
func (*EntitlementCreationRequested) isEvent()    {}
func (*EntitlementActive) isEvent()               {}
func (*EntitlementPlanChangeRequested) isEvent()  {}
func (*EntitlementPlanChanged) isEvent()          {}
func (*EntitlementPlanChangeCancelled) isEvent()  {}
func (*EntitlementPendingCancellation) isEvent()  {}
func (*EntitlementCancellationReverted) isEvent() {}
func (*EntitlementCancelling) isEvent()           {}
func (*EntitlementCancelled) isEvent()            {}
func (*EntitlementDeleted) isEvent()              {}
func (*EntitlementOfferAccepted) isEvent()        {}
func (*EntitlementRenewed) isEvent()              {}
func (*EntitlementOfferEnded) isEvent()           {}
func (*Unknown) isEvent()                         {}
