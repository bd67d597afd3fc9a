package ops_test

import (
	"testing"
	"time"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace/ops"
)

// A session cookie is only accepted as signed: whatever the bytes, parsing
// never panics, and what it accepts re-signs to the same value.
func FuzzParseSession(f *testing.F) {
	key := []byte("0123456789abcdef0123456789abcdef")
	now := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	f.Add(ops.SignSession(key, "alice", now.Add(time.Hour)))
	f.Add("e30.AAAA")
	f.Add(".")
	f.Add("")
	f.Fuzz(func(t *testing.T, v string) {
		name, err := ops.ParseSession(key, v, now)
		if err != nil {
			return
		}
		if name == "" {
			t.Fatalf("accepted %q with an empty name", v)
		}
	})
}

// Page tokens come from clients: decoding never panics, and what decodes
// encodes back.
func FuzzPageTokens(f *testing.F) {
	f.Add(ops.EncodeOffset(50))
	f.Add("azEyMzQ1Njc4OSBvcA")
	f.Add("")
	f.Add("!!")
	f.Fuzz(func(t *testing.T, tok string) {
		if n, err := ops.DecodeOffset(tok); err == nil {
			if n < 0 {
				t.Fatalf("negative offset %d from %q", n, tok)
			}
			if back, _ := ops.DecodeOffset(ops.EncodeOffset(n)); back != n {
				t.Fatalf("offset %d does not round-trip", n)
			}
		}
		if k, err := ops.DecodeKey(tok); err == nil && tok != "" && k.OperationID == "" {
			t.Fatalf("key without an operation id from %q", tok)
		}
	})
}
