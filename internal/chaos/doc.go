// Package chaos holds the SDK's fault suite: a randomised, seeded lifecycle
// of many customers (purchases, sign-ups, plan changes, cancellations,
// reverts, deletions, metered usage) run against the marketplacetest
// emulator with every fault on — 5xx and 429 answers, latency, timeouts,
// responses lost after the server acted, duplicated, reordered, late and
// stale deliveries — and process restarts between commit and
// acknowledgement.
//
// It has no API: everything is in its tests. After the run, a checker
// compares what the application saw and what Google holds and billed with
// what the scenario did, and lists every violation: a lost event, a
// callback fired other than exactly once per logical change, a unit of
// usage lost or billed twice, local state different from the emulator's.
//
// The suite runs in go test ./... at a size CI affords; larger runs are on
// demand:
//
//	go test ./internal/chaos -run TestChaos -chaos.seed=N -chaos.customers=5000
//	go test ./internal/chaos -run TestChaos -chaos.long
//
// A failing run prints its seed and the command that replays it.
package chaos
