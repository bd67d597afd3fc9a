package marketplacetest

// SCAFFOLD: agent software statements; the tokens branch fills it in.

// StatementParams describes a software_statement to mint.
type StatementParams struct {
	AccountID    string   // sub
	OrderID      string   // google.order
	Audience     string   // aud: the agent card's provider.url
	RedirectURIs []string // auth_app_redirect_uris; nil: Gemini Enterprise's two
	Bad          string   // an attack kind from StatementAttackTokens; "" for a good token
}

// StatementToken mints a software_statement signed as Gemini Enterprise
// (cloud-agentspace) signs it.
func (s *Server) StatementToken(p StatementParams) string { return "" }

// StatementCertsURL is where the emulator serves the agentspace signing
// keys ({kid: PEM}); verify.Config.StatementCertsURL in tests.
func (s *Server) StatementCertsURL() string { return s.URL() + "/agentspace/certs" }
