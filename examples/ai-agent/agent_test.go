package main

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/agent"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/verify"
)

// A statement that could not be checked (Google's keys unavailable, the
// store down) is an internal, retryable error, not a mismatch.
func TestStatementRefused(t *testing.T) {
	t.Parallel()
	wrap := func(err error) error { return fmt.Errorf("identify software_statement: %w", err) }
	for err, refused := range map[error]bool{
		wrap(&verify.TokenError{Reason: verify.ErrKeysUnavailable, Kind: "software-statement"}): false,
		wrap(errors.New("store: connection refused")):                                           false,
		wrap(&verify.TokenError{Reason: verify.ErrTokenExpired}):                                true,
		wrap(&verify.TokenError{Reason: verify.ErrTokenSignature}):                              true,
		wrap(marketplace.ErrNotFound):                                                           true,
		wrap(agent.ErrOrderInactive):                                                            true,
		wrap(agent.ErrStatementMismatch):                                                        true,
	} {
		assert.Equal(t, refused, statementRefused(err), err.Error())
	}
}
