package procurement

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	cp "google.golang.org/api/cloudcommerceprocurement/v1"
)

// AccountState is the state of an Account.
type AccountState string

// Account states (Account.state).
const (
	AccountStateUnspecified AccountState = "ACCOUNT_STATE_UNSPECIFIED"
	// AccountStateActivationRequested is deprecated by Google: accounts are
	// now created ACCOUNT_ACTIVE, with a pending "signup" approval.
	AccountStateActivationRequested AccountState = "ACCOUNT_ACTIVATION_REQUESTED"
	AccountStateActive              AccountState = "ACCOUNT_ACTIVE"
)

// ApprovalState is the state of one Approval on an account.
type ApprovalState string

// Approval states (Approval.state). A REJECTED approval can later be
// approved.
const (
	ApprovalStateUnspecified ApprovalState = "STATE_UNSPECIFIED"
	ApprovalStatePending     ApprovalState = "PENDING"
	ApprovalStateApproved    ApprovalState = "APPROVED"
	ApprovalStateRejected    ApprovalState = "REJECTED"
)

// EntitlementState is the state of an Entitlement.
type EntitlementState string

// Entitlement states (Entitlement.state).
const (
	EntitlementStateUnspecified EntitlementState = "ENTITLEMENT_STATE_UNSPECIFIED"
	// EntitlementActivationRequested: created, waiting for the provider's
	// approval (or, once approved, for its scheduled start time).
	EntitlementActivationRequested EntitlementState = "ENTITLEMENT_ACTIVATION_REQUESTED"
	// EntitlementActive: usable and billed; renews.
	EntitlementActive EntitlementState = "ENTITLEMENT_ACTIVE"
	// EntitlementPendingCancellation: usable until the end of the term, then
	// cancelled.
	EntitlementPendingCancellation EntitlementState = "ENTITLEMENT_PENDING_CANCELLATION"
	// EntitlementCancelled: cancelled; may be deleted later.
	EntitlementCancelled EntitlementState = "ENTITLEMENT_CANCELLED"
	// EntitlementPendingPlanChange: an approved plan change waits for the end
	// of the billing cycle.
	EntitlementPendingPlanChange EntitlementState = "ENTITLEMENT_PENDING_PLAN_CHANGE"
	// EntitlementPendingPlanChangeApproval: a plan change waits for the
	// provider's approval.
	EntitlementPendingPlanChangeApproval EntitlementState = "ENTITLEMENT_PENDING_PLAN_CHANGE_APPROVAL"
	// EntitlementSuspended is documented as "not yet supported".
	EntitlementSuspended EntitlementState = "ENTITLEMENT_SUSPENDED"
)

// AccountView selects how much of an Account GetAccount returns.
type AccountView string

// Account views. The API returns the full view when none is given.
const (
	AccountViewUnspecified AccountView = "ACCOUNT_VIEW_UNSPECIFIED"
	AccountViewBasic       AccountView = "ACCOUNT_VIEW_BASIC"
	// AccountViewFull adds ResellerParentBillingAccount.
	AccountViewFull AccountView = "ACCOUNT_VIEW_FULL"
)

// SignupApproval is the name of the account approval that gates sign-up.
const SignupApproval = "signup"

// Account is a customer's account with the provider (a Procurement
// "Account" resource).
type Account struct {
	// Name is the resource name, "providers/{provider}/accounts/{id}".
	Name string
	// ID is the account id, the last segment of Name. It is the "sub" of
	// the sign-up JWT and the id in account Pub/Sub messages.
	ID string
	// Provider is the provider id.
	Provider string
	// State is the account state.
	State AccountState
	// Approvals are the account's approvals; sign-up is the one named
	// SignupApproval.
	Approvals []Approval
	// ResellerParentBillingAccount ("billingAccounts/{id}") is set only in
	// the full view and only for reseller subaccounts.
	ResellerParentBillingAccount string
	// InputProperties is deprecated by Google; kept raw.
	InputProperties json.RawMessage
	// CreateTime and UpdateTime are the API's timestamps.
	CreateTime, UpdateTime time.Time
}

// Approval returns the approval with the given name.
func (a Account) Approval(name string) (Approval, bool) {
	for _, ap := range a.Approvals {
		if ap.Name == name {
			return ap, true
		}
	}
	return Approval{}, false
}

// SignupApproved reports whether the account's "signup" approval is APPROVED,
// which the API requires before any of its entitlements can be approved.
func (a Account) SignupApproved() bool {
	ap, ok := a.Approval(SignupApproval)
	return ok && ap.State == ApprovalStateApproved
}

// Approval is one approval on an account.
type Approval struct {
	// Name is the approval name, e.g. "signup".
	Name string
	// State is the approval state.
	State ApprovalState
	// Reason is the free-form reason given with the last approve or reject.
	Reason string
	// UpdateTime is when the approval last changed.
	UpdateTime time.Time
}

// Consumer is a resource consuming an entitlement.
type Consumer struct {
	// Project is "projects/{number}".
	Project string
}

// Entitlement is a customer's purchase of a product (a Procurement
// "Entitlement" resource).
type Entitlement struct {
	// Name is the resource name, "providers/{provider}/entitlements/{id}".
	Name string
	// ID is the entitlement id, the last segment of Name.
	ID string
	// Account is the account's resource name, AccountID its id.
	Account, AccountID string
	// Provider is the provider id.
	Provider string
	// State is the entitlement state.
	State EntitlementState
	// Product is deprecated by Google: it may hold a product, quote or offer
	// id. Use ProductExternalName, QuoteExternalName and Offer.
	Product string
	// ProductExternalName is the product id; for SaaS products it is also
	// the Service Control service name.
	ProductExternalName string
	// QuoteExternalName is set when bought through a quote.
	QuoteExternalName string
	// Plan is the current plan id.
	Plan string
	// NewPendingPlan is the plan a pending plan change moves to.
	NewPendingPlan string
	// Offer is the offer resource name (meaning depends on State).
	Offer string
	// NewPendingOffer is set only while a plan change is pending.
	NewPendingOffer string
	// OfferDuration and NewPendingOfferDuration are ISO 8601 durations in
	// years and months ("P1Y6M"); empty when the offer has an end date.
	OfferDuration, NewPendingOfferDuration string
	// OfferEndTime is the end of the current term.
	OfferEndTime time.Time
	// NewOfferStartTime is when the upcoming offer takes effect. In
	// ENTITLEMENT_ACTIVATION_REQUESTED it is set once the entitlement has
	// been approved and waits for a scheduled start.
	NewOfferStartTime time.Time
	// NewOfferEndTime is the fixed end of the upcoming offer, if any.
	NewOfferEndTime time.Time
	// SubscriptionEndTime is when the subscription ends.
	SubscriptionEndTime time.Time
	// OrderID is the order id without the "orders/" prefix.
	OrderID string
	// EntitlementBenefitIDs are the benefit ids of the purchase.
	EntitlementBenefitIDs []string
	// UsageReportingID is the Service Control consumerId; set only for
	// usage-based products.
	UsageReportingID string
	// Consumers are the projects consuming the entitlement.
	Consumers []Consumer
	// MessageToUser is the provider's message shown to the customer.
	MessageToUser string
	// CancellationReason is informational; Google says its values may change.
	CancellationReason string
	// InputProperties is deprecated by Google; kept raw.
	InputProperties json.RawMessage
	// CreateTime and UpdateTime are the API's timestamps. UpdateTime is the
	// guard against acting on stale reads.
	CreateTime, UpdateTime time.Time
}

// converter collects the first conversion error, so that conversion code
// reads as a list of fields.
type converter struct {
	resource string
	err      error
}

// time parses an RFC 3339 timestamp. An empty string is the zero time.
// Anything else that does not parse is an error: timestamps guard against
// stale reads (UpdateTime) and bound terms (OfferEndTime), so a silently
// zero time would be worse than a failed call.
func (c *converter) time(field, v string) time.Time {
	if v == "" || c.err != nil {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		c.err = fmt.Errorf("procurement: %s: field %s: cannot parse timestamp %q: %w",
			c.resource, field, truncate(v, 40), ErrMalformedResponse)
		return time.Time{}
	}
	return t
}

func convertAccount(a *cp.Account) (Account, error) {
	if a == nil {
		return Account{}, fmt.Errorf("procurement: empty account in response: %w", ErrMalformedResponse)
	}
	c := converter{resource: a.Name}
	out := Account{
		Name:                         a.Name,
		ID:                           lastSegment(a.Name, "accounts/"),
		Provider:                     a.Provider,
		State:                        AccountState(orDefault(a.State, string(AccountStateUnspecified))),
		ResellerParentBillingAccount: a.ResellerParentBillingAccount,
		InputProperties:              rawJSON(a.InputProperties),
		CreateTime:                   c.time("createTime", a.CreateTime),
		UpdateTime:                   c.time("updateTime", a.UpdateTime),
	}
	if len(a.Approvals) > 0 {
		out.Approvals = make([]Approval, 0, len(a.Approvals))
		for _, ap := range a.Approvals {
			if ap == nil {
				continue
			}
			out.Approvals = append(out.Approvals, Approval{
				Name:       ap.Name,
				State:      ApprovalState(orDefault(ap.State, string(ApprovalStateUnspecified))),
				Reason:     ap.Reason,
				UpdateTime: c.time("approvals.updateTime", ap.UpdateTime),
			})
		}
	}
	if c.err != nil {
		return Account{}, c.err
	}
	return out, nil
}

func convertEntitlement(e *cp.Entitlement) (Entitlement, error) {
	if e == nil {
		return Entitlement{}, fmt.Errorf("procurement: empty entitlement in response: %w", ErrMalformedResponse)
	}
	c := converter{resource: e.Name}
	out := Entitlement{
		Name:                    e.Name,
		ID:                      lastSegment(e.Name, "entitlements/"),
		Account:                 e.Account,
		AccountID:               lastSegment(e.Account, "accounts/"),
		Provider:                e.Provider,
		State:                   EntitlementState(orDefault(e.State, string(EntitlementStateUnspecified))),
		Product:                 e.Product,
		ProductExternalName:     e.ProductExternalName,
		QuoteExternalName:       e.QuoteExternalName,
		Plan:                    e.Plan,
		NewPendingPlan:          e.NewPendingPlan,
		Offer:                   e.Offer,
		NewPendingOffer:         e.NewPendingOffer,
		OfferDuration:           e.OfferDuration,
		NewPendingOfferDuration: e.NewPendingOfferDuration,
		OfferEndTime:            c.time("offerEndTime", e.OfferEndTime),
		NewOfferStartTime:       c.time("newOfferStartTime", e.NewOfferStartTime),
		NewOfferEndTime:         c.time("newOfferEndTime", e.NewOfferEndTime),
		SubscriptionEndTime:     c.time("subscriptionEndTime", e.SubscriptionEndTime),
		OrderID:                 e.OrderId,
		EntitlementBenefitIDs:   e.EntitlementBenefitIds,
		UsageReportingID:        e.UsageReportingId,
		MessageToUser:           e.MessageToUser,
		CancellationReason:      e.CancellationReason,
		InputProperties:         rawJSON(e.InputProperties),
		CreateTime:              c.time("createTime", e.CreateTime),
		UpdateTime:              c.time("updateTime", e.UpdateTime),
	}
	if len(e.Consumers) > 0 {
		out.Consumers = make([]Consumer, 0, len(e.Consumers))
		for _, co := range e.Consumers {
			if co != nil {
				out.Consumers = append(out.Consumers, Consumer{Project: co.Project})
			}
		}
	}
	if c.err != nil {
		return Entitlement{}, c.err
	}
	return out, nil
}

// lastSegment returns the id after the last "kind/" in a resource name
// ("providers/p/accounts/a" → "a"; the legacy "accounts/a" works too). A
// bare id is returned unchanged.
func lastSegment(name, kind string) string {
	if i := strings.LastIndex(name, kind); i >= 0 && (i == 0 || name[i-1] == '/') {
		return name[i+len(kind):]
	}
	if strings.Contains(name, "/") {
		return name[strings.LastIndexByte(name, '/')+1:]
	}
	return name
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func rawJSON(m []byte) json.RawMessage {
	if len(m) == 0 || string(m) == "null" {
		return nil
	}
	return json.RawMessage(m)
}
