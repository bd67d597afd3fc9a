// Package testhook reaches into the SDK's types for the SDK's own tests,
// so that no test knob is part of the public API. A package that offers a
// hook sets its function at init; tests call it, usually through
// internal/testenv. Nothing outside this module can import it.
package testhook

import (
	"context"
	"time"
)

// SetProcurementSleep replaces the function a *procurement.Client (client)
// waits with between the attempts of a call: tests record the delays, or
// shorten them, instead of sleeping. sleep must return ctx.Err() if ctx
// ends first. Call it before the client is used. Set by package
// procurement; nil until that package is linked in.
var SetProcurementSleep func(client any, sleep func(ctx context.Context, d time.Duration) error)
