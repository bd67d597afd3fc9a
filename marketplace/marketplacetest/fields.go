package marketplacetest

import (
	"encoding/json"
	"fmt"
	"strings"
)

// fieldSel is a parsed partial-response selection (the "fields" system
// parameter): each selected key maps to the selection inside it, nil for
// the whole value.
type fieldSel map[string]fieldSel

// parseFields parses the partial-response syntax of Google's JSON APIs
// (developers.google.com "Performance tips", "Partial response"): a
// comma-separated list of field paths, "a/b" selecting b inside a,
// "a(b,c)" selecting b and c inside a, "*" selecting every field.
// Malformed selections are 400 INVALID_ARGUMENT, as Google answers them.
// An absent or empty parameter is nil: the whole response.
func parseFields(s string) (fieldSel, *apiError) {
	if s == "" {
		return nil, nil
	}
	p := fieldParser{s: s}
	sel, err := p.list()
	if err == nil && p.i < len(p.s) {
		err = fmt.Errorf("unexpected %q at %d", p.s[p.i], p.i)
	}
	if err != nil {
		return nil, invalidArgument("Invalid field selection %s: %v", shorten(s, 100), err)
	}
	return sel, nil
}

type fieldParser struct {
	s string
	i int
}

func (p *fieldParser) list() (fieldSel, error) {
	sel := fieldSel{}
	for {
		if err := p.path(sel); err != nil {
			return nil, err
		}
		if p.i >= len(p.s) || p.s[p.i] != ',' {
			return sel, nil
		}
		p.i++
	}
}

// path parses name("/"name)*["(" list ")"] into sel.
func (p *fieldParser) path(sel fieldSel) error {
	start := p.i
	for p.i < len(p.s) && !strings.ContainsRune(",()/", rune(p.s[p.i])) {
		p.i++
	}
	name := strings.TrimSpace(p.s[start:p.i])
	if name == "" {
		return fmt.Errorf("empty field name at %d", start)
	}
	if p.i >= len(p.s) || (p.s[p.i] != '/' && p.s[p.i] != '(') {
		sel[name] = nil
		return nil
	}
	sub := fieldSel{}
	if p.s[p.i] == '/' {
		p.i++
		if err := p.path(sub); err != nil {
			return err
		}
	} else {
		p.i++
		inner, err := p.list()
		if err != nil {
			return err
		}
		if p.i >= len(p.s) || p.s[p.i] != ')' {
			return fmt.Errorf("missing ) at %d", p.i)
		}
		p.i++
		sub = inner
	}
	sel.merge(name, sub)
	return nil
}

// merge adds the selection sub under name; a field already selected whole
// stays whole.
func (sel fieldSel) merge(name string, sub fieldSel) {
	old, had := sel[name]
	switch {
	case !had:
		sel[name] = sub
	case old != nil:
		for k, v := range sub {
			old.merge(k, v)
		}
	}
}

// apply keeps only the selected fields of a decoded JSON value; arrays
// are filtered element by element. Names the value lacks select nothing
// (undocumented whether Google refuses names outside the schema: the
// emulator cannot tell an unknown name from an unset field, so it does not).
func (sel fieldSel) apply(v any) any {
	if sel == nil {
		return v
	}
	if _, all := sel["*"]; all {
		return v
	}
	switch t := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, sub := range sel {
			if x, ok := t[k]; ok {
				out[k] = sub.apply(x)
			}
		}
		return out
	case []any:
		for i, x := range t {
			t[i] = sel.apply(x)
		}
		return t
	}
	return v
}

// partial re-encodes resp with only the selected fields.
func partial(resp any, sel fieldSel) (any, error) {
	b, err := json.Marshal(resp)
	if err != nil {
		return nil, err
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, err
	}
	return sel.apply(v), nil
}
