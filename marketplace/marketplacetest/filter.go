package marketplacetest

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
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

// Lexer.

type filterTokKind int

const (
	tokEOF filterTokKind = iota
	tokWord
	tokString
	tokLParen
	tokRParen
	tokMinus // '-' at the start of a term: AIP-160's short NOT
	tokCmp   // = != : and the unsupported < <= > >=
)

type filterTok struct {
	kind filterTokKind
	text string // word text, decoded string, or operator
	pos  int
}

func (t filterTok) describe() string {
	switch t.kind {
	case tokEOF:
		return "end of filter"
	case tokString:
		return "quoted value " + shortQuote(t.text)
	case tokLParen:
		return "'('"
	case tokRParen:
		return "')'"
	case tokMinus:
		return "'-'"
	case tokCmp:
		return "operator " + t.text
	}
	return shortQuote(t.text)
}

// shortQuote quotes at most a short prefix of s: filter values may be
// customer identifiers and error messages end up in logs.
func shortQuote(s string) string {
	const limit = 32
	if len(s) > limit {
		cut := limit
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		return fmt.Sprintf("%q…", s[:cut])
	}
	return fmt.Sprintf("%q", s)
}

func isFilterSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// isWordDelim reports the bytes that end a bare word.
func isWordDelim(c byte) bool {
	switch c {
	case '(', ')', '"', '=', '!', ':', '<', '>':
		return true
	}
	return isFilterSpace(c)
}

func lexFilter(s string) ([]filterTok, error) {
	var toks []filterTok
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case isFilterSpace(c):
			i++
		case c == '(':
			toks = append(toks, filterTok{kind: tokLParen, text: "(", pos: i})
			i++
		case c == ')':
			toks = append(toks, filterTok{kind: tokRParen, text: ")", pos: i})
			i++
		case c == '=' || c == ':':
			toks = append(toks, filterTok{kind: tokCmp, text: string(c), pos: i})
			i++
		case c == '!' || c == '<' || c == '>':
			if i+1 < len(s) && s[i+1] == '=' {
				toks = append(toks, filterTok{kind: tokCmp, text: s[i : i+2], pos: i})
				i += 2
				continue
			}
			if c == '!' {
				return nil, &filterSyntaxError{Offset: i, Msg: "'!' must be followed by '=' (use NOT to negate)"}
			}
			toks = append(toks, filterTok{kind: tokCmp, text: string(c), pos: i})
			i++
		case c == '"':
			text, n, err := lexFilterString(s, i)
			if err != nil {
				return nil, err
			}
			toks = append(toks, filterTok{kind: tokString, text: text, pos: i})
			i += n
		case c == '-' && (len(toks) == 0 || toks[len(toks)-1].kind != tokCmp):
			// A '-' that does not follow an operator starts a term: AIP-160
			// spells NOT as a leading minus. After an operator it is part
			// of a (then invalid, because unquoted) value.
			toks = append(toks, filterTok{kind: tokMinus, text: "-", pos: i})
			i++
		default:
			start := i
			for i < len(s) && !isWordDelim(s[i]) {
				i++
			}
			toks = append(toks, filterTok{kind: tokWord, text: s[start:i], pos: start})
		}
	}
	return append(toks, filterTok{kind: tokEOF, pos: len(s)}), nil
}

// lexFilterString decodes the quoted string starting at s[start] == '"' and
// returns its value and the number of bytes consumed.
func lexFilterString(s string, start int) (string, int, error) {
	var b strings.Builder
	for i := start + 1; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
			return b.String(), i + 1 - start, nil
		case '\\':
			if i+1 >= len(s) {
				return "", 0, &filterSyntaxError{Offset: i, Msg: "unterminated escape in quoted value"}
			}
			i++
			switch e := s[i]; e {
			case '"', '\\':
				b.WriteByte(e)
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case 'r':
				b.WriteByte('\r')
			default:
				return "", 0, &filterSyntaxError{Offset: i - 1, Msg: fmt.Sprintf(`unknown escape \%c in quoted value (use \" \\ \n \t \r)`, e)}
			}
		default:
			b.WriteByte(c)
		}
	}
	return "", 0, &filterSyntaxError{Offset: start, Msg: "unterminated quoted value"}
}

// Parser.

type filterParser struct {
	toks []filterTok
	i    int
	src  string
}

func (p *filterParser) peek() filterTok { return p.toks[p.i] }
func (p *filterParser) next() filterTok { t := p.toks[p.i]; p.i++; return t }

func (p *filterParser) errAt(t filterTok, msg string) error {
	return &filterSyntaxError{Offset: t.pos, Msg: msg}
}

func isKeyword(t filterTok, kw string) bool { return t.kind == tokWord && t.text == kw }

func (p *filterParser) expression(depth int) (*filterNode, error) {
	first, err := p.sequence(depth)
	if err != nil {
		return nil, err
	}
	nodes := []*filterNode{first}
	for isKeyword(p.peek(), "AND") {
		p.next()
		n, err := p.sequence(depth)
		if err != nil {
			return nil, err
		}
		nodes = append(nodes, n)
	}
	return joinFilterNodes(filterAnd, nodes), nil
}

// sequence is factors separated by blanks, which AND together. It ends at
// AND, ')' or the end of the filter.
func (p *filterParser) sequence(depth int) (*filterNode, error) {
	first, err := p.factor(depth)
	if err != nil {
		return nil, err
	}
	nodes := []*filterNode{first}
	for {
		t := p.peek()
		if t.kind == tokEOF || t.kind == tokRParen || isKeyword(t, "AND") {
			break
		}
		n, err := p.factor(depth)
		if err != nil {
			return nil, err
		}
		nodes = append(nodes, n)
	}
	return joinFilterNodes(filterAnd, nodes), nil
}

func (p *filterParser) factor(depth int) (*filterNode, error) {
	first, err := p.term(depth)
	if err != nil {
		return nil, err
	}
	nodes := []*filterNode{first}
	for isKeyword(p.peek(), "OR") {
		p.next()
		n, err := p.term(depth)
		if err != nil {
			return nil, err
		}
		nodes = append(nodes, n)
	}
	return joinFilterNodes(filterOr, nodes), nil
}

func (p *filterParser) term(depth int) (*filterNode, error) {
	t := p.peek()
	if isKeyword(t, "NOT") || t.kind == tokMinus {
		if depth >= maxFilterDepth {
			return nil, p.errAt(t, fmt.Sprintf("filter nested more than %d levels deep", maxFilterDepth))
		}
		p.next()
		if nt := p.peek(); isKeyword(nt, "NOT") || nt.kind == tokMinus {
			// NOT NOT x parses in AIP-160's grammar only through parentheses.
			return nil, p.errAt(nt, "NOT must be followed by a comparison or '(': write NOT (NOT ...)")
		}
		child, err := p.simple(depth + 1)
		if err != nil {
			return nil, err
		}
		return &filterNode{Op: filterNot, Children: []*filterNode{child}}, nil
	}
	return p.simple(depth)
}

func (p *filterParser) simple(depth int) (*filterNode, error) {
	t := p.peek()
	switch {
	case t.kind == tokLParen:
		if depth >= maxFilterDepth {
			return nil, p.errAt(t, fmt.Sprintf("filter nested more than %d levels deep", maxFilterDepth))
		}
		p.next()
		if p.peek().kind == tokRParen {
			return nil, p.errAt(p.peek(), "empty parentheses")
		}
		n, err := p.expression(depth + 1)
		if err != nil {
			return nil, err
		}
		if c := p.peek(); c.kind != tokRParen {
			return nil, p.errAt(c, fmt.Sprintf("expected ')' to close the '(' at offset %d, found %s", t.pos, c.describe()))
		}
		p.next()
		return n, nil
	case t.kind == tokWord:
		return p.restriction()
	case t.kind == tokEOF:
		return nil, p.errAt(t, "expected a comparison, found end of filter")
	}
	return nil, p.errAt(t, fmt.Sprintf("expected a comparison such as state=active, found %s", t.describe()))
}

func (p *filterParser) restriction() (*filterNode, error) {
	nameTok := p.next()
	name := nameTok.text
	switch name {
	case "AND", "OR", "NOT":
		return nil, p.errAt(nameTok, fmt.Sprintf("expected a comparison, found the keyword %s", name))
	}
	switch strings.ToUpper(name) {
	case "AND", "OR", "NOT":
		return nil, p.errAt(nameTok, fmt.Sprintf("%q is not an operator: AND, OR and NOT must be upper-case", name))
	}
	canonical, ok := filterAttributes[name]
	if !ok {
		return nil, p.errAt(nameTok, fmt.Sprintf("unknown attribute %s; supported: %s", shortQuote(name), supportedFilterAttributes))
	}
	cmpTok := p.next()
	if cmpTok.kind != tokCmp {
		return nil, p.errAt(cmpTok, fmt.Sprintf("expected =, != or : after %s, found %s", name, cmpTok.describe()))
	}
	cmp := cmpTok.text
	switch cmp {
	case "=", "!=", ":":
	default:
		return nil, p.errAt(cmpTok, fmt.Sprintf("operator %s is not supported; use =, != or :", cmp))
	}
	if repeatedAttributes[canonical] && cmp != ":" {
		return nil, p.errAt(cmpTok, fmt.Sprintf("%s is a repeated field: %s is not supported, use the membership operator (%s:\"value\")", name, cmp, name))
	}
	valTok := p.next()
	var value string
	switch valTok.kind {
	case tokString:
		value = valTok.text
	case tokWord:
		switch valTok.text {
		case "AND", "OR", "NOT":
			return nil, p.errAt(valTok, fmt.Sprintf("expected a value after %s%s, found the keyword %s (quote it to match the literal text)", name, cmp, valTok.text))
		}
		if bad, ok := firstNonIdentRune(valTok.text); ok {
			return nil, p.errAt(valTok, fmt.Sprintf("value %s contains %q: values with characters other than letters, digits, '_', '-' and '/' must be double-quoted, e.g. %s%s\"…\"", shortQuote(valTok.text), bad, name, cmp))
		}
		value = valTok.text
	default:
		return nil, p.errAt(valTok, fmt.Sprintf("expected a value after %s%s, found %s", name, cmp, valTok.describe()))
	}
	value = normaliseFilterValue(canonical, value)
	if canonical == "state" && !entitlementStates[value] {
		return nil, p.errAt(valTok, fmt.Sprintf("unknown entitlement state %s", shortQuote(value)))
	}
	return &filterNode{Op: filterCompare, Attr: canonical, Cmp: cmp, Value: value}, nil
}

// firstNonIdentRune returns the first rune of s that an unquoted value may
// not hold: anything but a letter, digit, '_', '-' or '/'.
func firstNonIdentRune(s string) (rune, bool) {
	for _, r := range s {
		if r != '_' && r != '-' && r != '/' && !unicode.IsLetter(r) && !unicode.IsDigit(r) {
			return r, true
		}
	}
	return 0, false
}

// joinFilterNodes builds an AND or OR node over nodes parsed at one level;
// a parenthesised group stays a child node of its own.
func joinFilterNodes(op filterOp, nodes []*filterNode) *filterNode {
	if len(nodes) == 1 {
		return nodes[0]
	}
	return &filterNode{Op: op, Children: nodes}
}

const supportedFilterAttributes = "account, customer_billing_account, product, product_external_name, quote_external_name, offer, new_pending_offer, plan, newPendingPlan, new_pending_plan, state, services, consumers.project, change_history.new_offer"
