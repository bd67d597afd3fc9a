package marketplacetest

import (
	"fmt"
	"strings"
)

// The entitlements.list filter language.
//
// Google documents it in the discovery description of the filter parameter
// (rev 20251012) and otherwise follows AIP-160. The grammar accepted here:
//
//	filter     = [ expression ]
//	expression = sequence { "AND" sequence }
//	sequence   = factor { factor }            (a bare space means AND)
//	factor     = term { "OR" term }
//	term       = [ "NOT" | "-" ] simple
//	simple     = restriction | "(" expression ")"
//	restriction = attribute ( "=" | "!=" | ":" ) value
//	value      = bareword | "\"" { char | escape } "\""
//
// Choices made where Google is silent or self-contradictory:
//
//   - Precedence follows AIP-160: NOT binds tightest, then OR, then AND, so
//     `a=1 AND b=2 OR b=3` means `a=1 AND (b=2 OR b=3)`.
//   - AND, OR and NOT are upper-case, as AIP-160 requires. A lower-case
//     `and`/`or`/`not` would be a free-text term in AIP-160, which this API
//     does not support, so it is rejected with a message naming the cause.
//   - Unquoted values may hold letters, digits, underscore, '-' and '/'.
//     Google's text says values with "special characters other than letters,
//     underscore, or digits" must be double-quoted, yet its own examples leave
//     '-' and '/' bare (`account=E-1234-5678-ABCD-EFGH`, `plan!=foo-plan`,
//     `consumers.project:projects/123456789`), so the emulator accepts those
//     two and requires quotes for every other character ('.', '@', ':', …),
//     the only case Google shows quoted being `product="providerId:productId"`.
//   - Attribute names outside the documented list, unknown state names, the
//     operators < <= > >= and `=`/`!=` on the repeated fields are rejected.
//   - `:` on a single-valued attribute means equality.
//   - Escapes inside quoted values: \" \\ \n \t \r.

// maxFilterDepth bounds the nesting of parentheses and NOT so that a hostile
// filter cannot exhaust the emulator's stack.
const maxFilterDepth = 64

// filterAttributes maps every accepted attribute spelling to its canonical
// name, which is what match passes to attr.
var filterAttributes = map[string]string{
	"account":                  "account",
	"customer_billing_account": "customer_billing_account",
	"product_external_name":    "product_external_name",
	"product":                  "product",
	"quote_external_name":      "quote_external_name",
	"offer":                    "offer",
	"new_pending_offer":        "new_pending_offer",
	"plan":                     "plan",
	"newPendingPlan":           "new_pending_plan",
	"new_pending_plan":         "new_pending_plan",
	"state":                    "state",
	"services":                 "services",
	"consumers.project":        "consumers.project",
	"change_history.new_offer": "change_history.new_offer",
}

// repeatedAttributes are matched by membership only: Google rejects `=` on them.
var repeatedAttributes = map[string]bool{
	"consumers.project":        true,
	"change_history.new_offer": true,
}

// entitlementStates are the Entitlement.state enum values without the
// ENTITLEMENT_ prefix.
var entitlementStates = map[string]bool{
	"STATE_UNSPECIFIED":            true,
	"ACTIVATION_REQUESTED":         true,
	"ACTIVE":                       true,
	"PENDING_CANCELLATION":         true,
	"CANCELLED":                    true,
	"PENDING_PLAN_CHANGE":          true,
	"PENDING_PLAN_CHANGE_APPROVAL": true,
	"SUSPENDED":                    true,
}

// filterSyntaxError is a filter the API refuses. The server reports it as
// 400 INVALID_ARGUMENT with Error() as the message.
type filterSyntaxError struct {
	Offset int // byte offset in the filter where the problem was found
	Msg    string
}

func (e *filterSyntaxError) Error() string {
	return fmt.Sprintf("invalid filter at offset %d: %s", e.Offset, e.Msg)
}

// entitlementFilter is a parsed filter. The zero value (and the result of
// parsing an empty filter) matches every entitlement.
type entitlementFilter struct {
	root *filterNode
}

type filterOp int

const (
	filterCompare filterOp = iota
	filterAnd
	filterOr
	filterNot
)

// filterNode is one node of the parsed expression. AND and OR nodes hold two
// or more children; NOT holds one; a comparison holds Attr, Cmp and Value.
type filterNode struct {
	Op       filterOp
	Children []*filterNode
	Attr     string // canonical attribute name
	Cmp      string // "=", "!=" or ":"
	Value    string // normalised: account → ID, state → enum name without prefix
}

// parseFilter parses the entitlements.list filter syntax of google-apis.md
// §2.2. An empty (or all-blank) filter matches everything. Errors are
// *filterSyntaxError.
func parseFilter(s string) (*entitlementFilter, error) {
	toks, err := lexFilter(s)
	if err != nil {
		return nil, err
	}
	if len(toks) == 1 { // only EOF
		return &entitlementFilter{}, nil
	}
	p := &filterParser{toks: toks, src: s}
	root, err := p.expression(0)
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tokEOF {
		if t.kind == tokRParen {
			return nil, p.errAt(t, "unbalanced ')'")
		}
		return nil, p.errAt(t, fmt.Sprintf("unexpected %s", t.describe()))
	}
	return &entitlementFilter{root: root}, nil
}

// match reports whether the entitlement whose attribute values attr returns
// satisfies the filter. attr is called with canonical attribute names (see
// filterAttributes) and returns every value of that attribute: none or one
// for single-valued attributes, any number for repeated ones.
func (f *entitlementFilter) match(attr func(name string) []string) bool {
	if f == nil || f.root == nil {
		return true
	}
	return f.root.match(attr)
}

func (n *filterNode) match(attr func(name string) []string) bool {
	switch n.Op {
	case filterAnd:
		for _, c := range n.Children {
			if !c.match(attr) {
				return false
			}
		}
		return true
	case filterOr:
		for _, c := range n.Children {
			if c.match(attr) {
				return true
			}
		}
		return false
	case filterNot:
		return !n.Children[0].match(attr)
	}
	values := attr(n.Attr)
	if len(values) == 0 && !repeatedAttributes[n.Attr] {
		// An unset single-valued field compares as the empty string, so
		// `plan=""` finds entitlements without a plan.
		values = []string{""}
	}
	found := false
	for _, v := range values {
		if normaliseFilterValue(n.Attr, v) == n.Value {
			found = true
			break
		}
	}
	if n.Cmp == "!=" {
		return !found
	}
	return found
}

// normaliseFilterValue puts a value in the form comparisons use, both for
// the filter's literal and for the entitlement's attribute.
func normaliseFilterValue(attr, v string) string {
	switch attr {
	case "state":
		return strings.TrimPrefix(strings.ToUpper(v), "ENTITLEMENT_")
	case "product":
		// The discovery document's filter examples write the product both
		// as "providerId:productId" and bare (NOT (product=foo-product)).
		// Undocumented: the provider part is dropped rather than compared,
		// chosen because the emulator serves a single provider.
		if _, id, ok := strings.Cut(v, ":"); ok {
			return id
		}
	case "account":
		// The account attribute accepts the account ID or its resource
		// name providers/{p}/accounts/{id}.
		if i := strings.LastIndex(v, "/accounts/"); i >= 0 && strings.HasPrefix(v, "providers/") {
			return v[i+len("/accounts/"):]
		}
	}
	return v
}

// String prints the filter in a canonical form that parseFilter accepts and
// that parses to the same expression: every value quoted, every nested AND or
// OR parenthesised, NOT spelled out.
func (f *entitlementFilter) String() string {
	if f == nil || f.root == nil {
		return ""
	}
	var b strings.Builder
	f.root.write(&b)
	return b.String()
}

func (n *filterNode) write(b *strings.Builder) {
	switch n.Op {
	case filterAnd, filterOr:
		sep := " AND "
		if n.Op == filterOr {
			sep = " OR "
		}
		for i, c := range n.Children {
			if i > 0 {
				b.WriteString(sep)
			}
			c.writeOperand(b)
		}
	case filterNot:
		b.WriteString("NOT ")
		if c := n.Children[0]; c.Op == filterNot {
			// NOT NOT x is not in the grammar; NOT (NOT x) is.
			b.WriteByte('(')
			c.write(b)
			b.WriteByte(')')
		} else {
			c.writeOperand(b)
		}
	default:
		b.WriteString(n.Attr)
		b.WriteString(n.Cmp)
		writeFilterString(b, n.Value)
	}
}

func (n *filterNode) writeOperand(b *strings.Builder) {
	if n.Op == filterAnd || n.Op == filterOr {
		b.WriteByte('(')
		n.write(b)
		b.WriteByte(')')
		return
	}
	n.write(b)
}

func writeFilterString(b *strings.Builder, s string) {
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"', '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case '\n':
			b.WriteString(`\n`)
		case '\t':
			b.WriteString(`\t`)
		case '\r':
			b.WriteString(`\r`)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
}
