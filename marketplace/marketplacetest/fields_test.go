package marketplacetest

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseFieldsApply(t *testing.T) {
	resp := map[string]any{
		"nextPageToken": "t",
		"entitlements": []any{
			map[string]any{"name": "n", "state": "s", "plan": "p", "consumers": []any{map[string]any{"project": "x"}}},
		},
	}
	for _, tc := range []struct{ fields, want string }{
		{"nextPageToken", `{"nextPageToken":"t"}`},
		{"entitlements(name,state)", `{"entitlements":[{"name":"n","state":"s"}]}`},
		{"nextPageToken,entitlements/name", `{"entitlements":[{"name":"n"}],"nextPageToken":"t"}`},
		{"entitlements/consumers/project", `{"entitlements":[{"consumers":[{"project":"x"}]}]}`},
		{"entitlements,entitlements/name", `{"entitlements":[{"consumers":[{"project":"x"}],"name":"n","plan":"p","state":"s"}]}`},
		{"entitlements(*)", `{"entitlements":[{"consumers":[{"project":"x"}],"name":"n","plan":"p","state":"s"}]}`},
		{"absent", `{}`},
	} {
		sel, e := parseFields(tc.fields)
		require.Nil(t, e, tc.fields)
		got, err := partial(resp, sel)
		require.NoError(t, err)
		b, _ := json.Marshal(got)
		require.JSONEq(t, tc.want, string(b), tc.fields)
	}
	for _, bad := range []string{",", "a(", "a()", "a(b", "a)b", "a/", "/a", "a,,b"} {
		_, e := parseFields(bad)
		require.NotNil(t, e, bad)
		require.Equal(t, "INVALID_ARGUMENT", e.status, bad)
	}
}

// FuzzParseFields: any selection either parses or is INVALID_ARGUMENT, and
// applying one never panics.
func FuzzParseFields(f *testing.F) {
	for _, s := range []string{"nextPageToken,entitlements(name,state)", "a/b/c", "*", "a(b(c,d),e)", "a("} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sel, e := parseFields(s)
		if e != nil {
			require.Equal(t, "INVALID_ARGUMENT", e.status)
			return
		}
		_, err := partial(map[string]any{"a": []any{map[string]any{"b": 1}}, "c": "d"}, sel)
		require.NoError(t, err)
	})
}
