package marketplacetest

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// filterFixtures are entitlements as the core would describe them to match.
var filterFixtures = map[string]map[string][]string{
	"e1": {
		"account":                  {"providers/acme-provider/accounts/E-1234-5678-ABCD-EFGH"},
		"state":                    {"ENTITLEMENT_ACTIVE"},
		"plan":                     {"standard"},
		"product_external_name":    {"svc.endpoints.acme.cloud.goog"},
		"product":                  {"foo-product"},
		"offer":                    {"projects/9/services/svc/standardOffers/std"},
		"consumers.project":        {"projects/123", "projects/456"},
		"change_history.new_offer": {"projects/9/services/svc/privateOffers/p1", "projects/9/services/svc/standardOffers/std"},
	},
	"e2": {
		"account":           {"acct_2"},
		"state":             {"ENTITLEMENT_PENDING_CANCELLATION"},
		"plan":              {"premium"},
		"new_pending_plan":  {"gold"},
		"consumers.project": {"projects/789"},
	},
	"e3": {
		"account": {"acct_3"},
		"state":   {"ACTIVATION_REQUESTED"}, // core may hand back the short form
		"plan":    {"standard"},
	},
}

func matchingFixtures(t *testing.T, f *entitlementFilter) []string {
	t.Helper()
	var got []string
	for _, id := range []string{"e1", "e2", "e3"} {
		attrs := filterFixtures[id]
		if f.match(func(name string) []string {
			_, known := filterAttributes[name]
			require.True(t, known, "match asked for an attribute that is not canonical: %q", name)
			require.Equal(t, filterAttributes[name], name, "match must pass canonical names")
			return attrs[name]
		}) {
			got = append(got, id)
		}
	}
	return got
}

func TestParseFilterMatch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		filter string
		want   []string
	}{
		{``, []string{"e1", "e2", "e3"}},
		{`   `, []string{"e1", "e2", "e3"}},
		{`state=active`, []string{"e1"}},
		{`state=ACTIVE`, []string{"e1"}},
		{`state=ENTITLEMENT_ACTIVE`, []string{"e1"}},
		{`state="entitlement_active"`, []string{"e1"}},
		{`state=activation_requested`, []string{"e3"}},
		{`state!=active`, []string{"e2", "e3"}},
		{`state:pending_cancellation`, []string{"e2"}},
		{`account="E-1234-5678-ABCD-EFGH"`, []string{"e1"}},
		{`account="providers/acme-provider/accounts/E-1234-5678-ABCD-EFGH"`, []string{"e1"}},
		{`account=acct_2`, []string{"e2"}},
		{`account=E-1234-5678-ABCD-EFGH`, []string{"e1"}},
		{`account=providers/acme-provider/accounts/E-1234-5678-ABCD-EFGH`, []string{"e1"}},
		{`consumers.project:projects/789`, []string{"e2"}},
		// The discovery document's own product examples.
		{`product="acme-provider:foo-product"`, []string{"e1"}},
		{`product=foo-product`, []string{"e1"}},
		{`NOT (product=foo-product)`, []string{"e2", "e3"}},
		{`plan!=foo-plan state=active`, []string{"e1"}},
		{`plan!=standard`, []string{"e2"}},
		{`plan="standard" state=active`, []string{"e1"}},
		{`plan=standard AND state=active`, []string{"e1"}},
		{`plan=standard state=active OR state=activation_requested`, []string{"e1", "e3"}},
		// AIP-160: OR binds tighter than AND: a AND b OR c == a AND (b OR c).
		{`plan=premium AND state=active OR state=pending_cancellation`, []string{"e2"}},
		{`(plan=premium AND state=active) OR state=activation_requested`, []string{"e3"}},
		{`NOT plan=standard`, []string{"e2"}},
		{`-plan=standard`, []string{"e2"}},
		{`NOT (plan=standard OR account=acct_2)`, nil},
		{`NOT state=active AND NOT plan=premium`, []string{"e3"}},
		{`NOT(state=active)`, []string{"e2", "e3"}},
		{`consumers.project:"projects/456"`, []string{"e1"}},
		{`consumers.project:"projects/789" OR consumers.project:"projects/123"`, []string{"e1", "e2"}},
		{`NOT consumers.project:"projects/123"`, []string{"e2", "e3"}},
		{`change_history.new_offer:"projects/9/services/svc/privateOffers/p1"`, []string{"e1"}},
		{`newPendingPlan=gold`, []string{"e2"}},
		{`new_pending_plan=gold`, []string{"e2"}},
		{`new_pending_plan=""`, []string{"e1", "e3"}},
		{`product_external_name="svc.endpoints.acme.cloud.goog"`, []string{"e1"}},
		{`offer:"projects/9/services/svc/standardOffers/std"`, []string{"e1"}},
		{`quote_external_name="q"`, nil},
		{`plan="a \"quoted\" \\ plan"`, nil},
		{"plan=standard\tstate=activation_requested\n", []string{"e3"}},
		{`((plan=standard))`, []string{"e1", "e3"}},
		{`state=active OR state=pending_cancellation OR state=activation_requested`, []string{"e1", "e2", "e3"}},
		{`customer_billing_account="billingAccounts/000000-111111-222222"`, nil},
		{`services="svc"`, nil},
	}
	for _, tc := range tests {
		t.Run(tc.filter, func(t *testing.T) {
			t.Parallel()
			f, err := parseFilter(tc.filter)
			require.NoError(t, err)
			assert.Equal(t, tc.want, matchingFixtures(t, f))

			// The printed form parses to the same filter.
			printed := f.String()
			g, err := parseFilter(printed)
			require.NoError(t, err, "printed form %q", printed)
			assert.Equal(t, printed, g.String())
			assert.Equal(t, f, g)
		})
	}
}

func TestParseFilterErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		filter  string
		wantMsg string
	}{
		{`product_external_name=svc.endpoints.acme.cloud.goog`, `contains '.'`},
		{`account=a@b`, "must be double-quoted"},
		{`plan=a:b`, "found operator :"},
		{`products="providerId:productId"`, `unknown attribute "products"`},
		{`bogus=1`, "unknown attribute"},
		{`consumers.project="projects/123"`, "repeated field"},
		{`change_history.new_offer!="x"`, "repeated field"},
		{`state=enabled`, `unknown entitlement state "ENABLED"`},
		{`plan=a and state=active`, `"and" is not an operator`},
		{`plan=a or state=active`, `"or" is not an operator`},
		{`not plan=a`, `"not" is not an operator`},
		{`plan=a AND`, "found end of filter"},
		{`AND plan=a`, "found the keyword AND"},
		{`plan=a OR OR plan=b`, "found the keyword OR"},
		{`plan=OR`, "found the keyword OR"},
		{`(plan=a`, "expected ')'"},
		{`plan=a)`, "unbalanced ')'"},
		{`()`, "empty parentheses"},
		{`plan`, "expected =, != or :"},
		{`plan=`, "expected a value"},
		{`plan>a`, "operator > is not supported"},
		{`plan<=a`, "operator <= is not supported"},
		{`plan!a`, "'!' must be followed by '='"},
		{`plan="abc`, "unterminated quoted value"},
		{`plan="a\qb"`, `unknown escape \q`},
		{`plan="a\`, "unterminated escape"},
		{`NOT NOT plan=a`, "NOT must be followed by a comparison"},
		{`"plan"=a`, "expected a comparison"},
		{strings.Repeat("(", maxFilterDepth+1) + "plan=a" + strings.Repeat(")", maxFilterDepth+1), "nested more than"},
		{`plan="` + strings.Repeat("x", 100) + `" ) `, `unbalanced ')'`},
	}
	for _, tc := range tests {
		t.Run(tc.filter, func(t *testing.T) {
			t.Parallel()
			f, err := parseFilter(tc.filter)
			require.Error(t, err, "parsed as %v", f)
			var syn *filterSyntaxError
			require.True(t, errors.As(err, &syn), "error type %T", err)
			assert.Contains(t, err.Error(), tc.wantMsg)
			assert.Contains(t, err.Error(), "invalid filter at offset")
			assert.LessOrEqual(t, syn.Offset, len(tc.filter))
		})
	}
}

func TestFilterErrorQuotesOnlyAPrefix(t *testing.T) {
	t.Parallel()
	secret := "customer." + strings.Repeat("z", 200)
	_, err := parseFilter("account=" + secret)
	require.Error(t, err)
	assert.NotContains(t, err.Error(), secret)
	assert.Less(t, len(err.Error()), 250)
}

func TestFilterPrecedenceFollowsAIP160(t *testing.T) {
	t.Parallel()
	f, err := parseFilter(`plan=a AND plan=b OR plan=c`)
	require.NoError(t, err)
	assert.Equal(t, `plan="a" AND (plan="b" OR plan="c")`, f.String())

	f, err = parseFilter(`NOT plan=a OR plan=b plan=c`)
	require.NoError(t, err)
	assert.Equal(t, `(NOT plan="a" OR plan="b") AND plan="c"`, f.String())
}

func FuzzParseFilter(f *testing.F) {
	for _, seed := range []string{
		``, `state=active`, `account="E-1234" state=active`, `plan=a AND plan=b OR plan=c`,
		`NOT (plan=a OR -plan="b\"c")`, `consumers.project:"projects/1"`, `((plan=a))`,
		`plan="\n\t\r\\"`, `state!=ENTITLEMENT_CANCELLED`, `plan=a)`, `(`, `"`, `plan="\`,
		`newPendingPlan=x OR new_pending_plan=y`, `plan>=1`, `-(-plan=a)`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		flt, err := parseFilter(s)
		if err != nil {
			var syn *filterSyntaxError
			if !errors.As(err, &syn) {
				t.Fatalf("parseFilter(%q) returned %T, want *filterSyntaxError", s, err)
			}
			return
		}
		printed := flt.String()
		again, err := parseFilter(printed)
		if err != nil {
			t.Fatalf("printed form %q of %q does not parse: %v", printed, s, err)
		}
		if again.String() != printed {
			t.Fatalf("round trip of %q: %q != %q", s, again.String(), printed)
		}
		attrs := filterFixtures["e1"]
		get := func(name string) []string { return attrs[name] }
		if flt.match(get) != again.match(get) {
			t.Fatalf("match differs after round trip of %q", s)
		}
	})
}
