package marketplacetest

// This file reads the entitlements.list filter language (filter.go): a
// lexer that splits a filter into tokens, and a recursive-descent parser
// that builds the filterNode tree from them.

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

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
