package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"os"
	"path/filepath"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
)

// -emulator: everything Google does is played by an in-process emulator
// (marketplace/marketplacetest). Delete this file when you copy the example
// if you do not want the mode; nothing else depends on it.

// startEmulator starts the emulator and points the configuration at it.
// stop closes the emulator and deletes the temporary database.
//
// Unless -database is given, the state goes to a temporary database, never
// to $DATABASE_URL or ./marketplace.db: those hold the state of another
// Marketplace (Google's, or an emulator's that is gone), whose customers
// this one has never heard of.
func startEmulator(cfg *config) (emu *marketplacetest.Server, stop func(), err error) {
	removeDB := func() {}
	if !cfg.DatabaseGiven {
		dir, err := os.MkdirTemp("", "saas-backend-emulator-")
		if err != nil {
			return nil, nil, fmt.Errorf("temporary database for -emulator: %w", err)
		}
		cfg.DatabaseURL = filepath.Join(dir, "marketplace.db")
		removeDB = func() { _ = os.RemoveAll(dir) }
	}
	opts := []marketplacetest.Option{}
	if cfg.ProviderID != "" {
		opts = append(opts, marketplacetest.WithProviderID(cfg.ProviderID))
	}
	service := cfg.ServiceName
	if service == "" {
		service = marketplacetest.DefaultServiceName
	}
	opts = append(opts, marketplacetest.WithService(service, cfg.Metrics...))
	emu = marketplacetest.New(nil, opts...)
	cfg.ProviderID, cfg.ServiceName = emu.ProviderID(), emu.ServiceName()
	if cfg.Transport == transportPull {
		cfg.Project, cfg.Subscription = "vendor-project", emu.Subscription()
	} else {
		cfg.PushAccount = emu.PushServiceAccount()
	}
	if cfg.OpsToken == "" {
		var b [16]byte
		_, _ = rand.Read(b[:])
		cfg.OpsToken = hex.EncodeToString(b[:])
	}
	return emu, func() { emu.Close(); removeDB() }, nil
}

func (b *backend) printEmulatorHelp(out io.Writer) {
	fmt.Fprintf(out, `
Running against the in-process Marketplace emulator (nothing leaves this machine).

  Buy the product and sign up, as a customer:  open %[1]s/emulator/checkout
  Operator console:     open %[1]s/ops/login and paste the token %[2]s
  Operator API:         curl -H 'Authorization: Bearer %[2]s' %[1]s/ops/api/v1/overview
  Metrics:              curl %[1]s/metrics
  Emulator control API: %[3]s/control/...  (move the clock: curl -X POST %[3]s/control/clock:advance -d '{"duration":"1h"}';
                        see examples/emulator/README.md)

`, b.url, b.cfg.OpsToken, b.emu.URL())
}

// checkoutPage is what Google's redirect to the sign-up URL looks like:
// a form that the browser POSTs at once, carrying the signed token.
var checkoutPage = template.Must(template.New("checkout").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Redirecting to the vendor…</title></head>
<body onload="document.forms[0].submit()">
<p>Google Cloud Marketplace (emulated): account {{.AccountID}} bought {{.Plan}}; redirecting to the vendor's sign-up page…</p>
<form method="POST" action="{{.Action}}">
<input type="hidden" name="x-gcp-marketplace-token" value="{{.Token}}">
<noscript><button type="submit">Continue</button></noscript>
</form></body></html>`))

func (b *backend) emulatorRoutes(mux *http.ServeMux) {
	// GET /emulator/checkout?plan=standard: a new customer buys the
	// (usage-based) product, and their browser is sent to /signup.
	mux.HandleFunc("GET /emulator/checkout", func(w http.ResponseWriter, r *http.Request) {
		plan := r.URL.Query().Get("plan")
		if plan == "" {
			plan = "standard"
		}
		entID, err := b.emu.Purchase(r.Context(), marketplacetest.PurchaseParams{Plan: plan, UsageBased: true})
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		ent, _ := b.emu.Entitlement(entID)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_ = checkoutPage.Execute(w, map[string]string{
			"AccountID": ent.AccountID, "Plan": plan, "Action": b.url + "/signup",
			"Token": b.emu.SignupToken(marketplacetest.TokenParams{Subject: ent.AccountID, Audience: b.cfg.Audiences[0]}),
		})
	})
}
