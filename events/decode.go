package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
)

// wireMessage is the message as sent. Decode reads it in one pass and then
// checks and converts it.
type wireMessage struct {
	EventID     optString        `json:"eventId"`
	EventType   optString        `json:"eventType"`
	ProviderID  optString        `json:"providerId"`
	Account     *wireAccount     `json:"account"`
	Entitlement *wireEntitlement `json:"entitlement"`
}

type wireAccount struct {
	ID         optString `json:"id"`
	UpdateTime optTime   `json:"updateTime"`
}

type wireEntitlement struct {
	ID                      optString  `json:"id"`
	UpdateTime              optTime    `json:"updateTime"`
	NewPlan                 optString  `json:"newPlan"`
	NewProduct              optString  `json:"newProduct"`
	NewOffer                optString  `json:"newOffer"`
	NewOfferDuration        optString  `json:"newOfferDuration"`
	NewPendingOfferDuration optString  `json:"newPendingOfferDuration"`
	NewOfferStartTime       optTime    `json:"newOfferStartTime"`
	NewOfferEndTime         optTime    `json:"newOfferEndTime"`
	OrderID                 optString  `json:"orderId"`
	EntitlementBenefitIDs   optStrings `json:"entitlementBenefitIds"`
}

// problems collects the issues of optional fields.
type problems []FieldProblem

func (p *problems) add(field string, bad *issue) {
	if bad != nil {
		*p = append(*p, FieldProblem{Field: field, Value: bad.raw, Err: bad.err})
	}
}

func (w *wireAccount) account(p *problems) Account {
	p.add("account.updateTime", w.UpdateTime.bad)
	return Account{ID: w.ID.v, UpdateTime: w.UpdateTime.v}
}

func (w *wireEntitlement) entitlement(p *problems) Entitlement {
	p.add("entitlement.updateTime", w.UpdateTime.bad)
	p.add("entitlement.newPlan", w.NewPlan.bad)
	p.add("entitlement.newProduct", w.NewProduct.bad)
	p.add("entitlement.newOffer", w.NewOffer.bad)
	p.add("entitlement.newOfferDuration", w.NewOfferDuration.bad)
	p.add("entitlement.newPendingOfferDuration", w.NewPendingOfferDuration.bad)
	p.add("entitlement.newOfferStartTime", w.NewOfferStartTime.bad)
	p.add("entitlement.newOfferEndTime", w.NewOfferEndTime.bad)
	p.add("entitlement.orderId", w.OrderID.bad)
	p.add("entitlement.entitlementBenefitIds", w.EntitlementBenefitIDs.bad)
	duration := w.NewOfferDuration.v
	if duration == "" {
		duration = w.NewPendingOfferDuration.v
	}
	return Entitlement{
		ID:                    w.ID.v,
		UpdateTime:            w.UpdateTime.v,
		NewPlan:               w.NewPlan.v,
		NewProduct:            w.NewProduct.v,
		NewOffer:              w.NewOffer.v,
		NewOfferDuration:      duration,
		NewOfferStartTime:     w.NewOfferStartTime.v,
		NewOfferEndTime:       w.NewOfferEndTime.v,
		OrderID:               w.OrderID.v,
		EntitlementBenefitIDs: w.EntitlementBenefitIDs.v,
	}
}

// requireString checks a field the message cannot be routed without.
func requireString(data []byte, field string, s optString) error {
	if s.bad != nil {
		return newDecodeError(data, field, s.bad.err.Error(), nil)
	}
	if s.v == "" {
		return newDecodeError(data, field, "missing or empty", nil)
	}
	return nil
}

// Decode parses the data of one Marketplace Pub/Sub message.
//
// It returns one of this package's event types: the one for the message's
// eventType, [*AccountMessage] for an account message without eventType, or
// [*Unknown] for any other eventType (for an eventType this package does not
// know, only eventId is required: a new type from Google is never an error). It returns a [*DecodeError] (matching
// [ErrMalformed]) when the message cannot be routed: data is not a JSON
// object; eventId is missing, empty or not a string (a number is not
// accepted: Google sends strings, and a number would have to be rewritten
// into a dedupe key nobody sent); the message has neither or both of
// "account" and "entitlement", or the one a known eventType is about is
// absent; or the resource's id is missing, empty or not a string.
//
// Optional fields that cannot be read are left zero and listed by the
// event's Problems method. Unknown fields are ignored. Decode does not keep
// data, except as the copy in [Unknown.Raw]. It never panics.
func Decode(data []byte) (Event, error) {
	start := skipSpace(data, 0)
	if start == len(data) {
		return nil, newDecodeError(data, "", "empty payload", nil)
	}
	if data[start] != '{' {
		return nil, newDecodeError(data, "", "not a JSON object", nil)
	}
	var w wireMessage
	if err := json.Unmarshal(data, &w); err != nil {
		return nil, unmarshalError(data, err)
	}
	if err := requireString(data, "eventId", w.EventID); err != nil {
		return nil, err
	}

	typ := Type(w.EventType.v)
	if w.EventType.bad == nil && typ != "" && !typ.Known() {
		// A type added by Google after this package was written: never an
		// error, whatever resource it is about, so the processor can log and
		// acknowledge it instead of parking it as poison.
		return decodeUnknown(data, w), nil
	}

	var kind ResourceKind
	switch {
	case w.Account != nil && w.Entitlement != nil:
		return nil, newDecodeError(data, "account|entitlement", "both present, want exactly one", nil)
	case w.Account != nil:
		kind = ResourceAccount
		if err := requireString(data, "account.id", w.Account.ID); err != nil {
			return nil, err
		}
	case w.Entitlement != nil:
		kind = ResourceEntitlement
		if err := requireString(data, "entitlement.id", w.Entitlement.ID); err != nil {
			return nil, err
		}
	default:
		return nil, newDecodeError(data, "account|entitlement", "neither present, want exactly one", nil)
	}

	if want := typ.kind(); want != 0 && want != kind {
		return nil, newDecodeError(data, want.String(), "missing: "+string(typ)+" is about an "+want.String(), nil)
	}

	var p problems
	p.add("eventType", w.EventType.bad)
	p.add("providerId", w.ProviderID.bad)
	h := Header{EventID: w.EventID.v, EventType: typ, ProviderID: w.ProviderID.v}

	if kind == ResourceAccount {
		a := w.Account.account(&p)
		h.problems = p
		switch typ {
		case TypeAccountCreationRequested:
			return &AccountCreationRequested{h, a}, nil
		case TypeAccountActive:
			return &AccountActive{h, a}, nil
		case TypeAccountDeleted:
			return &AccountDeleted{h, a}, nil
		case "":
			if w.EventType.bad == nil {
				return &AccountMessage{h, a}, nil
			}
		}
		return &Unknown{Header: h, Account: &a, Raw: bytes.Clone(data)}, nil
	}

	e := w.Entitlement.entitlement(&p)
	h.problems = p
	switch typ {
	case TypeEntitlementCreationRequested:
		return &EntitlementCreationRequested{h, e}, nil
	case TypeEntitlementActive:
		return &EntitlementActive{h, e}, nil
	case TypeEntitlementPlanChangeRequested:
		return &EntitlementPlanChangeRequested{h, e}, nil
	case TypeEntitlementPlanChanged:
		return &EntitlementPlanChanged{h, e}, nil
	case TypeEntitlementPlanChangeCancelled:
		return &EntitlementPlanChangeCancelled{h, e}, nil
	case TypeEntitlementPendingCancellation:
		return &EntitlementPendingCancellation{h, e}, nil
	case TypeEntitlementCancellationReverted:
		return &EntitlementCancellationReverted{h, e}, nil
	case TypeEntitlementCancelling:
		return &EntitlementCancelling{h, e}, nil
	case TypeEntitlementCancelled:
		return &EntitlementCancelled{h, e}, nil
	case TypeEntitlementDeleted:
		return &EntitlementDeleted{h, e}, nil
	case TypeEntitlementOfferAccepted:
		return &EntitlementOfferAccepted{h, e}, nil
	case TypeEntitlementRenewed:
		return &EntitlementRenewed{h, e}, nil
	case TypeEntitlementOfferEnded:
		return &EntitlementOfferEnded{h, e}, nil
	}
	return &Unknown{Header: h, Entitlement: &e, Raw: bytes.Clone(data)}, nil
}

// unmarshalError turns an error of the single json.Unmarshal pass into a
// DecodeError. Only syntax errors and non-object account/entitlement values
// get here: every other field accepts any JSON value.
func unmarshalError(data []byte, err error) error {
	var syntax *json.SyntaxError
	if errors.As(err, &syntax) {
		return newDecodeError(data, "", "not valid JSON", err)
	}
	var typ *json.UnmarshalTypeError
	if errors.As(err, &typ) {
		// typ's message names this package's internal types, and its Value
		// can quote a number: say it in our words.
		got, _, _ := strings.Cut(typ.Value, " ")
		return newDecodeError(data, typ.Field, "want a JSON object, got "+got, nil)
	}
	return newDecodeError(data, "", "cannot decode", err)
}

// decodeUnknown builds the event for an eventType this package does not know.
// It keeps whichever resource the message names with a usable id; neither,
// both, or an unreadable id are not errors for such a message.
func decodeUnknown(data []byte, w wireMessage) *Unknown {
	var p problems
	p.add("providerId", w.ProviderID.bad)
	u := &Unknown{
		Header: Header{EventID: w.EventID.v, EventType: Type(w.EventType.v), ProviderID: w.ProviderID.v},
		Raw:    bytes.Clone(data),
	}
	if w.Account != nil && w.Account.ID.bad == nil && w.Account.ID.v != "" {
		a := w.Account.account(&p)
		u.Account = &a
	}
	if w.Entitlement != nil && w.Entitlement.ID.bad == nil && w.Entitlement.ID.v != "" {
		e := w.Entitlement.entitlement(&p)
		u.Entitlement = &e
	}
	u.problems = p
	return u
}
