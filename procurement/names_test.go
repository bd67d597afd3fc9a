package procurement

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestResourceNames(t *testing.T) {
	t.Parallel()
	c := &Client{provider: "acme", parent: "providers/acme"}
	for in, want := range map[string]string{
		"e1":                                   "providers/acme/entitlements/e1",
		"4f165726-0a12-4b7c-ab5b-34a6ca9fa5d3": "providers/acme/entitlements/4f165726-0a12-4b7c-ab5b-34a6ca9fa5d3",
		"providers/acme/entitlements/E-1234_x.y:z": "providers/acme/entitlements/E-1234_x.y:z",
	} {
		got, err := c.entitlementName(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got)
	}
	for _, in := range []string{"", "a/b", "providers/acme/entitlements/", "providers/acme/entitlements/a/b",
		"providers/other/entitlements/e1", "providers/acme/accounts/a1", "e?x", "e#x", "e%2F", "..", ".", "e\n",
		strings.Repeat("a", 257)} {
		_, err := c.entitlementName(in)
		require.ErrorIs(t, err, ErrInvalidName, "%q", in)
	}
	got, err := c.accountName("providers/acme/accounts/a1")
	require.NoError(t, err)
	assert.Equal(t, "providers/acme/accounts/a1", got)
	assert.Equal(t, "providers/acme/accounts/a1", c.AccountName("a1"))
	assert.Equal(t, "providers/acme/entitlements/e1", c.EntitlementName("e1"))
}

func FuzzEntitlementName(f *testing.F) {
	for _, s := range []string{"e1", "providers/acme/entitlements/e1", "providers/x/entitlements/e", "a/../b", "", "..", "%2e"} {
		f.Add(s)
	}
	c := &Client{provider: "acme", parent: "providers/acme"}
	f.Fuzz(func(t *testing.T, in string) {
		name, err := c.entitlementName(in)
		if err != nil {
			if !errors.Is(err, ErrInvalidName) {
				t.Fatalf("error %v is not ErrInvalidName", err)
			}
			return
		}
		id, ok := strings.CutPrefix(name, "providers/acme/entitlements/")
		if !ok || !validID(id) || strings.ContainsAny(id, "/?#% ") {
			t.Fatalf("%q became unsafe name %q", in, name)
		}
		if lastSegment(name, "entitlements/") != id {
			t.Fatalf("id of %q is not %q", name, id)
		}
	})
}
