package marketplace

import "testing"

func TestOriginEndpoint(t *testing.T) {
	for basePath, want := range map[string]string{
		"https://cloudcommerceprocurement.googleapis.com/":      OriginGoogle,
		"https://cloudcommerceprocurement.mtls.googleapis.com/": OriginGoogle,
		"https://cloudcommerceprocurement-psc.p.googleapis.com": OriginGoogle,
		"https://CloudCommerceProcurement.GoogleAPIs.com/":      OriginGoogle,
		"http://127.0.0.1:4242/":                                "http://127.0.0.1:4242",
		"http://127.0.0.1:4243":                                 "http://127.0.0.1:4243",
		"https://googleapis.com.evil.example/":                  "https://googleapis.com.evil.example",
		"https://notgoogleapis.com/":                            "https://notgoogleapis.com",
	} {
		if got := originEndpoint(basePath); got != want {
			t.Errorf("originEndpoint(%q) = %q, want %q", basePath, got, want)
		}
	}
}
