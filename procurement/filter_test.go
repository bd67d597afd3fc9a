package procurement

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestFilterString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		filter Filter
		want   string
	}{
		{"zero", Filter{}, ""},
		{"bare value", FilterPlan("foo_plan1"), "plan=foo_plan1"},
		{"dash is quoted", FilterAccount("E-1234-5678-ABCD-EFGH"), `account="E-1234-5678-ABCD-EFGH"`},
		{"state", FilterState(EntitlementActive), "state=ENTITLEMENT_ACTIVE"},
		{"resource name quoted", FilterCustomerBillingAccount("billingAccounts/0123"), `customer_billing_account="billingAccounts/0123"`},
		{"colon quoted", FilterProduct("providerId:productId"), `product_external_name="providerId:productId"`},
		{"quote and backslash escaped", FilterPlan(`a"b\c`), `plan="a\"b\\c"`},
		{"empty value", FilterPlan(""), `plan=""`},
		{"keyword value quoted", FilterPlan("AND"), `plan="AND"`},
		{"unicode quoted", FilterPlan("plän"), `plan="plän"`},
		{"ne", Ne("plan", "foo-plan"), `plan!="foo-plan"`},
		{"membership", FilterConsumerProject("projects/123456789"), `consumers.project:"projects/123456789"`},
		{"ever on offer", FilterEverOnOffer("projects/1/services/s/privateOffers/o"), `change_history.new_offer:"projects/1/services/s/privateOffers/o"`},
		{"new pending plan", FilterNewPendingPlan("pro"), "new_pending_plan=pro"},
		{"offer", FilterOffer("o1"), "offer=o1"},
		{"and", And(FilterAccount("a1"), FilterState(EntitlementActivationRequested)),
			"account=a1 AND state=ENTITLEMENT_ACTIVATION_REQUESTED"},
		{"and of one", And(FilterPlan("p")), "plan=p"},
		{"and skips zero", And(Filter{}, FilterPlan("p"), Filter{}), "plan=p"},
		{"and of none", And(), ""},
		{"and flattens", And(And(FilterPlan("a"), FilterPlan("b")), FilterPlan("c")), "plan=a AND plan=b AND plan=c"},
		{"or inside and is parenthesised", And(FilterAccount("a"), Or(FilterPlan("x"), FilterPlan("y"))),
			"account=a AND (plan=x OR plan=y)"},
		{"and inside or is parenthesised", Or(And(FilterPlan("x"), FilterAccount("a")), FilterPlan("y")),
			"(plan=x AND account=a) OR plan=y"},
		{"or with zero matches all", Or(FilterPlan("x"), Filter{}), ""},
		{"not leaf", Not(FilterState(EntitlementCancelled)), "NOT state=ENTITLEMENT_CANCELLED"},
		{"not of and", Not(And(FilterPlan("x"), FilterPlan("y"))), "NOT (plan=x AND plan=y)"},
		{"not under and is bare", And(FilterPlan("x"), Not(FilterPlan("y"))), "plan=x AND NOT plan=y"},
		{"not of not", Not(Not(FilterPlan("y"))), "NOT (NOT plan=y)"},
		{"not of raw", Not(Raw("a=1")), "NOT (a=1)"},
		{"raw alone", Raw("  account=E-1 state=active "), "account=E-1 state=active"},
		{"raw combined is parenthesised", And(Raw("a=1 OR b=2"), FilterPlan("p")), "(a=1 OR b=2) AND plan=p"},
		{"raw empty is zero", Raw("   "), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tt.want, tt.filter.String())
			assert.Equal(t, tt.want == "", tt.filter.IsZero())
		})
	}
}

func TestFilterNotZeroPanics(t *testing.T) {
	t.Parallel()
	assert.Panics(t, func() { Not(Filter{}) })
}

// unquoteFilterValue is the inverse of quoteFilterValue, as the API's
// parser reads it.
func unquoteFilterValue(s string) (string, bool) {
	if !strings.HasPrefix(s, `"`) {
		return s, s != ""
	}
	if len(s) < 2 || !strings.HasSuffix(s, `"`) {
		return "", false
	}
	var b strings.Builder
	body := s[1 : len(s)-1]
	for i := 0; i < len(body); i++ {
		switch body[i] {
		case '\\':
			i++
			if i == len(body) {
				return "", false
			}
			b.WriteByte(body[i])
		case '"':
			return "", false // unescaped quote inside
		default:
			b.WriteByte(body[i])
		}
	}
	return b.String(), true
}

func FuzzQuoteFilterValue(f *testing.F) {
	for _, s := range []string{"", "abc", "E-1234", `a"b`, `\`, `"\"`, "AND", "plän", "a b", "x\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		q := quoteFilterValue(v)
		got, ok := unquoteFilterValue(q)
		if !ok || got != v {
			t.Fatalf("quote(%q) = %s, reads back as %q (ok=%v)", v, q, got, ok)
		}
		if !strings.HasPrefix(q, `"`) {
			for _, r := range q {
				if !(r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
					t.Fatalf("bare value %q holds %q", q, r)
				}
			}
		}
	})
}
