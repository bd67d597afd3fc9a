package procurement

import (
	"strings"
)

// Filter is an entitlements.list filter, built from the constructors below
// and printed in the API's syntax by String. The zero Filter matches every
// entitlement. Filters are immutable values.
//
// Values are quoted as the API requires: a value made only of letters,
// digits and underscore is written bare, anything else (ids with dashes,
// resource names) in double quotes with `"` and `\` escaped. Combinations
// are fully parenthesised, so the result does not depend on the precedence
// of AND, OR and NOT (which in AIP-160 binds OR tighter than AND).
//
//	procurement.And(
//		procurement.FilterAccount("E-1234"),
//		procurement.FilterState(procurement.EntitlementActivationRequested),
//	).String() // account="E-1234" AND state=ENTITLEMENT_ACTIVATION_REQUESTED
type Filter struct {
	kind     filterKind
	text     string // filterLeaf, filterRaw: the printed text
	children []Filter
}

type filterKind uint8

const (
	filterAll filterKind = iota // the zero Filter
	filterLeaf
	filterRaw
	filterAnd
	filterOr
	filterNot
)

// Eq matches entitlements whose attribute equals value: `attr=value`. It is
// the general form of the FilterXxx constructors; attr is one of the
// attributes the API documents (account, customer_billing_account,
// product_external_name, quote_external_name, offer, new_pending_offer,
// plan, new_pending_plan, state, services).
func Eq(attr, value string) Filter { return leaf(attr, "=", value) }

// Ne matches entitlements whose attribute differs from value: `attr!=value`.
func Ne(attr, value string) Filter { return leaf(attr, "!=", value) }

// Has matches entitlements whose repeated attribute contains value:
// `attr:value`. The API rejects `=` on the repeated attributes
// consumers.project and change_history.new_offer.
func Has(attr, value string) Filter { return leaf(attr, ":", value) }

func leaf(attr, op, value string) Filter {
	return Filter{kind: filterLeaf, text: attr + op + quoteFilterValue(value)}
}

// FilterAccount matches the entitlements of one account (an account id).
func FilterAccount(accountID string) Filter { return Eq("account", accountID) }

// FilterState matches entitlements in state s.
func FilterState(s EntitlementState) Filter { return Eq("state", string(s)) }

// FilterPlan matches entitlements on a plan.
func FilterPlan(plan string) Filter { return Eq("plan", plan) }

// FilterNewPendingPlan matches entitlements with a pending change to plan.
func FilterNewPendingPlan(plan string) Filter { return Eq("new_pending_plan", plan) }

// FilterProduct matches entitlements for a product (productExternalName).
func FilterProduct(productExternalName string) Filter {
	return Eq("product_external_name", productExternalName)
}

// FilterOffer matches entitlements currently on an offer resource name.
func FilterOffer(offer string) Filter { return Eq("offer", offer) }

// FilterCustomerBillingAccount matches entitlements bought with a billing
// account ("billingAccounts/{id}").
func FilterCustomerBillingAccount(billingAccount string) Filter {
	return Eq("customer_billing_account", billingAccount)
}

// FilterConsumerProject matches entitlements consumed by a project
// ("projects/{number}").
func FilterConsumerProject(project string) Filter { return Has("consumers.project", project) }

// FilterEverOnOffer matches entitlements that are or ever were on an offer.
func FilterEverOnOffer(offer string) Filter { return Has("change_history.new_offer", offer) }

// Raw is a filter written by hand in the API's syntax, passed through as is.
// An empty string is the zero Filter.
func Raw(filter string) Filter {
	filter = strings.TrimSpace(filter)
	if filter == "" {
		return Filter{}
	}
	return Filter{kind: filterRaw, text: filter}
}

// And matches entitlements that match every filter. Zero filters are
// skipped; And() is the zero Filter.
func And(filters ...Filter) Filter { return combine(filterAnd, filters) }

// Or matches entitlements that match any filter. A zero Filter among them
// matches everything, so the result is the zero Filter; Or() is also the
// zero Filter.
func Or(filters ...Filter) Filter {
	for _, f := range filters {
		if f.kind == filterAll {
			return Filter{}
		}
	}
	return combine(filterOr, filters)
}

func combine(kind filterKind, filters []Filter) Filter {
	var kept []Filter
	for _, f := range filters {
		switch {
		case f.kind == filterAll:
		case f.kind == kind: // flatten a AND (b AND c)
			kept = append(kept, f.children...)
		default:
			kept = append(kept, f)
		}
	}
	switch len(kept) {
	case 0:
		return Filter{}
	case 1:
		return kept[0]
	}
	return Filter{kind: kind, children: kept}
}

// Not matches entitlements that do not match f. Not of the zero Filter
// (which would match nothing) panics: it is always a programming error.
func Not(f Filter) Filter {
	if f.kind == filterAll {
		panic("procurement: Not of the zero Filter")
	}
	return Filter{kind: filterNot, children: []Filter{f}}
}

// IsZero reports whether f is the zero Filter (matches everything).
func (f Filter) IsZero() bool { return f.kind == filterAll }

// String prints f in the API's filter syntax; "" for the zero Filter.
func (f Filter) String() string {
	var b strings.Builder
	f.write(&b)
	return b.String()
}

func (f Filter) write(b *strings.Builder) {
	switch f.kind {
	case filterLeaf, filterRaw:
		b.WriteString(f.text)
	case filterAnd, filterOr:
		sep := " AND "
		if f.kind == filterOr {
			sep = " OR "
		}
		for i, c := range f.children {
			if i > 0 {
				b.WriteString(sep)
			}
			c.writeOperand(b, f.kind)
		}
	case filterNot:
		b.WriteString("NOT ")
		f.children[0].writeOperand(b, filterNot)
	}
}

// writeOperand writes f as an operand of AND, OR or NOT (parent): a
// single comparison is written bare, and so is a NOT under AND or OR (NOT
// binds tightest); anything else is parenthesised. Raw text is always
// parenthesised because its own operators are unknown.
func (f Filter) writeOperand(b *strings.Builder, parent filterKind) {
	if f.kind == filterLeaf || (f.kind == filterNot && parent != filterNot) {
		f.write(b)
		return
	}
	b.WriteByte('(')
	f.write(b)
	b.WriteByte(')')
}

// quoteFilterValue returns v bare if it is non-empty and made only of ASCII
// letters, digits and underscore, else double-quoted with `\` and `"`
// escaped.
func quoteFilterValue(v string) string {
	bare := v != ""
	for i := 0; i < len(v) && bare; i++ {
		c := v[i]
		bare = c == '_' || ('0' <= c && c <= '9') || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z')
	}
	if bare && !isFilterKeyword(v) {
		return v
	}
	var b strings.Builder
	b.Grow(len(v) + 2)
	b.WriteByte('"')
	for i := 0; i < len(v); i++ {
		if v[i] == '"' || v[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(v[i])
	}
	b.WriteByte('"')
	return b.String()
}

// isFilterKeyword reports whether a bare value would read as an operator.
func isFilterKeyword(v string) bool { return v == "AND" || v == "OR" || v == "NOT" }
