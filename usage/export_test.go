package usage

// WithAfterReportHook is a test-only Config change: hook runs right after
// each report RPC returns, before its outcome is written to the ledger (the
// crash tests kill the process there).
func WithAfterReportHook(hook func()) func(*Config) {
	return func(c *Config) { c.afterReport = hook }
}

// WithBeforeSendHook is a test-only Config change: hook runs in each send,
// before its windows are marked sent (the lease tests stall a reporter
// there).
func WithBeforeSendHook(hook func()) func(*Config) {
	return func(c *Config) { c.beforeSend = hook }
}
