package events_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/gcpmarketplace/gcpmarketplace/events"
)

// FuzzDecode checks the invariants every input must keep: Decode does not
// panic; an error is a *DecodeError matching ErrMalformed; an event has an
// id, a routable resource and a known type (or is an AccountMessage or an
// Unknown).
func FuzzDecode(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, data := range oneOfEachType {
		f.Add([]byte(data))
	}
	for _, s := range []string{
		``, `{}`, `null`, `[]`, `"x"`, `{"eventId":1}`,
		`{"eventId":"e","account":{"id":"a"},"entitlement":{"id":"n"}}`,
		`{"eventId":"e","eventType":"ACCOUNT_ACTIVE","entitlement":{"id":"n"}}`,
		`{"eventId":"e","entitlement":{"id":"n","updateTime":"2026-02-30T00:00:00Z","entitlementBenefitIds":["a",1,"\u00e9"]}}`,
		`{"eventId":"e","entitlement":{"id":"n","newPlan":{"a":[1,2,{"b":null}]},"newOfferEndTime":1e400}}`,
		"{\"eventId\":\"e\xff\",\"account\":{\"id\":\"\\ud800\"}}",
	} {
		f.Add([]byte(s))
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		ev, err := events.Decode(data)
		if err != nil {
			var de *events.DecodeError
			if !errors.As(err, &de) || !errors.Is(err, events.ErrMalformed) {
				t.Fatalf("error %v (%T) is not a *DecodeError matching ErrMalformed", err, err)
			}
			if ev != nil {
				t.Fatalf("event %T returned with error %v", ev, err)
			}
			if de.Payload != events.FingerprintOf(data) {
				t.Fatalf("error identifies the payload as %v", de.Payload)
			}
			return
		}
		if ev == nil {
			t.Fatal("nil event and nil error")
		}
		if ev.ID() == "" {
			t.Fatal("event without eventId")
		}
		res := ev.Resource()
		u, isUnknown := ev.(*events.Unknown)
		newType := isUnknown && u.Type() != ""
		if !newType && (res.ID == "" || (res.Kind != events.ResourceAccount && res.Kind != events.ResourceEntitlement)) {
			t.Fatalf("event %T without a resource: %+v", ev, res)
		}
		switch e := ev.(type) {
		case *events.Unknown:
			if e.Type().Known() {
				t.Fatalf("Unknown with known type %q", e.Type())
			}
			if !newType && (e.Account == nil) == (e.Entitlement == nil) {
				t.Fatal("Unknown without a new eventType must hold exactly one resource")
			}
			if (e.Account != nil && e.Account.ID == "") || (e.Entitlement != nil && e.Entitlement.ID == "") {
				t.Fatal("Unknown holds a resource without an id")
			}
			if string(e.Raw) != string(data) {
				t.Fatal("Unknown.Raw differs from the input")
			}
		case *events.AccountMessage:
			if e.Type() != "" || res.Kind != events.ResourceAccount {
				t.Fatalf("AccountMessage with type %q, kind %v", e.Type(), res.Kind)
			}
		default:
			if !ev.Type().Known() {
				t.Fatalf("%T with unknown type %q", ev, ev.Type())
			}
		}
		for _, p := range ev.Problems() {
			if p.Field == "" || p.Err == nil || len(p.Value.SHA256) != 16 {
				t.Fatalf("bad problem %+v", p)
			}
		}
		checkAgainstEncodingJSON(t, data, ev)
	})
}

// oneOfEachType holds the smallest message of each shape: the account
// message, one per eventType, and an eventType this package does not know.
var oneOfEachType = []string{
	`{"eventId":"e","account":{"id":"a"}}`,
	`{"eventId":"e","eventType":"ACCOUNT_CREATION_REQUESTED","account":{"id":"a"}}`,
	`{"eventId":"e","eventType":"ACCOUNT_ACTIVE","account":{"id":"a"}}`,
	`{"eventId":"e","eventType":"ACCOUNT_DELETED","account":{"id":"a"}}`,
	`{"eventId":"e","eventType":"ENTITLEMENT_CREATION_REQUESTED","entitlement":{"id":"n"}}`,
	`{"eventId":"e","eventType":"ENTITLEMENT_ACTIVE","entitlement":{"id":"n"}}`,
	`{"eventId":"e","eventType":"ENTITLEMENT_PLAN_CHANGE_REQUESTED","entitlement":{"id":"n"}}`,
	`{"eventId":"e","eventType":"ENTITLEMENT_PLAN_CHANGED","entitlement":{"id":"n"}}`,
	`{"eventId":"e","eventType":"ENTITLEMENT_PLAN_CHANGE_CANCELLED","entitlement":{"id":"n"}}`,
	`{"eventId":"e","eventType":"ENTITLEMENT_PENDING_CANCELLATION","entitlement":{"id":"n"}}`,
	`{"eventId":"e","eventType":"ENTITLEMENT_CANCELLATION_REVERTED","entitlement":{"id":"n"}}`,
	`{"eventId":"e","eventType":"ENTITLEMENT_CANCELLING","entitlement":{"id":"n"}}`,
	`{"eventId":"e","eventType":"ENTITLEMENT_CANCELLED","entitlement":{"id":"n"}}`,
	`{"eventId":"e","eventType":"ENTITLEMENT_DELETED","entitlement":{"id":"n"}}`,
	`{"eventId":"e","eventType":"ENTITLEMENT_OFFER_ACCEPTED","entitlement":{"id":"n"}}`,
	`{"eventId":"e","eventType":"ENTITLEMENT_RENEWED","entitlement":{"id":"n"}}`,
	`{"eventId":"e","eventType":"ENTITLEMENT_OFFER_ENDED","entitlement":{"id":"n"}}`,
	`{"eventId":"e","eventType":"ENTITLEMENT_SUSPENDED","entitlement":{"id":"n"}}`,
}

// checkAgainstEncodingJSON compares Decode's fast paths with plain
// encoding/json on inputs where every field has the expected JSON type.
func checkAgainstEncodingJSON(t *testing.T, data []byte, ev events.Event) {
	var m naiveMessage
	if json.Unmarshal(data, &m) != nil {
		return
	}
	h := header(ev)
	if h.EventID != m.EventID || string(h.EventType) != m.EventType || h.ProviderID != m.ProviderID {
		t.Fatalf("header %+v, encoding/json %q %q %q", h, m.EventID, m.EventType, m.ProviderID)
	}
	sameTime := func(field string, got time.Time, raw string) {
		want, err := time.Parse(time.RFC3339Nano, raw)
		if raw == "" || err != nil {
			want = time.Time{}
		}
		if !got.Equal(want) {
			t.Fatalf("%s: got %v, want %v from %q", field, got, want, raw)
		}
	}
	if u, ok := ev.(*events.Unknown); ok && u.Type() != "" && (u.Account == nil) == (u.Entitlement == nil) {
		return // a new eventType naming no resource, or both: nothing single to compare
	}
	if res := ev.Resource(); res.Kind == events.ResourceAccount {
		a := account(ev)
		if a.ID != m.Account.ID {
			t.Fatalf("account.id %q, encoding/json %q", a.ID, m.Account.ID)
		}
		sameTime("account.updateTime", a.UpdateTime, m.Account.UpdateTime)
		return
	}
	e, w := entitlement(ev), m.Entitlement
	duration := w.NewOfferDuration
	if duration == "" {
		duration = w.NewPendingOfferDuration
	}
	if e.ID != w.ID || e.NewPlan != w.NewPlan || e.NewProduct != w.NewProduct || e.NewOffer != w.NewOffer ||
		e.NewOfferDuration != duration || e.OrderID != w.OrderID ||
		!slices.Equal(e.EntitlementBenefitIDs, w.EntitlementBenefitIDs) {
		t.Fatalf("entitlement %+v, encoding/json %+v", e, w)
	}
	sameTime("entitlement.updateTime", e.UpdateTime, w.UpdateTime)
	sameTime("entitlement.newOfferStartTime", e.NewOfferStartTime, w.NewOfferStartTime)
	sameTime("entitlement.newOfferEndTime", e.NewOfferEndTime, w.NewOfferEndTime)
}

func header(ev events.Event) events.Header {
	switch e := ev.(type) {
	case *events.Unknown:
		return e.Header
	case *events.AccountMessage:
		return e.Header
	}
	return reflect.ValueOf(ev).Elem().FieldByName("Header").Interface().(events.Header)
}

func account(ev events.Event) events.Account {
	if u, ok := ev.(*events.Unknown); ok {
		return *u.Account
	}
	return reflect.ValueOf(ev).Elem().FieldByName("Account").Interface().(events.Account)
}

func entitlement(ev events.Event) events.Entitlement {
	if u, ok := ev.(*events.Unknown); ok {
		return *u.Entitlement
	}
	return reflect.ValueOf(ev).Elem().FieldByName("Entitlement").Interface().(events.Entitlement)
}
