package events

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
)

// ErrMalformed is matched (errors.Is) by every error Decode returns: the
// message cannot be routed and retrying cannot fix it.
var ErrMalformed = errors.New("events: malformed message")

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
	// Payload identifies the payload for logs without quoting it: even its
	// first bytes can hold customer identifiers.
	Payload Fingerprint
	// Err is the underlying error, if any (a *json.SyntaxError).
	Err error
}

// Error returns a one-line message that names the field and identifies the
// payload by its Fingerprint, never by its content.
func (e *DecodeError) Error() string {
	msg := "events: malformed message: "
	if e.Field != "" {
		msg += e.Field + ": "
	}
	msg += e.Reason
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg + " (payload " + e.Payload.String() + ")"
}

// Unwrap returns the underlying error.
func (e *DecodeError) Unwrap() error { return e.Err }

// Is reports whether target is ErrMalformed.
func (e *DecodeError) Is(target error) bool { return target == ErrMalformed }

func newDecodeError(data []byte, field, reason string, err error) *DecodeError {
	return &DecodeError{Field: field, Reason: reason, Payload: FingerprintOf(data), Err: err}
}

// Fingerprint identifies bytes (a payload, a field's raw value) in logs and
// errors without quoting them: their length and the start of their SHA-256,
// enough to match a log line with a message kept elsewhere (a poison record,
// a dead-letter topic) by hashing it.
type Fingerprint struct {
	Len    int    // length in bytes
	SHA256 string // the first 16 hex digits of the bytes' SHA-256
}

// FingerprintOf returns the Fingerprint of b.
func FingerprintOf(b []byte) Fingerprint {
	sum := sha256.Sum256(b)
	return Fingerprint{Len: len(b), SHA256: hex.EncodeToString(sum[:8])}
}

// String returns "<n> bytes, sha256 <hex>".
func (f Fingerprint) String() string {
	return strconv.Itoa(f.Len) + " bytes, sha256 " + f.SHA256
}

// FieldProblem describes an optional field Decode could not read. The field
// was left zero and the event decoded anyway.
type FieldProblem struct {
	Field string      // JSON path of the field, e.g. "entitlement.updateTime"
	Value Fingerprint // identifies the raw JSON value without quoting it
	Err   error       // what is wrong with it; never quotes the value
}

// String returns the problem as one line for a log, without the value.
func (p FieldProblem) String() string {
	return p.Field + ": " + p.Err.Error() + " (value " + p.Value.String() + ")"
}

// Permanent marks err as one that retrying cannot fix. A processor that gets
// it from a callback (a marketplace.Handler method) records the message as poison and acknowledges it
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
