package apistatus_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/gcpmarketplace/gcpmarketplace/internal/apistatus"
)

func TestFromHTTP(t *testing.T) {
	for code, want := range map[int]string{
		400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
		404: "NOT_FOUND", 409: "ABORTED", 429: "RESOURCE_EXHAUSTED", 499: "CANCELLED",
		500: "INTERNAL", 501: "UNIMPLEMENTED", 502: "UNAVAILABLE", 503: "UNAVAILABLE",
		504: "DEADLINE_EXCEEDED", 507: "INTERNAL", 418: "UNKNOWN", 200: "UNKNOWN",
	} {
		got := apistatus.FromHTTP(code)
		assert.Equal(t, want, got, "HTTP %d", code)
		assert.True(t, apistatus.Valid(got), "HTTP %d gives a canonical name", code)
	}
}

func TestValid(t *testing.T) {
	assert.True(t, apistatus.Valid("FAILED_PRECONDITION"))
	assert.False(t, apistatus.Valid(""))
	assert.False(t, apistatus.Valid("Service unavailable; see https://example.com"))
	assert.False(t, apistatus.Valid("unavailable"))
}
