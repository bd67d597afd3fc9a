// Command ai-agent is an A2A agent sold through Google Cloud Marketplace
// and used from Gemini Enterprise, built on the official A2A Go SDK
// (github.com/a2aproject/a2a-go, A2A 0.3: the version Gemini Enterprise
// speaks) and package marketplace/agent:
//
//	GET  /.well-known/agent-card.json   the agent card: provider.url, the DCR
//	                                    extension, an oauth2 security scheme
//	POST /dcr                           Dynamic Client Registration (Registry.DCRHandler):
//	                                    one OAuth client per Marketplace order
//	POST /a2a                           A2A JSON-RPC behind Registry.Middleware: the
//	                                    caller's order, refused unless active; every
//	                                    message metered to that order's entitlement
//
// The Marketplace processor receives the orders' entitlements from Pub/Sub;
// Registry.Handler revokes an order's client when its entitlement is
// cancelled or deleted.
//
//	go run ./examples/ai-agent -emulator   # offline, against the emulator
//
// Offline, Google (Procurement, Pub/Sub, Service Control, the
// software-statement signer and Gemini Enterprise) is the in-process
// emulator, and your OAuth authorization server is a STAND-IN
// (standin_idp.go), not for production. Against Google, replace the
// stand-in with adapters to your authorization server: the command refuses
// to start without one.
package main

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/gcpmarketplace/gcpmarketplace/examples/internal/cmdmain"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/agent"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/sqlitestore"
	"github.com/gcpmarketplace/gcpmarketplace/usage"
)

func main() { cmdmain.Serve("ai-agent", serve) }

type config struct {
	Listen, DatabaseURL string
	Emulator            bool
	ProviderURL         string // the card's provider.url: the software statements' aud
	AuthorizationURL    string // your authorization server's endpoints, for the card
	TokenURL            string
	SecretKey           []byte // seals the OAuth client secrets at rest
}

type service struct {
	cfg      config
	log      *slog.Logger
	url      string
	emu      *marketplacetest.Server // nil unless -emulator
	idp      *standinIdP             // the stand-in; nil against Google
	tokens   agent.TokenChecker
	proc     *marketplace.Processor
	registry *agent.Registry
	reporter *usage.Reporter
}

func serve(ctx context.Context, args []string, getenv func(string) string, out io.Writer, ready func(*service)) (err error) {
	cfg, err := parseConfig(args, getenv, out)
	if err != nil {
		return err
	}
	if !cfg.Emulator {
		return errors.New("no identity provider: implement agent.IdentityProvider and agent.TokenChecker for your " +
			"OAuth authorization server (see standin_idp.go), or run with -emulator")
	}
	s := &service{cfg: cfg, log: slog.New(slog.NewTextHandler(out, nil))}
	s.emu = marketplacetest.New(nil, marketplacetest.WithService(marketplacetest.DefaultServiceName, metricMessages))
	defer s.emu.Close()
	defer s.emu.Clock().Follow(nil, 0)() // time passes as in production
	if s.cfg.DatabaseURL == "" {
		dir, err := os.MkdirTemp("", "ai-agent-emulator-")
		if err != nil {
			return fmt.Errorf("temporary database for -emulator: %w", err)
		}
		defer os.RemoveAll(dir) // after the store's Close, deferred below
		s.cfg.DatabaseURL = filepath.Join(dir, "agent.db")
	}
	store, err := sqlitestore.Open(ctx, s.cfg.DatabaseURL, sqlitestore.WithLogger(s.log))
	if err != nil {
		return fmt.Errorf("open SQLite %q: %w", s.cfg.DatabaseURL, err)
	}
	defer func() {
		if cerr := store.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	return s.run(ctx, store, out, ready)
}

func parseConfig(args []string, getenv func(string) string, out io.Writer) (cfg config, err error) {
	fs := flag.NewFlagSet("ai-agent", flag.ContinueOnError)
	fs.SetOutput(out)
	listen := "127.0.0.1:8080"
	if p := getenv("PORT"); p != "" {
		listen = ":" + p
	}
	secret := getenv("AGENT_SECRET_KEY")
	fs.StringVar(&cfg.Listen, "listen", listen, "HTTP listen address (default :$PORT when set)")
	fs.StringVar(&cfg.DatabaseURL, "database", "", "SQLite file (default with -emulator: a temporary one, deleted at exit)")
	fs.BoolVar(&cfg.Emulator, "emulator", false, "run offline against an in-process Marketplace emulator, with a stand-in identity provider")
	fs.StringVar(&cfg.ProviderURL, "provider-url", getenv("AGENT_PROVIDER_URL"), "the agent card's provider.url, which software statements must name as aud ($AGENT_PROVIDER_URL; -emulator: this server's URL)")
	fs.StringVar(&cfg.AuthorizationURL, "authorization-url", getenv("AGENT_AUTHORIZATION_URL"), "your OAuth authorization endpoint, for the card ($AGENT_AUTHORIZATION_URL)")
	fs.StringVar(&cfg.TokenURL, "token-url", getenv("AGENT_TOKEN_URL"), "your OAuth token endpoint, for the card ($AGENT_TOKEN_URL)")
	fs.StringVar(&secret, "secret-key", secret, "64 hex digits: the AES-256 key sealing client secrets at rest ($AGENT_SECRET_KEY; -emulator: random)")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if secret == "" && cfg.Emulator {
		secret = randomHex(32)
	}
	if cfg.SecretKey, err = hex.DecodeString(secret); err != nil || len(cfg.SecretKey) != 32 {
		return cfg, errors.New("-secret-key or $AGENT_SECRET_KEY: want 64 hex digits (32 bytes), e.g. from `openssl rand -hex 32`")
	}
	return cfg, nil
}

// app is your product's marketplace.Handler: the agent needs no callback
// of its own (Registry.Handler revokes orders), so the defaults.
type app struct{ marketplace.HandlerDefaults }

// readyTimeout bounds a shutdown.
const readyTimeout = 20 * time.Second
