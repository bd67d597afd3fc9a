package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"google.golang.org/api/option"

	"github.com/gcpmarketplace/gcpmarketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
	"github.com/gcpmarketplace/gcpmarketplace/procurement"
	"github.com/gcpmarketplace/gcpmarketplace/usage"
)

// parseConfig reads the flags and the environment. databaseGiven says
// whether -database was set, which -emulator needs to know.
func parseConfig(args []string, getenv func(string) string, out io.Writer) (cfg config, databaseGiven bool, err error) {
	fs := flag.NewFlagSet("usage-only", flag.ContinueOnError)
	fs.SetOutput(out)
	listen := "127.0.0.1:8080"
	if p := getenv("PORT"); p != "" {
		listen = ":" + p
	}
	db := getenv("DATABASE_URL")
	if db == "" {
		db = "usage.db"
	}
	metrics := getenv("MARKETPLACE_USAGE_METRICS")
	if metrics == "" {
		metrics = "requests"
	}
	fs.StringVar(&cfg.ServiceName, "service", getenv("MARKETPLACE_SERVICE_NAME"), "Service Control service name of the product ($MARKETPLACE_SERVICE_NAME)")
	fs.StringVar(&cfg.DatabaseURL, "database", db, "SQLite file path or postgres:// URL ($DATABASE_URL; with -emulator only this flag counts, and the default is a temporary database deleted at exit)")
	fs.StringVar(&cfg.Listen, "listen", listen, "HTTP listen address (default :$PORT when set)")
	fs.StringVar(&metrics, "metrics", metrics, "usage metric ids, comma-separated ($MARKETPLACE_USAGE_METRICS)")
	fs.StringVar(&cfg.OpsToken, "ops-token", getenv("MARKETPLACE_OPS_TOKEN"), "bearer token for /ops/ ($MARKETPLACE_OPS_TOKEN)")
	fs.BoolVar(&cfg.Emulator, "emulator", false, "report to an in-process Marketplace emulator")
	fs.StringVar(&cfg.ProviderID, "provider", getenv("MARKETPLACE_PROVIDER_ID"), "Procurement provider id, to confirm cancellations before billing ($MARKETPLACE_PROVIDER_ID)")
	fs.BoolVar(&cfg.UnconfirmedEnds, "unconfirmed-ends", false, "do not confirm cancellations with Procurement: a cancellation registered late is billed")
	fs.StringVar(&cfg.SourceDB, "source", "", "meter into your own api_calls table in this SQLite file, read by the reporter at seal, instead of Record")
	if err := fs.Parse(args); err != nil {
		return cfg, false, err
	}
	fs.Visit(func(f *flag.Flag) { databaseGiven = databaseGiven || f.Name == "database" })
	for _, m := range strings.Split(metrics, ",") {
		if m = strings.TrimSpace(m); m != "" {
			cfg.Metrics = append(cfg.Metrics, m)
		}
	}
	cfg.ServiceControlEndpoint = getenv("MARKETPLACE_SERVICECONTROL_ENDPOINT")
	cfg.ProcurementEndpoint = getenv("MARKETPLACE_PROCUREMENT_ENDPOINT")
	if cfg.ServiceName == "" && !cfg.Emulator {
		return cfg, false, errors.New("missing the service name: -service or $MARKETPLACE_SERVICE_NAME (Producer Portal → your product → Technical integration)")
	}
	if cfg.ProviderID == "" && !cfg.Emulator && !cfg.UnconfirmedEnds {
		return cfg, false, errors.New("missing the provider id: -provider or $MARKETPLACE_PROVIDER_ID, to confirm cancellations with Procurement " +
			"before billing (or -unconfirmed-ends to bill whatever your account flow has not cancelled yet)")
	}
	if len(cfg.Metrics) == 0 {
		return cfg, false, errors.New("missing usage metrics: -metrics or $MARKETPLACE_USAGE_METRICS")
	}
	return cfg, databaseGiven, nil
}

// reporterConfig is the usage reporter's configuration, with your app's
// hooks; -emulator and confirmEnds complete it.
func (s *service) reporterConfig() *usage.Config {
	rcfg := &usage.Config{
		Runtime: gcpmarketplace.Runtime{Logger: s.log},
		Metrics: map[string]usage.MetricKind{},
		OnServingChange: func(ctx context.Context, c usage.ServingChange) {
			// Your app: suspend or resume the customer.
			s.log.WarnContext(ctx, "serving state changed", "entitlement_id", c.EntitlementID, "serving", c.Serving, "code", c.Block.Code)
		},
		DeadlineAlertMargin: 15 * time.Minute,
		OnDeadlineAlert: func(ctx context.Context, a usage.DeadlineAlert) {
			if a.Held != nil { // -source: the window could not be sealed yet
				s.log.ErrorContext(ctx, "usage window not sealed near its deadline", "entitlement_id", a.Window.EntitlementID,
					"window_start", a.Window.Start, "missed", a.Missed, "error", a.Held)
				return
			}
			s.log.ErrorContext(ctx, "usage window not reported by its deadline", "operation_id", a.Window.OperationID, "missed", a.Missed)
		},
		OnBilledAfterEnd: func(ctx context.Context, a usage.BilledAfterEnd) {
			// Your app: issue the customer a credit for a.Values.
			s.log.ErrorContext(ctx, "usage billed after a cancellation", "entitlement_id", a.EntitlementID, "operation_ids", a.OperationIDs)
		},
	}
	for _, m := range s.cfg.Metrics {
		rcfg.Metrics[m] = usage.Int64
	}
	return rcfg
}

// confirmEnds gives the reporter a Procurement client to confirm
// cancellations with before billing, unless there is no provider or
// -unconfirmed-ends. procurementOpts are the emulator's, if any.
func (s *service) confirmEnds(ctx context.Context, rcfg *usage.Config, procurementOpts []option.ClientOption) error {
	if s.cfg.ProcurementEndpoint != "" && !s.cfg.Emulator {
		procurementOpts = []option.ClientOption{option.WithEndpoint(s.cfg.ProcurementEndpoint), option.WithTokenSource(oauth2.StaticTokenSource(&oauth2.Token{AccessToken: marketplacetest.AccessToken}))}
	}
	if s.cfg.ProviderID != "" && !s.cfg.UnconfirmedEnds {
		client, err := procurement.NewClient(ctx, s.cfg.ProviderID, procurementOpts...)
		if err != nil {
			return fmt.Errorf("procurement client: %w", err)
		}
		rcfg.EndConfirmer = client
	}
	return nil
}

// run serves HTTP and reports usage until ctx is done, then shuts down:
// the web server, then the reporter with a last flush.
func (s *service) run(ctx context.Context, listen string, out io.Writer, ready func(*service)) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", listen, err)
	}
	s.url = "http://" + ln.Addr().String()
	web := &http.Server{Handler: s.routes(), ReadHeaderTimeout: 10 * time.Second,
		BaseContext: func(net.Listener) context.Context { return context.WithoutCancel(ctx) }}
	var workers sync.WaitGroup
	defer workers.Wait()
	workers.Go(func() { _ = web.Serve(ln) })
	bg, stopBackground := context.WithCancel(ctx)
	defer stopBackground()
	workers.Go(func() { _ = s.reporter.Run(bg) })

	s.log.Info("serving", "url", s.url, "service", s.cfg.ServiceName)
	if s.emu != nil {
		if err := s.printEmulatorHelp(ctx, out); err != nil {
			return err
		}
	}
	if ready != nil {
		ready(s)
	}
	<-ctx.Done()
	s.log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 20*time.Second)
	defer cancel()
	_ = web.Shutdown(shutdownCtx)
	if err := s.reporter.Close(shutdownCtx); err != nil { // stops Run, flushes once more
		s.log.Warn("final usage flush failed; the next start reports it", "error", err)
	}
	stopBackground()
	s.log.Info("stopped")
	return nil
}
