// Package agent sells an A2A agent through Cloud Marketplace: Dynamic
// Client Registration for Gemini Enterprise (one OAuth client per order),
// the order's lifecycle (its client revoked when the entitlement ends), and
// the identity of each request (which order, entitlement and account).
package agent
