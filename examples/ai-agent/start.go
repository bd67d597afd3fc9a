package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"cloud.google.com/go/pubsub/v2"

	"github.com/gcpmarketplace/gcpmarketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/agent"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/sqlitestore"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/verify"
	"github.com/gcpmarketplace/gcpmarketplace/procurement"
	"github.com/gcpmarketplace/gcpmarketplace/usage"
)

// emulatorProject is the Pub/Sub project of the emulator's subscription.
const emulatorProject = "vendor-project"

// run listens (the card needs the URL), wires the SDK's components, serves
// and receives until ctx is done, then shuts down: the web server, the
// processor, the reporter with a last flush.
func (s *service) run(ctx context.Context, store *sqlitestore.Store, out io.Writer, ready func(*service)) error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.cfg.Listen, err)
	}
	defer ln.Close()
	s.url = "http://" + ln.Addr().String()
	if s.cfg.ProviderURL == "" {
		s.cfg.ProviderURL = s.url
	}
	s.idp = newStandinIdP(s.emu.Clock().Now)
	s.tokens = s.idp
	if s.cfg.TokenURL == "" {
		s.cfg.AuthorizationURL = s.url + "/standin-idp/authorize" // not served: the stand-in has no user consent
		s.cfg.TokenURL = s.url + standinTokenPath
	}
	if err := s.wire(ctx, store); err != nil {
		return err
	}
	defer s.proc.Close()

	ps, err := pubsub.NewClient(ctx, emulatorProject, s.emu.PubSubOptions()...)
	if err != nil {
		return fmt.Errorf("pubsub client: %w", err)
	}
	defer ps.Close()

	web := &http.Server{Handler: s.routes(), ReadHeaderTimeout: 10 * time.Second,
		BaseContext: func(net.Listener) context.Context { return context.WithoutCancel(ctx) }}
	var workers sync.WaitGroup
	defer workers.Wait()
	workers.Go(func() { _ = web.Serve(ln) })
	bg, stopBackground := context.WithCancel(ctx)
	defer stopBackground()
	workers.Go(func() { _ = s.reporter.Run(bg) })
	workers.Go(func() {
		if err := s.proc.Run(bg, ps.Subscriber(s.emu.Subscription())); err != nil {
			s.log.Error("receiving Marketplace notifications failed", "error", err)
		}
	})

	s.log.Info("serving", "url", s.url, "card", s.url+"/.well-known/agent-card.json")
	s.printEmulatorHelp(out)
	if ready != nil {
		ready(s)
	}
	<-ctx.Done()
	s.log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), readyTimeout)
	defer cancel()
	_ = web.Shutdown(shutdownCtx)
	stopBackground()
	if err := s.reporter.Close(shutdownCtx); err != nil {
		s.log.Warn("final usage flush failed; the next start reports it", "error", err)
	}
	s.log.Info("stopped")
	return nil
}

// wire creates the usage reporter, the processor and the Registry.
func (s *service) wire(ctx context.Context, store *sqlitestore.Store) error {
	rt := gcpmarketplace.Runtime{Logger: s.log, Clock: s.emu.Clock().Now}
	client, err := procurement.NewClient(ctx, s.emu.ProviderID(), s.emu.ClientOptions()...)
	if err != nil {
		return fmt.Errorf("procurement client: %w", err)
	}
	s.reporter, err = usage.New(ctx, s.emu.ServiceName(), store, &usage.Config{Runtime: rt,
		Metrics:       map[string]usage.MetricKind{metricMessages: usage.Int64},
		FlushInterval: time.Second, // the emulator's clock jumps by hours
	}, s.emu.ClientOptions()...)
	if err != nil {
		return fmt.Errorf("usage reporter: %w", err)
	}
	// Against Google: verify.Config{} (the agentspace keys at Google's URL).
	verifier, err := verify.NewStatementVerifier(s.cfg.ProviderURL,
		&verify.Config{Runtime: rt, StatementCertsURL: s.emu.StatementCertsURL()})
	if err != nil {
		return fmt.Errorf("software statement verifier: %w", err)
	}
	s.registry, err = agent.New(agent.Config{Runtime: rt, Procurement: client,
		Store: store, Verifier: verifier, IdP: s.idp, SecretKey: s.cfg.SecretKey})
	if err != nil {
		return fmt.Errorf("agent registry: %w", err)
	}
	s.proc, err = marketplace.New(store, client, s.registry.Handler(app{}), &marketplace.Config{Runtime: rt, Usage: s.reporter})
	if err != nil {
		return fmt.Errorf("processor: %w", err)
	}
	s.registry.Attach(s.proc)
	return nil
}

// printEmulatorHelp says how to play the customer and Gemini Enterprise
// with curl, through the emulator's control API.
func (s *service) printEmulatorHelp(out io.Writer) {
	fmt.Fprintf(out, `
Running offline: Google is the in-process emulator, the identity provider a STAND-IN.

  curl %[1]s/.well-known/agent-card.json
  # a customer buys (note entitlementId and accountId; the order id is the entitlement id)
  curl -X POST %[2]s/control/purchase -d '{"usageBased":true,"autoApprove":true}'
  # Gemini Enterprise registers (DCR), gets a token, and sends a message
  curl -X POST %[2]s/control/gemini:register -d '{"dcrUrl":"%[1]s%[3]s","accountId":"ACCOUNT","orderId":"ORDER","audience":"%[4]s"}'
  curl -X POST %[1]s%[5]s -u CLIENT_ID:CLIENT_SECRET -d grant_type=client_credentials
  curl -X POST %[2]s/control/gemini:send -d '{"agentUrl":"%[1]s%[6]s","accessToken":"TOKEN","text":"hi"}'
  # the hour ends: the message is billed to the order's consumer
  curl -X POST %[2]s/control/clock:advance -d '{"duration":"2h"}'; curl %[2]s/control/reports

`, s.url, s.emu.URL(), dcrPath, s.cfg.ProviderURL, standinTokenPath, a2aPath)
}
