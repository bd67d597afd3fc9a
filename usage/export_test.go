package usage

// WithAfterReportHook is a test-only option: hook runs right after each
// report RPC returns, before its outcome is written to the ledger (the crash
// tests kill the process there).
func WithAfterReportHook(hook func()) Option {
	return func(c *config) { c.afterReport = hook }
}

// WithBeforeSendHook is a test-only option: hook runs in each send, before
// its windows are marked sent (the lease tests stall a reporter there).
func WithBeforeSendHook(hook func()) Option {
	return func(c *config) { c.beforeSend = hook }
}
