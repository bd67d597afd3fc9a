package agent_test

import (
	"net/http"
	"testing"
)

// BenchmarkDCRRepeat: a registration of an order already registered, the
// call Gemini Enterprise repeats, over real HTTP against the emulator:
// statement verification, the live account read, the stored entitlement
// and order reads, the secret opened.
func BenchmarkDCRRepeat(b *testing.B) {
	e := newEnv(b)
	acct, order := e.buy(true)
	body := stmtBody(e.statement(acct, order))
	if r := e.do(http.MethodPost, body); r.status != http.StatusCreated {
		b.Fatalf("first registration: %d %s", r.status, r.raw)
	}
	b.ReportAllocs()
	for b.Loop() {
		if r := e.do(http.MethodPost, body); r.status != http.StatusCreated {
			b.Fatalf("registration: %d %s", r.status, r.raw)
		}
	}
}
