package ops_test

import (
	"testing"
)

// benchCustomers is a small vendor's customer base.
const benchCustomers = 100

func benchEnv(b *testing.B) (*opsEnv, string) {
	b.Helper()
	e := newOpsEnv(b, nil)
	var acct, ent string
	for range benchCustomers {
		acct, ent = e.Customer()
	}
	e.Bill(ent, 5)
	return e, acct
}

// BenchmarkAPIOverview: the counts a monitoring probe would poll.
func BenchmarkAPIOverview(b *testing.B) {
	e, _ := benchEnv(b)
	for b.Loop() {
		e.get("/ops/api/v1/overview")
	}
}

// BenchmarkConsoleCustomer: a customer page, with its timeline and chart.
func BenchmarkConsoleCustomer(b *testing.B) {
	e, acct := benchEnv(b)
	for b.Loop() {
		e.get("/ops/customers/" + acct)
	}
}
