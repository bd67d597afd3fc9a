package agent

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"errors"
	"testing"
)

func testRegistry(t testing.TB, key string) *Registry {
	t.Helper()
	block, err := aes.NewCipher([]byte(key))
	if err != nil {
		t.Fatal(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	return &Registry{aead: aead}
}

func TestSealOpens(t *testing.T) {
	t.Parallel()
	r := testRegistry(t, "0123456789abcdef0123456789abcdef")
	sealed := r.seal("order-1", "s3cret")
	if bytes.Contains(sealed, []byte("s3cret")) {
		t.Fatal("sealed secret holds the plain text")
	}
	if again := r.seal("order-1", "s3cret"); bytes.Equal(again, sealed) {
		t.Fatal("two seals of one secret are equal: the nonce is not random")
	}
	got, err := r.open("order-1", sealed)
	if err != nil || got != "s3cret" {
		t.Fatalf("open = %q, %v", got, err)
	}
}

func TestSealRefusesTampering(t *testing.T) {
	t.Parallel()
	r := testRegistry(t, "0123456789abcdef0123456789abcdef")
	other := testRegistry(t, "fedcba9876543210fedcba9876543210")
	sealed := r.seal("order-1", "s3cret")
	flipped := bytes.Clone(sealed)
	flipped[len(flipped)-1] ^= 1
	version := bytes.Clone(sealed)
	version[0] = 2
	cases := map[string]struct {
		r      *Registry
		order  string
		sealed []byte
	}{
		"another order (copied row)": {r, "order-2", sealed},
		"another key":                {other, "order-1", sealed},
		"flipped bit":                {r, "order-1", flipped},
		"unknown version":            {r, "order-1", version},
		"truncated":                  {r, "order-1", sealed[:10]},
		"empty":                      {r, "order-1", nil},
	}
	for name, c := range cases {
		if _, err := c.r.open(c.order, c.sealed); !errors.Is(err, errSealed) {
			t.Errorf("%s: open error %v, want errSealed", name, err)
		}
	}
}

func TestDecodeRequest(t *testing.T) {
	t.Parallel()
	good := map[string]string{
		`{"software_statement":"a.b.c"}`:                       "a.b.c",
		`{"software_statement":"a.b.c","redirect_uris":["x"]}`: "a.b.c",
		` {"software_statement" : "x"} `:                       "x",
	}
	for body, want := range good {
		if got, err := decodeRequest([]byte(body)); err != nil || got != want {
			t.Errorf("decodeRequest(%s) = %q, %v", body, got, err)
		}
	}
	for _, body := range []string{``, `null`, `[]`, `"x"`, `{}`, `{"software_statement":""}`,
		`{"software_statement":null}`, `{"software_statement":1}`, `{"software_statement":"x"`, `{"software_statement":"x"} {}`} {
		if got, err := decodeRequest([]byte(body)); err == nil {
			t.Errorf("decodeRequest(%s) = %q, want an error", body, got)
		}
	}
}

// FuzzDecodeRequest: the DCR body decoder never panics, returns a
// statement or an error, and its errors never echo the input.
func FuzzDecodeRequest(f *testing.F) {
	for _, s := range []string{`{"software_statement":"a.b.c"}`, `{"software_statement":1}`, `{}`, `[`, `{"software_statement":"\u0000"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		stmt, err := decodeRequest(body)
		if (err == nil) == (stmt == "") {
			t.Fatalf("decodeRequest = %q, %v: want a statement or an error", stmt, err)
		}
		if err != nil && len(body) > 3 && bytes.Contains([]byte(err.Error()), body) {
			t.Fatalf("error %q echoes the body", err)
		}
	})
}

// FuzzOpen: opening arbitrary bytes as a sealed secret never panics, and
// only a genuine seal opens.
func FuzzOpen(f *testing.F) {
	r := testRegistry(f, "0123456789abcdef0123456789abcdef")
	genuine := r.seal("o", "s")
	f.Add([]byte{1, 2, 3})
	f.Add(genuine)
	f.Fuzz(func(t *testing.T, sealed []byte) {
		got, err := r.open("o", sealed)
		// Each fuzz worker seals its own genuine copy (random nonces): what
		// opens must be a seal of "s", of its length.
		if err == nil && (len(sealed) != len(genuine) || got != "s") {
			t.Fatalf("open(%x) = %q: a forgery opened", sealed, got)
		}
	})
}
