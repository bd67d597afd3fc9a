// Command usage-only is the starter for a vendor that already has its own
// Marketplace account flow (sign-up, approvals) and only needs usage
// reporting: a usage.Reporter that aggregates usage durably in hourly
// windows and reports each window to Service Control exactly once, checking
// first (services.check) and telling you when to stop serving a customer.
//
// It needs only the usage package, a Ledger (the SQLite or PostgreSQL
// store) and read access to the Procurement API, with which the reporter
// confirms, before sealing each hour, that no entitlement was cancelled
// before its end (a cancellation your account flow registers late is then
// never billed); no Pub/Sub.
//
//	POST /ops/consumers   {entitlementId, usageReportingId, start?, end?}: your account
//	                      flow registers an entitlement when it becomes active, and sets
//	                      end when it is cancelled (usage after it is refused)
//	POST /api/work        your product's API, metered: one unit per call
//	GET  /ops/usage/backlog, /healthz
//
//	go run ./examples/usage-only -emulator   # offline, against the emulator
//
// With -source <file>, /api/work meters into your own api_calls table (a
// SQLite file) instead of calling Record, and the reporter reads that
// table's totals per window when it seals them (usage.Config.Source; see
// source.go): the shape for a vendor that already meters in its own
// database or warehouse.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/oauth2"
	"google.golang.org/api/option"

	"github.com/gcpmarketplace/gcpmarketplace/examples/internal/cmdmain"
	"github.com/gcpmarketplace/gcpmarketplace/examples/internal/opshttp"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/pgstore"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/sqlitestore"
	"github.com/gcpmarketplace/gcpmarketplace/usage"
	"github.com/gcpmarketplace/gcpmarketplace/usage/ledger"
)

func main() { cmdmain.Serve("usage-only", serve) }

type config struct {
	ServiceName, DatabaseURL, Listen, OpsToken string
	Metrics                                    []string
	Emulator                                   bool
	SourceDB                                   string // -source: meter in an api_calls table read by usage.Config.Source
	ServiceControlEndpoint                     string // external emulator only
	ProviderID                                 string // Procurement provider, for confirming ends
	ProcurementEndpoint                        string // external emulator only
	UnconfirmedEnds                            bool   // opt out of confirming ends
}

// ledgerStore is where usage lives until Google confirms it: the SQLite or
// PostgreSQL store (only its ledger.Ledger side is used here).
type ledgerStore interface {
	ledger.Ledger
	Close() error
}

type service struct {
	cfg      config
	log      *slog.Logger
	reporter *usage.Reporter
	emu      *marketplacetest.Server // nil unless -emulator
	calls    *apiCalls               // nil unless -source
	now      func() time.Time
	url      string
}

func serve(ctx context.Context, args []string, getenv func(string) string, out io.Writer, ready func(*service)) (err error) {
	cfg, databaseGiven, err := parseConfig(args, getenv, out)
	if err != nil {
		return err
	}
	s := &service{cfg: cfg, log: slog.New(slog.NewTextHandler(out, nil)), now: time.Now}

	var procurementOpts, scOpts []option.ClientOption
	rcfg := s.reporterConfig()
	switch {
	case cfg.Emulator:
		emu := marketplacetest.New(nil, marketplacetest.WithService(orDefault(cfg.ServiceName, marketplacetest.DefaultServiceName), cfg.Metrics...))
		defer emu.Close()
		defer emu.Clock().Follow(nil, 0)() // time passes as in production
		s.emu, s.cfg.ServiceName, s.now = emu, emu.ServiceName(), emu.Clock().Now
		if !databaseGiven {
			// Never $DATABASE_URL's ledger: its usage would be reported to Google.
			dir, err := os.MkdirTemp("", "usage-only-emulator-")
			if err != nil {
				return fmt.Errorf("temporary database for -emulator: %w", err)
			}
			defer os.RemoveAll(dir) // after the store's Close, deferred below
			cfg.DatabaseURL = filepath.Join(dir, "usage.db")
		}
		if s.cfg.OpsToken == "" {
			s.cfg.OpsToken = "emulator"
		}
		scOpts, rcfg.Clock, rcfg.FlushInterval = emu.ClientOptions(), emu.Clock().Now, time.Second
		s.cfg.ProviderID, procurementOpts = emu.ProviderID(), emu.ClientOptions()
	case cfg.ServiceControlEndpoint != "":
		scOpts = []option.ClientOption{option.WithEndpoint(cfg.ServiceControlEndpoint), option.WithTokenSource(oauth2.StaticTokenSource(&oauth2.Token{AccessToken: marketplacetest.AccessToken}))}
	}
	if err := s.confirmEnds(ctx, rcfg, procurementOpts); err != nil {
		return err
	}

	if cfg.SourceDB != "" {
		if s.calls, err = openAPICalls(ctx, cfg.SourceDB); err != nil {
			return err
		}
		defer s.calls.Close()
		rcfg.Source = s.calls // every metric
	}
	store, err := openLedger(ctx, cfg.DatabaseURL, s.log)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := store.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	s.reporter, err = usage.New(ctx, s.cfg.ServiceName, store, rcfg, scOpts...)
	if err != nil {
		return fmt.Errorf("usage reporter: %w (credentials are Application Default Credentials of the service account"+
			" holding roles/servicemanagement.serviceController, linked in Producer Portal)", err)
	}

	return s.run(ctx, cfg.Listen, out, ready)
}

// printEmulatorHelp buys a usage-based entitlement on the emulator (as your
// account flow would have approved it) and shows how to meter it.
func (s *service) printEmulatorHelp(ctx context.Context, out io.Writer) error {
	id, err := s.emu.Purchase(ctx, marketplacetest.PurchaseParams{UsageBased: true, AutoApprove: true})
	if err != nil {
		return err
	}
	ent, _ := s.emu.Entitlement(id)
	fmt.Fprintf(out, `
Running against the in-process Marketplace emulator. A customer bought entitlement %[1]s.
Register it, as your account flow would, then call the metered API:

  curl -X POST -H 'Authorization: Bearer %[3]s' %[2]s/ops/consumers \
       -d '{"entitlementId":"%[1]s","usageReportingId":"%[4]s"}'
  curl -X POST -H 'X-Entitlement: %[1]s' %[2]s/api/work
  curl -X POST %[5]s/control/clock:advance -d '{"duration":"2h"}'   # the hour ends: reported
  curl %[5]s/control/reports

`, id, s.url, s.cfg.OpsToken, ent.UsageReportingID, s.emu.URL())
	return nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func openLedger(ctx context.Context, url string, log *slog.Logger) (ledgerStore, error) {
	if strings.HasPrefix(url, "postgres://") || strings.HasPrefix(url, "postgresql://") {
		s, err := pgstore.Open(ctx, url, pgstore.WithLogger(log))
		if err != nil {
			return nil, fmt.Errorf("open PostgreSQL (-database or $DATABASE_URL): %w", err)
		}
		return s, nil
	}
	s, err := sqlitestore.Open(ctx, strings.TrimPrefix(url, "sqlite://"), sqlitestore.WithLogger(log))
	if err != nil {
		return nil, fmt.Errorf("open SQLite %q (-database or $DATABASE_URL): %w", url, err)
	}
	return s, nil
}

func (s *service) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	mux.Handle("POST /ops/consumers", s.opsOnly(s.register))
	mux.Handle("GET /ops/usage/backlog", s.opsOnly(func(w http.ResponseWriter, r *http.Request) {
		ws, err := s.reporter.Backlog(r.Context())
		writeJSON(w, map[string]any{"windows": ws}, err)
	}))
	mux.HandleFunc("POST /api/work", s.work)
	return mux
}

// register is what your account flow calls when an entitlement with a
// usageReportingId becomes active (start = its creation time), and again
// when it is cancelled (end = the cancellation time). It is idempotent.
func (s *service) register(w http.ResponseWriter, r *http.Request) {
	var c struct {
		EntitlementID    string    `json:"entitlementId"`
		UsageReportingID string    `json:"usageReportingId"`
		Start            time.Time `json:"start"`
		End              time.Time `json:"end"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&c); err != nil {
		writeJSON(w, nil, fmt.Errorf("%w: body: %v", usage.ErrInvalid, err))
		return
	}
	err := s.reporter.Register(r.Context(), usage.Consumer{EntitlementID: c.EntitlementID,
		UsageReportingID: c.UsageReportingID, Start: c.Start, End: c.End})
	writeJSON(w, map[string]any{"registered": c.EntitlementID}, err)
}

// work is your product's API: one unit of the first metric per call, for
// the caller's entitlement.
func (s *service) work(w http.ResponseWriter, r *http.Request) {
	ent := r.Header.Get("X-Entitlement") // your app: from the caller's authenticated identity
	serving, err := s.reporter.Serving(r.Context(), ent)
	if errors.Is(err, usage.ErrUnknownConsumer) {
		http.Error(w, "no subscription", http.StatusPaymentRequired)
		return
	}
	if err != nil {
		http.Error(w, "try again", http.StatusServiceUnavailable)
		return
	}
	if !serving.Serving {
		http.Error(w, "subscription suspended by Google Cloud: "+serving.Block.Code, http.StatusPaymentRequired)
		return
	}
	if s.calls != nil {
		err = s.calls.add(r.Context(), ent, s.cfg.Metrics[0], 1, s.now())
	} else {
		err = s.reporter.Record(r.Context(), usage.Record{EntitlementID: ent, Metric: s.cfg.Metrics[0], Int64: 1})
	}
	if errors.Is(err, usage.ErrAfterEnd) || errors.Is(err, usage.ErrWindowSealed) || errors.Is(err, usage.ErrBeforeStart) {
		http.Error(w, "subscription not active", http.StatusPaymentRequired)
		return
	}
	if err != nil { // ours, not the customer's: the ledger could not take it now
		s.log.ErrorContext(r.Context(), "recording usage failed", "error", err)
		http.Error(w, "try again", http.StatusServiceUnavailable)
		return
	}
	writeJSON(w, map[string]any{"recorded": 1}, nil)
}

// opsOnly requires Authorization: Bearer <ops token>.
func (s *service) opsOnly(h http.HandlerFunc) http.Handler {
	return opshttp.Guard(s.cfg.OpsToken, "set -ops-token or $MARKETPLACE_OPS_TOKEN", h)
}

func writeJSON(w http.ResponseWriter, v any, err error) { opshttp.WriteJSON(w, v, err, opsStatus) }

// opsStatus is the HTTP status of an operator action's error.
func opsStatus(err error) int {
	if errors.Is(err, usage.ErrInvalid) {
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}
