package events_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gcpmarketplace/gcpmarketplace/events"
)

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339Nano, s)
	require.NoError(t, err)
	return v
}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	return b
}

func TestDecodeDocumentedPayloads(t *testing.T) {
	t.Parallel()
	hdr := func(id string, typ events.Type, provider string) events.Header {
		return events.Header{EventID: id, EventType: typ, ProviderID: provider}
	}
	const capID = "8f14e45f-ceea-467f-a0e6-3b2f1c9d7a10"
	const capOffer = "projects/123456789012/services/agent.endpoints.acme-public.cloud.goog/privateOffers/4d5e6f70-8192-4a3b-bc4d-5e6f70819203"
	simple := func(typ events.Type) (events.Header, events.Entitlement) {
		return hdr("ENTITLEMENT_"+strings.TrimPrefix(string(typ), "ENTITLEMENT_")+"-6f70e1d2-0a1b-4c2d-9e3f-4a5b6c7d8e9f", typ, "acme-public"),
			events.Entitlement{ID: "6f70e1d2-0a1b-4c2d-9e3f-4a5b6c7d8e9f", UpdateTime: mustTime(t, "2026-07-01T12:34:56.789Z")}
	}
	acct := events.Account{ID: "E-1234-5678-ABCD-EFGH"}

	tests := []struct {
		file string
		want func() events.Event
	}{
		{"account_message.json", func() events.Event {
			a := acct
			a.UpdateTime = mustTime(t, "2026-01-20T23:59:01.123456Z")
			return &events.AccountMessage{Header: hdr("CREATE_ACCOUNT-2b6f7a8e-1c4d-4f6a-9b1e-3d5c7a9e0f12", "", "acme-public"), Account: a}
		}},
		{"account_message_no_provider.json", func() events.Event {
			return &events.AccountMessage{
				Header:  hdr("CREATE_ACCOUNT-7d1e2f30-5a6b-4c7d-8e9f-0a1b2c3d4e5f", "", ""),
				Account: events.Account{ID: "E-9876-5432-DCBA-HGFE", UpdateTime: mustTime(t, "2025-11-02T08:00:00Z")},
			}
		}},
		{"account_creation_requested.json", func() events.Event {
			a := acct
			a.UpdateTime = mustTime(t, "2020-05-01T10:00:00Z")
			return &events.AccountCreationRequested{Header: hdr("ACCOUNT_CREATION_REQUESTED-1f2e3d4c-5b6a-4978-8695-a4b3c2d1e0f9", events.TypeAccountCreationRequested, "acme-public"), Account: a}
		}},
		{"account_active.json", func() events.Event {
			a := acct
			a.UpdateTime = mustTime(t, "2026-01-21T00:00:02.5Z")
			return &events.AccountActive{Header: hdr("ACCOUNT_ACTIVE-0a9b8c7d-6e5f-4a3b-9c2d-1e0f9a8b7c6d", events.TypeAccountActive, "acme-public"), Account: a}
		}},
		{"account_deleted.json", func() events.Event {
			a := acct
			a.UpdateTime = mustTime(t, "2026-03-01T12:00:00Z")
			return &events.AccountDeleted{Header: hdr("ACCOUNT_DELETED-3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f", events.TypeAccountDeleted, ""), Account: a}
		}},
		{"entitlement_creation_requested.json", func() events.Event {
			return &events.EntitlementCreationRequested{
				Header: hdr("CREATE_ENTITLEMENT-9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b", events.TypeEntitlementCreationRequested, "acme-public"),
				Entitlement: events.Entitlement{
					ID:               "9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b",
					UpdateTime:       mustTime(t, "2026-01-21T00:06:19.754732Z"),
					NewOfferDuration: "P2Y3M", // from the alias newPendingOfferDuration
				},
			}
		}},
		{"entitlement_creation_requested_private_offer.json", func() events.Event {
			return &events.EntitlementCreationRequested{
				Header: hdr("CREATE_ENTITLEMENT-4b5c6d7e-8f90-4a1b-9c2d-3e4f5a6b7c8d", events.TypeEntitlementCreationRequested, ""),
				Entitlement: events.Entitlement{
					ID:               "4b5c6d7e-8f90-4a1b-9c2d-3e4f5a6b7c8d",
					UpdateTime:       mustTime(t, "2026-02-10T09:30:00.000001Z"),
					NewOfferDuration: "P1Y6M", // and "newOfferEndTime": "" is the zero time
				},
			}
		}},
		{"entitlement_offer_accepted_docs.json", func() events.Event {
			return &events.EntitlementOfferAccepted{
				Header: hdr("CREATE_ENTITLEMENT-5a6b7c8d-9e0f-4a1b-8c2d-3e4f5a6b7c8d", events.TypeEntitlementOfferAccepted, ""),
				Entitlement: events.Entitlement{
					ID:                "5a6b7c8d-9e0f-4a1b-8c2d-3e4f5a6b7c8d",
					UpdateTime:        mustTime(t, "2026-02-01T10:00:00Z"),
					NewOfferStartTime: mustTime(t, "2026-03-01T00:00:00Z"),
					NewOfferEndTime:   mustTime(t, "2027-03-01T00:00:00Z"),
				},
			}
		}},
		{"entitlement_offer_accepted_capture.json", func() events.Event {
			return &events.EntitlementOfferAccepted{
				Header: hdr("CREATE_ENTITLEMENT-"+capID, events.TypeEntitlementOfferAccepted, "cpe-isv-partner-experiments"),
				Entitlement: events.Entitlement{
					ID:                    capID,
					UpdateTime:            mustTime(t, "2026-01-21T00:06:19.754732Z"),
					NewPlan:               "AIAgentEnterprisePlan-P2Y",
					NewProduct:            capOffer,
					NewOffer:              capOffer,
					OrderID:               capID,
					EntitlementBenefitIDs: []string{"c9f0f895-fb98-4b91-8c53-1f2e3d4c5b6a"},
				},
			}
		}},
		{"entitlement_cancelled_capture.json", func() events.Event {
			return &events.EntitlementCancelled{
				Header:      hdr("ENTITLEMENT_CANCELLED-1b2c3d4e-5f60-4718-8293-a4b5c6d7e8f9", events.TypeEntitlementCancelled, "doit-public"),
				Entitlement: events.Entitlement{ID: "1b2c3d4e-5f60-4718-8293-a4b5c6d7e8f9", UpdateTime: mustTime(t, "2022-07-18T09:42:51.275760Z")},
			}
		}},
		{"entitlement_cancelled_docs.json", func() events.Event { // cancellationDate is not ours: ignored
			return &events.EntitlementCancelled{
				Header:      hdr("ENTITLEMENT_CANCELLED-2c3d4e5f-6071-4829-93a4-b5c6d7e8f9a0", events.TypeEntitlementCancelled, ""),
				Entitlement: events.Entitlement{ID: "2c3d4e5f-6071-4829-93a4-b5c6d7e8f9a0", UpdateTime: mustTime(t, "2026-04-01T08:15:00Z")},
			}
		}},
		{"entitlement_plan_change_requested.json", func() events.Event {
			return &events.EntitlementPlanChangeRequested{
				Header:      hdr("PLAN_CHANGE-3d4e5f60-7182-4930-a4b5-c6d7e8f9a0b1", events.TypeEntitlementPlanChangeRequested, "acme-public"),
				Entitlement: events.Entitlement{ID: "3d4e5f60-7182-4930-a4b5-c6d7e8f9a0b1", NewPlan: "ultimate", UpdateTime: mustTime(t, "2026-05-05T05:05:05Z")},
			}
		}},
		{"entitlement_deleted.json", func() events.Event {
			return &events.EntitlementDeleted{
				Header:      hdr("ENTITLEMENT_DELETED-4e5f6071-8293-4a41-b5c6-d7e8f9a0b1c2", events.TypeEntitlementDeleted, ""),
				Entitlement: events.Entitlement{ID: "4e5f6071-8293-4a41-b5c6-d7e8f9a0b1c2", UpdateTime: mustTime(t, "2026-06-01T00:00:00Z")},
			}
		}},
		{"entitlement_active.json", func() events.Event {
			h, e := simple(events.TypeEntitlementActive)
			return &events.EntitlementActive{Header: h, Entitlement: e}
		}},
		{"entitlement_plan_changed.json", func() events.Event {
			h, e := simple(events.TypeEntitlementPlanChanged)
			return &events.EntitlementPlanChanged{Header: h, Entitlement: e}
		}},
		{"entitlement_plan_change_cancelled.json", func() events.Event {
			h, e := simple(events.TypeEntitlementPlanChangeCancelled)
			return &events.EntitlementPlanChangeCancelled{Header: h, Entitlement: e}
		}},
		{"entitlement_pending_cancellation.json", func() events.Event {
			h, e := simple(events.TypeEntitlementPendingCancellation)
			return &events.EntitlementPendingCancellation{Header: h, Entitlement: e}
		}},
		{"entitlement_cancellation_reverted.json", func() events.Event {
			h, e := simple(events.TypeEntitlementCancellationReverted)
			return &events.EntitlementCancellationReverted{Header: h, Entitlement: e}
		}},
		{"entitlement_cancelling.json", func() events.Event {
			h, e := simple(events.TypeEntitlementCancelling)
			return &events.EntitlementCancelling{Header: h, Entitlement: e}
		}},
		{"entitlement_renewed.json", func() events.Event {
			h, e := simple(events.TypeEntitlementRenewed)
			return &events.EntitlementRenewed{Header: h, Entitlement: e}
		}},
		{"entitlement_offer_ended.json", func() events.Event {
			h, e := simple(events.TypeEntitlementOfferEnded)
			return &events.EntitlementOfferEnded{Header: h, Entitlement: e}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			got, err := events.Decode(readTestdata(t, tt.file))
			require.NoError(t, err)
			want := tt.want()
			assert.Equal(t, want, got)
			assert.Empty(t, got.Problems())
			assert.Equal(t, want.ID(), got.ID())
			assert.Equal(t, want.Type(), got.Type())
			assert.NotEmpty(t, got.Resource().ID)
		})
	}

	// Every known type is covered by a file above.
	covered := map[events.Type]bool{}
	for _, tt := range tests {
		covered[tt.want().Type()] = true
	}
	for _, typ := range allTypes {
		assert.True(t, covered[typ], "no testdata for %s", typ)
	}
}

var allTypes = []events.Type{
	events.TypeAccountCreationRequested, events.TypeAccountActive, events.TypeAccountDeleted,
	events.TypeEntitlementCreationRequested, events.TypeEntitlementActive,
	events.TypeEntitlementPlanChangeRequested, events.TypeEntitlementPlanChanged,
	events.TypeEntitlementPlanChangeCancelled, events.TypeEntitlementPendingCancellation,
	events.TypeEntitlementCancellationReverted, events.TypeEntitlementCancelling,
	events.TypeEntitlementCancelled, events.TypeEntitlementDeleted,
	events.TypeEntitlementOfferAccepted, events.TypeEntitlementRenewed, events.TypeEntitlementOfferEnded,
}

func TestType(t *testing.T) {
	t.Parallel()
	require.Len(t, allTypes, 16)
	for _, typ := range allTypes {
		assert.True(t, typ.Known(), typ)
		assert.Equal(t, string(typ), typ.String())
	}
	for _, typ := range []events.Type{"", "ENTITLEMENT_SUSPENDED", "entitlement_active", " ENTITLEMENT_ACTIVE"} {
		assert.False(t, typ.Known(), typ)
	}
	assert.Equal(t, "account", events.ResourceAccount.String())
	assert.Equal(t, "entitlement", events.ResourceEntitlement.String())
	assert.Equal(t, "ResourceKind(0)", events.ResourceKind(0).String())
}

func TestDecodeResource(t *testing.T) {
	t.Parallel()
	ev, err := events.Decode(readTestdata(t, "entitlement_cancelled_capture.json"))
	require.NoError(t, err)
	assert.Equal(t, events.Resource{Kind: events.ResourceEntitlement, ID: "1b2c3d4e-5f60-4718-8293-a4b5c6d7e8f9"}, ev.Resource())

	ev, err = events.Decode(readTestdata(t, "account_message.json"))
	require.NoError(t, err)
	assert.Equal(t, events.Resource{Kind: events.ResourceAccount, ID: "E-1234-5678-ABCD-EFGH"}, ev.Resource())

	assert.Equal(t, events.Resource{}, (&events.Unknown{}).Resource())
}

func TestDecodeUnknown(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		data     string
		wantType events.Type
		wantRes  events.Resource
		problems int
	}{
		{"new entitlement type", string(readTestdata(t, "unknown_event_type.json")), "ENTITLEMENT_SUSPENDED",
			events.Resource{Kind: events.ResourceEntitlement, ID: "7a8b9c0d-1e2f-4a3b-8c4d-5e6f7a8b9c0d"}, 0},
		{"new account type", `{"eventId":"e1","eventType":"ACCOUNT_SUSPENDED","account":{"id":"a1"}}`, "ACCOUNT_SUSPENDED",
			events.Resource{Kind: events.ResourceAccount, ID: "a1"}, 0},
		{"entitlement without eventType", `{"eventId":"e1","entitlement":{"id":"n1"}}`, "",
			events.Resource{Kind: events.ResourceEntitlement, ID: "n1"}, 0},
		{"lower-case type", `{"eventId":"e1","eventType":"entitlement_active","entitlement":{"id":"n1"}}`, "entitlement_active",
			events.Resource{Kind: events.ResourceEntitlement, ID: "n1"}, 0},
		{"eventType a number", `{"eventId":"e1","eventType":7,"account":{"id":"a1"}}`, "",
			events.Resource{Kind: events.ResourceAccount, ID: "a1"}, 1},
		{"eventType an object", `{"eventId":"e1","eventType":{"x":1},"entitlement":{"id":"n1"}}`, "",
			events.Resource{Kind: events.ResourceEntitlement, ID: "n1"}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			data := []byte(tt.data)
			ev, err := events.Decode(data)
			require.NoError(t, err)
			u, ok := ev.(*events.Unknown)
			require.True(t, ok, "got %T", ev)
			assert.Equal(t, tt.wantType, u.Type())
			assert.False(t, u.Type().Known())
			assert.Equal(t, "e1"[:0]+u.EventID, u.ID())
			assert.Equal(t, tt.wantRes, u.Resource())
			assert.Equal(t, tt.wantRes.Kind == events.ResourceAccount, u.Account != nil)
			assert.Equal(t, tt.wantRes.Kind == events.ResourceEntitlement, u.Entitlement != nil)
			assert.Len(t, u.Problems(), tt.problems)
			assert.Equal(t, data, u.Raw)

			data[0] = 'X' // Raw is a copy
			assert.Equal(t, byte('{'), u.Raw[0])
		})
	}

	// A type Google adds later is never an error, whatever it is about.
	for _, data := range []string{
		`{"eventId":"e1","eventType":"ORDER_CREATED","order":{"id":"o1"}}`,
		`{"eventId":"e1","eventType":"ORDER_CREATED","account":{"id":"a1"},"entitlement":{"id":"n1"}}`,
		`{"eventId":"e1","eventType":"ORDER_CREATED","entitlement":{"id":7}}`,
	} {
		ev, err := events.Decode([]byte(data))
		require.NoError(t, err, data)
		u, ok := ev.(*events.Unknown)
		require.True(t, ok, "got %T", ev)
		assert.Equal(t, events.Type("ORDER_CREATED"), u.Type())
		assert.Equal(t, []byte(data), u.Raw)
	}

	ev, err := events.Decode(readTestdata(t, "unknown_event_type.json"))
	require.NoError(t, err)
	assert.Equal(t, mustTime(t, "2026-08-01T00:00:00Z"), ev.(*events.Unknown).Entitlement.UpdateTime)
}

func TestDecodeAccountMessageVariants(t *testing.T) {
	t.Parallel()
	for _, data := range []string{
		`{"eventId":"e1","account":{"id":"a1"}}`,
		`{"eventId":"e1","eventType":"","account":{"id":"a1"}}`,
		`{"eventId":"e1","eventType":null,"account":{"id":"a1"}}`,
		`{"eventId":"e1","account":{"id":"a1"},"entitlement":null}`,
		" \n\t{\"eventId\":\"e1\",\"account\":{\"id\":\"a1\",\"newPlan\":5}} \n",
	} {
		ev, err := events.Decode([]byte(data))
		require.NoError(t, err, data)
		am, ok := ev.(*events.AccountMessage)
		require.True(t, ok, "%s: got %T", data, ev)
		assert.Equal(t, "a1", am.Account.ID)
		assert.Empty(t, am.Problems(), data)
	}
}

func TestDecodeFieldDetails(t *testing.T) {
	t.Parallel()
	t.Run("both duration keys: newOfferDuration wins", func(t *testing.T) {
		t.Parallel()
		ev, err := events.Decode([]byte(`{"eventId":"e","eventType":"ENTITLEMENT_ACTIVE","entitlement":{"id":"n","newPendingOfferDuration":"P1Y","newOfferDuration":"P2Y"}}`))
		require.NoError(t, err)
		assert.Equal(t, "P2Y", ev.(*events.EntitlementActive).Entitlement.NewOfferDuration)
	})
	t.Run("empty newOfferDuration falls back to the alias", func(t *testing.T) {
		t.Parallel()
		ev, err := events.Decode([]byte(`{"eventId":"e","eventType":"ENTITLEMENT_ACTIVE","entitlement":{"id":"n","newOfferDuration":"","newPendingOfferDuration":"P1Y"}}`))
		require.NoError(t, err)
		assert.Equal(t, "P1Y", ev.(*events.EntitlementActive).Entitlement.NewOfferDuration)
	})
	t.Run("escapes and non-ASCII", func(t *testing.T) {
		t.Parallel()
		ev, err := events.Decode([]byte(`{"eventId":"e\u0031","eventType":"ENTITLEMENT_ACTIVE","providerId":"acmé","entitlement":{"id":"n\"1","newPlan":"pro\n","entitlementBenefitIds":["a\u00e9", "b" ,"ü"],"orderId":"\ud83d\ude00"}}`))
		require.NoError(t, err)
		e := ev.(*events.EntitlementActive)
		assert.Equal(t, "e1", e.ID())
		assert.Equal(t, "acmé", e.ProviderID)
		assert.Equal(t, "n\"1", e.Entitlement.ID)
		assert.Equal(t, "pro\n", e.Entitlement.NewPlan)
		assert.Equal(t, "😀", e.Entitlement.OrderID)
		assert.Equal(t, []string{"aé", "b", "ü"}, e.Entitlement.EntitlementBenefitIDs)
	})
	t.Run("invalid UTF-8 is replaced as encoding/json does", func(t *testing.T) {
		t.Parallel()
		ev, err := events.Decode([]byte("{\"eventId\":\"e\",\"eventType\":\"ENTITLEMENT_ACTIVE\",\"entitlement\":{\"id\":\"n\xff\"}}"))
		require.NoError(t, err)
		assert.Equal(t, "n\uFFFD", ev.Resource().ID)
	})
	t.Run("time zones and precision", func(t *testing.T) {
		t.Parallel()
		ev, err := events.Decode([]byte(`{"eventId":"e","eventType":"ENTITLEMENT_OFFER_ACCEPTED","entitlement":{"id":"n","updateTime":"2026-01-21T02:06:19.123456789+02:00","newOfferStartTime":null}}`))
		require.NoError(t, err)
		e := ev.(*events.EntitlementOfferAccepted).Entitlement
		assert.True(t, e.UpdateTime.Equal(time.Date(2026, 1, 21, 0, 6, 19, 123456789, time.UTC)))
		assert.True(t, e.NewOfferStartTime.IsZero())
	})
	t.Run("empty and null lists are nil", func(t *testing.T) {
		t.Parallel()
		for _, list := range []string{`[]`, `[ ]`, `null`} {
			ev, err := events.Decode([]byte(`{"eventId":"e","eventType":"ENTITLEMENT_ACTIVE","entitlement":{"id":"n","entitlementBenefitIds":` + list + `}}`))
			require.NoError(t, err)
			assert.Nil(t, ev.(*events.EntitlementActive).Entitlement.EntitlementBenefitIDs, list)
			assert.Empty(t, ev.Problems(), list)
		}
	})
	t.Run("lists with spaces", func(t *testing.T) {
		t.Parallel()
		for list, want := range map[string][]string{
			"[ \"a\" ,\n\"b\" ]": {"a", "b"},
			`["a"]`:              {"a"},
			`[""]`:               {""},
			`["a",["b"],"c"]`:    {"a", "c"},
		} {
			ev, err := events.Decode([]byte(`{"eventId":"e","eventType":"ENTITLEMENT_ACTIVE","entitlement":{"id":"n","entitlementBenefitIds":` + list + `}}`))
			require.NoError(t, err)
			assert.Equal(t, want, ev.(*events.EntitlementActive).Entitlement.EntitlementBenefitIDs, list)
		}
	})
	t.Run("duplicate keys: the last wins", func(t *testing.T) {
		t.Parallel()
		ev, err := events.Decode([]byte(`{"eventId":5,"eventId":"e2","eventType":"ENTITLEMENT_ACTIVE","entitlement":{"id":"n","newPlan":5,"newPlan":"p"}}`))
		require.NoError(t, err)
		assert.Equal(t, "e2", ev.ID())
		assert.Equal(t, "p", ev.(*events.EntitlementActive).Entitlement.NewPlan)
		assert.Empty(t, ev.Problems())
	})
}

func TestDecodeMalformed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		data      string
		wantField string
		wantText  string
		syntax    bool
	}{
		{"nil", "", "", "empty payload", false},
		{"whitespace", " \n\t ", "", "empty payload", false},
		{"not JSON", "hello", "", "not a JSON object", false},
		{"array", `[{"eventId":"e"}]`, "", "not a JSON object", false},
		{"string", `"eventId"`, "", "not a JSON object", false},
		{"number", `42`, "", "not a JSON object", false},
		{"null", `null`, "", "not a JSON object", false},
		{"truncated", `{"eventId":"e","account":{"id":"a"}`, "", "not valid JSON", true},
		{"trailing garbage", `{"eventId":"e","account":{"id":"a"}} x`, "", "not valid JSON", true},
		{"two objects", `{"eventId":"e","account":{"id":"a"}}{}`, "", "not valid JSON", true},
		{"trailing comma", `{"eventId":"e","account":{"id":"a",},}`, "", "not valid JSON", true},
		{"empty object", `{}`, "eventId", "missing or empty", false},
		{"no eventId", `{"eventType":"ENTITLEMENT_ACTIVE","entitlement":{"id":"n"}}`, "eventId", "missing or empty", false},
		{"empty eventId", `{"eventId":"","entitlement":{"id":"n"}}`, "eventId", "missing or empty", false},
		{"null eventId", `{"eventId":null,"entitlement":{"id":"n"}}`, "eventId", "missing or empty", false},
		{"numeric eventId", `{"eventId":12345,"entitlement":{"id":"n"}}`, "eventId", "want a string, got a number", false},
		{"object eventId", `{"eventId":{"id":"x"},"entitlement":{"id":"n"}}`, "eventId", "want a string, got an object", false},
		{"neither resource", `{"eventId":"e","eventType":"ENTITLEMENT_ACTIVE"}`, "account|entitlement", "neither present", false},
		{"both null", `{"eventId":"e","account":null,"entitlement":null}`, "account|entitlement", "neither present", false},
		{"both resources", `{"eventId":"e","account":{"id":"a"},"entitlement":{"id":"n"}}`, "account|entitlement", "both present", false},
		{"account a string", `{"eventId":"e","account":"a"}`, "account", "want a JSON object, got string", false},
		{"entitlement an array", `{"eventId":"e","entitlement":[{"id":"n"}]}`, "entitlement", "want a JSON object, got array", false},
		{"entitlement a number", `{"eventId":"e","entitlement":12345678901234567890}`, "entitlement", "want a JSON object, got number", false},
		{"entitlement without id", `{"eventId":"e","eventType":"ENTITLEMENT_ACTIVE","entitlement":{"updateTime":"2026-01-01T00:00:00Z"}}`, "entitlement.id", "missing or empty", false},
		{"empty entitlement id", `{"eventId":"e","entitlement":{"id":""}}`, "entitlement.id", "missing or empty", false},
		{"numeric entitlement id", `{"eventId":"e","entitlement":{"id":42}}`, "entitlement.id", "want a string, got a number", false},
		{"empty account", `{"eventId":"e","account":{}}`, "account.id", "missing or empty", false},
		{"null account id", `{"eventId":"e","account":{"id":null}}`, "account.id", "missing or empty", false},
		{"list account id", `{"eventId":"e","account":{"id":["a"]}}`, "account.id", "want a string, got an array", false},
		{"account type with entitlement", `{"eventId":"e","eventType":"ACCOUNT_ACTIVE","entitlement":{"id":"n"}}`, "account", "ACCOUNT_ACTIVE is about an account", false},
		{"entitlement type with account", `{"eventId":"e","eventType":"ENTITLEMENT_ACTIVE","account":{"id":"a"}}`, "entitlement", "ENTITLEMENT_ACTIVE is about an entitlement", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ev, err := events.Decode([]byte(tt.data))
			require.Error(t, err)
			assert.Nil(t, ev)
			assert.ErrorIs(t, err, events.ErrMalformed)
			assert.True(t, events.IsPermanent(err))
			var de *events.DecodeError
			require.ErrorAs(t, err, &de)
			assert.Equal(t, tt.wantField, de.Field)
			assert.Contains(t, err.Error(), tt.wantText)
			assert.True(t, strings.HasPrefix(err.Error(), "events: malformed message: "), err.Error())
			assert.NotContains(t, err.Error(), "wireMessage", "internal names leak")
			assert.Equal(t, events.FingerprintOf([]byte(tt.data)), de.Payload)
			if tt.syntax {
				assert.Error(t, de.Unwrap())
			}
		})
	}
}

func TestDecodeLenientOptionalFields(t *testing.T) {
	t.Parallel()
	// Each case puts one odd value into an otherwise valid message: the
	// event still decodes, that field is zero and Problems names it.
	ent := func(fields string) string {
		return `{"eventId":"e","eventType":"ENTITLEMENT_ACTIVE","providerId":"p","entitlement":{"id":"n",` + fields + `}}`
	}
	tests := []struct {
		name      string
		data      string
		wantField string
		wantRaw   string
		wantErr   string
		check     func(t *testing.T, e events.Event)
	}{
		{"updateTime not RFC 3339", ent(`"updateTime":"yesterday"`), "entitlement.updateTime", `"yesterday"`, "want an RFC 3339 time", nil},
		{"updateTime a number", ent(`"updateTime":1737417979`), "entitlement.updateTime", `1737417979`, "want an RFC 3339 time string, got a number", nil},
		{"updateTime out of range", ent(`"updateTime":"2026-13-45T25:61:00Z"`), "entitlement.updateTime", `"2026-13-45T25:61:00Z"`, "want an RFC 3339 time", nil},
		{"updateTime without zone", ent(`"updateTime":"2026-01-21T00:06:19"`), "entitlement.updateTime", `"2026-01-21T00:06:19"`, "want an RFC 3339 time", nil},
		{"newOfferStartTime an object", ent(`"newOfferStartTime":{"seconds":1}`), "entitlement.newOfferStartTime", `{"seconds":1}`, "got an object", nil},
		{"newOfferEndTime a bool", ent(`"newOfferEndTime":true`), "entitlement.newOfferEndTime", `true`, "got a boolean", nil},
		{"newPlan a number", ent(`"newPlan":42`), "entitlement.newPlan", `42`, "want a string, got a number", nil},
		{"newProduct an object", ent(`"newProduct":{"name":"x"}`), "entitlement.newProduct", `{"name":"x"}`, "got an object", nil},
		{"newOffer a list", ent(`"newOffer":["o"]`), "entitlement.newOffer", `["o"]`, "got an array", nil},
		{"newOfferDuration a number", ent(`"newOfferDuration":12`), "entitlement.newOfferDuration", `12`, "got a number", nil},
		{"newPendingOfferDuration an object", ent(`"newPendingOfferDuration":{"years":2}`), "entitlement.newPendingOfferDuration", `{"years":2}`, "got an object", nil},
		{"orderId a number", ent(`"orderId":123456`), "entitlement.orderId", `123456`, "got a number", nil},
		{"benefit ids an object", ent(`"entitlementBenefitIds":{"0":"b"}`), "entitlement.entitlementBenefitIds", `{"0":"b"}`, "want an array of strings, got an object", nil},
		{"benefit ids a string", ent(`"entitlementBenefitIds":"b1"`), "entitlement.entitlementBenefitIds", `"b1"`, "want an array of strings, got a string", nil},
		{"benefit ids with a number", ent(`"entitlementBenefitIds":["b1", 2, "b3", {}]`), "entitlement.entitlementBenefitIds", `2`, "element 1: want a string, got a number",
			func(t *testing.T, e events.Event) {
				assert.Equal(t, []string{"b1", "b3"}, e.(*events.EntitlementActive).Entitlement.EntitlementBenefitIDs)
			}},
		{"benefit ids with null", ent(`"entitlementBenefitIds":[null]`), "entitlement.entitlementBenefitIds", `null`, "element 0: want a string, got null", nil},
		{"providerId a number", `{"eventId":"e","eventType":"ENTITLEMENT_ACTIVE","providerId":7,"entitlement":{"id":"n"}}`, "providerId", `7`, "got a number",
			func(t *testing.T, e events.Event) { assert.Empty(t, e.(*events.EntitlementActive).ProviderID) }},
		{"account updateTime unparseable", `{"eventId":"e","eventType":"ACCOUNT_ACTIVE","account":{"id":"a","updateTime":"2026-02-30T00:00:00Z"}}`, "account.updateTime", `"2026-02-30T00:00:00Z"`, "want an RFC 3339 time",
			func(t *testing.T, e events.Event) {
				a := e.(*events.AccountActive).Account
				assert.Equal(t, "a", a.ID)
				assert.True(t, a.UpdateTime.IsZero())
			}},
		{"eventType a number", `{"eventId":"e","eventType":3,"entitlement":{"id":"n"}}`, "eventType", `3`, "got a number",
			func(t *testing.T, e events.Event) { assert.IsType(t, &events.Unknown{}, e) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ev, err := events.Decode([]byte(tt.data))
			require.NoError(t, err)
			require.Len(t, ev.Problems(), 1, "%v", ev.Problems())
			p := ev.Problems()[0]
			assert.Equal(t, tt.wantField, p.Field)
			assert.Equal(t, events.FingerprintOf([]byte(tt.wantRaw)), p.Value)
			require.Error(t, p.Err)
			assert.Contains(t, p.Err.Error(), tt.wantErr)
			assert.Contains(t, p.String(), tt.wantField+": ")
			if ea, ok := ev.(*events.EntitlementActive); ok {
				e := ea.Entitlement
				assert.Equal(t, "n", e.ID)
				// the odd field is zero; every lenient field here was the odd one
				assert.True(t, e.UpdateTime.IsZero() && e.NewOfferStartTime.IsZero() && e.NewOfferEndTime.IsZero())
				assert.Empty(t, e.NewPlan+e.NewProduct+e.NewOffer+e.NewOfferDuration+e.OrderID)
			}
			if tt.check != nil {
				tt.check(t, ev)
			}
		})
	}

	t.Run("several problems at once", func(t *testing.T) {
		t.Parallel()
		ev, err := events.Decode([]byte(ent(`"updateTime":"x","newPlan":1,"newOffer":"ok","orderId":[],"entitlementBenefitIds":7`)))
		require.NoError(t, err)
		var fields []string
		for _, p := range ev.Problems() {
			fields = append(fields, p.Field)
		}
		assert.Equal(t, []string{"entitlement.updateTime", "entitlement.newPlan", "entitlement.orderId", "entitlement.entitlementBenefitIds"}, fields)
		assert.Equal(t, "ok", ev.(*events.EntitlementActive).Entitlement.NewOffer)
	})
}

// A message can hold customer identifiers: errors and problems never quote
// the payload or a value, not even their first bytes; they give its
// Fingerprint.
func TestDecodeNeverQuotesPayloads(t *testing.T) {
	t.Parallel()
	secret := "cust-" + strings.Repeat("S3CR3T-0123456789-", 100) + "TAIL"
	leak := "cust-"
	malformed := []string{
		`{"eventId":"e","account":"cust-1"}`, // short: a prefix would be all of it
		`{"eventId":"cust-1"}`,
		secret,
		`"` + secret + `"`,
		`{"eventId":"` + secret + `"}`,
		`{"eventId":"` + secret + `","entitlement":{"id":42,"newPlan":"` + secret + `"}}`,
		`{"eventId":"` + secret + `","account":"` + secret + `"}`,
		`{"eventId":"` + secret + `","eventType":"ACCOUNT_ACTIVE","entitlement":{"id":"` + secret + `"}}`,
		`{"eventId":"` + secret + `", "x":"` + secret + `\q"}`,
		`{"eventId":1` + secret + `}`,
		`{"eventId":"e","entitlement":{"id":"` + secret + `"}}}`,
		`{"` + secret + `":1}`,
	}
	for _, data := range malformed {
		_, err := events.Decode([]byte(data))
		require.Error(t, err)
		msg := err.Error()
		assert.Less(t, len(msg), 300, msg)
		assert.NotContains(t, msg, leak, msg)
		assert.NotContains(t, msg, "TAIL", msg)
		var de *events.DecodeError
		require.ErrorAs(t, err, &de)
		assert.Equal(t, events.FingerprintOf([]byte(data)), de.Payload)
		assert.Contains(t, msg, fmt.Sprintf("(payload %d bytes, sha256 ", len(data)))
	}

	lenient := []string{
		`{"eventId":"e","eventType":"ENTITLEMENT_ACTIVE","entitlement":{"id":"n","newPlan":["cust-1"]}}`,
		`{"eventId":"e","eventType":"ENTITLEMENT_ACTIVE","entitlement":{"id":"n","updateTime":"` + secret + `"}}`,
		`{"eventId":"e","eventType":"ENTITLEMENT_ACTIVE","entitlement":{"id":"n","newOfferEndTime":"2026-01-01T00:00:00Z` + secret + `"}}`,
		`{"eventId":"e","eventType":"ENTITLEMENT_ACTIVE","entitlement":{"id":"n","newPlan":{"k":"` + secret + `"}}}`,
		`{"eventId":"e","eventType":"ENTITLEMENT_ACTIVE","entitlement":{"id":"n","entitlementBenefitIds":[1,"` + secret + `"]}}`,
		`{"eventId":"e","eventType":"ENTITLEMENT_ACTIVE","entitlement":{"id":"n","entitlementBenefitIds":[{"` + secret + `":1}]}}`,
		`{"eventId":"e","eventType":"ENTITLEMENT_ACTIVE","entitlement":{"id":"n","entitlementBenefitIds":"` + secret + `"}}`,
	}
	for _, data := range lenient {
		ev, err := events.Decode([]byte(data))
		require.NoError(t, err)
		require.Len(t, ev.Problems(), 1)
		p := ev.Problems()[0]
		assert.Equal(t, 16, len(p.Value.SHA256))
		assert.NotContains(t, p.Err.Error(), "S3CR3T")
		assert.NotContains(t, p.String(), leak)
		assert.NotContains(t, p.String(), "TAIL")
	}
}

func TestDecodeDoesNotKeepInput(t *testing.T) {
	t.Parallel()
	data := readTestdata(t, "entitlement_offer_accepted_capture.json")
	ev, err := events.Decode(data)
	require.NoError(t, err)
	want := *ev.(*events.EntitlementOfferAccepted)
	want.Entitlement.EntitlementBenefitIDs = append([]string(nil), want.Entitlement.EntitlementBenefitIDs...)
	for i := range data {
		data[i] = 'x'
	}
	assert.Equal(t, want, *ev.(*events.EntitlementOfferAccepted))
	assert.False(t, bytes.Contains(data, []byte("{")))
}

func TestPermanent(t *testing.T) {
	t.Parallel()
	base := errors.New("customer plan is not sold any more")
	assert.NoError(t, events.Permanent(nil))
	p := events.Permanent(base)
	assert.True(t, events.IsPermanent(p))
	assert.ErrorIs(t, p, base)
	assert.Equal(t, base.Error(), p.Error())
	assert.True(t, events.IsPermanent(errors.Join(errors.New("other"), p)))
	assert.True(t, events.IsPermanent(wrap(p)))
	assert.False(t, events.IsPermanent(base))
	assert.False(t, events.IsPermanent(nil))

	_, err := events.Decode([]byte("{}"))
	assert.True(t, events.IsPermanent(err), "a malformed message will not decode on retry")
}

func wrap(err error) error { return &wrapped{err} }

type wrapped struct{ err error }

func (w *wrapped) Error() string { return "handler: " + w.err.Error() }
func (w *wrapped) Unwrap() error { return w.err }
