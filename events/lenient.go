package events

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
)

// The wire types below let Decode read a message in one json.Unmarshal
// pass: each accepts any JSON value and, instead of failing the whole
// message, remembers what it could not read. Their UnmarshalJSON never
// returns an error and copies what it keeps, since the bytes it is given
// belong to the decoder.

// issue is what a wire value could not read.
type issue struct {
	raw Fingerprint // of the raw value, never the value
	err error
}

var (
	errNotRFC3339 = errors.New("want an RFC 3339 time")
	errBadString  = errors.New("want a valid JSON string")
	errBadArray   = errors.New("want a valid JSON array")
)

func newIssue(b []byte, err error) *issue { return &issue{raw: FingerprintOf(b), err: err} }

// wantError reports a value of the wrong JSON type without quoting it.
func wantError(want string, b []byte) error {
	return fmt.Errorf("want %s, got %s", want, jsonKind(b))
}

// jsonKind names the JSON type of a valid raw value.
func jsonKind(b []byte) string {
	if len(b) == 0 {
		return "nothing"
	}
	switch b[0] {
	case '"':
		return "a string"
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

func isNull(b []byte) bool { return string(b) == "null" }

func trimSpace(b []byte) []byte {
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// unquote decodes a JSON string. isString reports whether b is one at all;
// ok whether it decoded. Strings without escapes, the usual case, cost one
// allocation.
func unquote(b []byte) (s string, isString, ok bool) {
	if len(b) == 0 || b[0] != '"' {
		return "", false, false
	}
	if len(b) < 2 || b[len(b)-1] != '"' {
		return "", true, false
	}
	inner := b[1 : len(b)-1]
	ascii := true
	for _, c := range inner {
		if c < 0x20 || c == '"' || c == '\\' {
			return unquoteSlow(b)
		}
		if c >= utf8.RuneSelf {
			ascii = false
		}
	}
	if !ascii && !utf8.Valid(inner) {
		// encoding/json replaces invalid UTF-8 with U+FFFD; let it.
		return unquoteSlow(b)
	}
	return string(inner), true, true
}

func unquoteSlow(b []byte) (string, bool, bool) {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return "", true, false
	}
	return s, true, true
}

// optString is a string field; absent is "", null leaves it unchanged.
type optString struct {
	v   string
	bad *issue
}

func (s *optString) UnmarshalJSON(b []byte) error {
	b = trimSpace(b)
	if isNull(b) {
		return nil // as encoding/json does for a string: keep what is there
	}
	*s = optString{}
	v, isString, ok := unquote(b)
	switch {
	case ok:
		s.v = v
	case isString:
		s.bad = newIssue(b, errBadString)
	default:
		s.bad = newIssue(b, wantError("a string", b))
	}
	return nil
}

// optTime is an RFC 3339 time field; absent or "" is the zero time, null
// leaves it unchanged.
type optTime struct {
	v   time.Time
	bad *issue
}

func (t *optTime) UnmarshalJSON(b []byte) error {
	b = trimSpace(b)
	if isNull(b) {
		return nil
	}
	*t = optTime{}
	v, isString, ok := unquote(b)
	switch {
	case ok:
		if v == "" {
			return nil
		}
		parsed, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			// err quotes the value; keep only our own words.
			t.bad = newIssue(b, errNotRFC3339)
			return nil
		}
		t.v = parsed
	case isString:
		t.bad = newIssue(b, errBadString)
	default:
		t.bad = newIssue(b, wantError("an RFC 3339 time string", b))
	}
	return nil
}

// optStrings is a list-of-strings field; null, absent or [] is nil.
// Elements that are not strings are dropped and the first is reported.
type optStrings struct {
	v   []string
	bad *issue
}

func (l *optStrings) UnmarshalJSON(b []byte) error {
	b = trimSpace(b)
	if isNull(b) {
		*l = optStrings{} // as encoding/json does for a slice
		return nil
	}
	*l = optStrings{}
	if len(b) == 0 || b[0] != '[' {
		l.bad = newIssue(b, wantError("an array of strings", b))
		return nil
	}
	if v, ok := simpleStrings(b); ok {
		l.v = v
		return nil
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(b, &elems); err != nil {
		l.bad = newIssue(b, errBadArray)
		return nil
	}
	for i, e := range elems {
		s, _, ok := unquote(trimSpace(e))
		if ok {
			l.v = append(l.v, s)
		} else if l.bad == nil {
			l.bad = newIssue(e, fmt.Errorf("element %d: %w", i, wantError("a string", trimSpace(e))))
		}
	}
	return nil
}

// simpleStrings decodes an array of ASCII strings without escapes, the
// shape every real message has, without a second JSON pass. It reports
// false for anything else.
func simpleStrings(b []byte) ([]string, bool) {
	var out []string
	i := skipSpace(b, 1)
	if i < len(b) && b[i] == ']' {
		return nil, i+1 == len(b)
	}
	for i < len(b) {
		if b[i] != '"' {
			return nil, false
		}
		j := i + 1
		for ; j < len(b) && b[j] != '"'; j++ {
			if c := b[j]; c < 0x20 || c == '\\' || c >= utf8.RuneSelf {
				return nil, false
			}
		}
		if j == len(b) {
			return nil, false
		}
		out = append(out, string(b[i+1:j]))
		i = skipSpace(b, j+1)
		if i == len(b) {
			return nil, false
		}
		switch b[i] {
		case ']':
			return out, i+1 == len(b)
		case ',':
			i = skipSpace(b, i+1)
		default:
			return nil, false
		}
	}
	return nil, false
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}
