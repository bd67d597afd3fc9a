package events

import (
	"errors"
	"strconv"
	"unicode/utf8"
)

// ErrMalformed is matched (errors.Is) by every error Decode returns: the
// message cannot be routed and retrying cannot fix it.
var ErrMalformed = errors.New("events: malformed message")

// snippetLen bounds how much of a payload an error or a problem quotes:
// enough to recognise the message in a log, too little to carry the
// customer identifiers that follow the first key.
const snippetLen = 32

// DecodeError is the error Decode returns for a message it cannot route:
// not a JSON object, no eventId, neither or both of account and
// entitlement, no resource id, or one of those not of the expected JSON
// type. It matches [ErrMalformed] and reports [IsPermanent].
type DecodeError struct {
	// Field is the JSON field at fault: "eventId", "account", "entitlement",
	// "account.id", "entitlement.id", "account|entitlement" when neither or
	// both are present, or "" when the message as a whole is at fault.
	Field string
	// Reason says what is wrong, without quoting the payload.
	Reason string
	// Prefix is the start of the payload (at most 32 bytes), for logs.
	Prefix string
	// Err is the underlying error, if any (a *json.SyntaxError).
	Err error
}

// Error returns a one-line message that names the field and quotes only
// Prefix.
func (e *DecodeError) Error() string {
	msg := "events: malformed message: "
	if e.Field != "" {
		msg += e.Field + ": "
	}
	msg += e.Reason
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg + " (payload starts " + strconv.Quote(e.Prefix) + ")"
}

// Unwrap returns the underlying error.
func (e *DecodeError) Unwrap() error { return e.Err }

// Is reports whether target is ErrMalformed.
func (e *DecodeError) Is(target error) bool { return target == ErrMalformed }

func newDecodeError(data []byte, field, reason string, err error) *DecodeError {
	return &DecodeError{Field: field, Reason: reason, Prefix: snippet(data), Err: err}
}

// snippet returns at most snippetLen bytes of b, cut on a rune boundary.
func snippet(b []byte) string {
	if len(b) <= snippetLen {
		return string(b)
	}
	n := snippetLen
	for n > snippetLen-utf8.UTFMax && !utf8.RuneStart(b[n]) {
		n--
	}
	return string(b[:n]) + "…"
}

// FieldProblem describes an optional field Decode could not read. The field
// was left zero and the event decoded anyway.
type FieldProblem struct {
	Field string // JSON path of the field, e.g. "entitlement.updateTime"
	Raw   string // the start of the raw JSON value (at most 32 bytes)
	Err   error  // what is wrong with it; never quotes the value
}

// String returns the problem as one line for a log.
func (p FieldProblem) String() string {
	return p.Field + ": " + p.Err.Error() + " (raw " + strconv.Quote(p.Raw) + ")"
}

// Permanent marks err as one that retrying cannot fix. A processor that gets
// it from a [Handler] records the message as poison and acknowledges it
// instead of having it redelivered. Permanent(nil) is nil. The result's
// message is err's, and errors.Is/As see through it.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err}
}

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// IsPermanent reports whether err, or any error it wraps, was marked by
// [Permanent] or is a [*DecodeError].
func IsPermanent(err error) bool {
	var p *permanentError
	if errors.As(err, &p) {
		return true
	}
	var d *DecodeError
	return errors.As(err, &d)
}
