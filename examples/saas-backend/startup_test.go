package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace/doctor"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gcpmarketplace/gcpmarketplace/examples/internal/exampletest"
)

// withoutCredentials points Application Default Credentials at a file that
// does not exist, in an empty working directory, and returns a complete
// configuration for Google. Not parallel: it changes the process's
// environment and directory.
func withoutCredentials(t *testing.T) (dir string, env map[string]string) {
	t.Helper()
	dir = t.TempDir()
	t.Chdir(dir)
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", filepath.Join(t.TempDir(), "no-such-key.json"))
	return dir, map[string]string{envProvider: "acme", envProject: "vendor-project", envSubscription: "marketplace",
		envService: "acme.endpoints.vendor-project.cloud.goog", envSessionKey: "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="}
}

// A start against Google without credentials used to create and migrate
// ./marketplace.db before the first client failed. The clients are built
// first now: nothing is written.
func TestStartWithoutCredentialsCreatesNothing(t *testing.T) {
	dir, env := withoutCredentials(t)
	_, _, err := runServe(t, []string{"-listen", "127.0.0.1:0"}, env)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no-such-key.json")
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Empty(t, entries, "the failed start wrote nothing in the working directory")
}

// -doctor used to stop at the first client it could not build (Pub/Sub's)
// and print only that error. It now runs every check and reports each
// failure.
func TestDoctorWithoutCredentialsReportsEveryCheck(t *testing.T) {
	dir, env := withoutCredentials(t)
	var out exampletest.SyncBuffer
	report := runDoctorReport(t, env, &out)
	for _, check := range []string{doctor.CheckEntitlements, doctor.CheckAccounts, doctor.CheckSubscription,
		doctor.CheckServiceControl} {
		assert.Contains(t, report, "[FAIL] "+check+": cannot create a")
	}
	assert.Contains(t, report, "[ok  ] "+doctor.CheckSignupAudience)
	assert.Contains(t, report, "4 of 5 checks failed")
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Empty(t, entries, "-doctor wrote nothing")
}

// runDoctorReport runs -doctor with env and returns what it printed.
func runDoctorReport(t *testing.T, env map[string]string, out *exampletest.SyncBuffer) string {
	t.Helper()
	err := serve(t.Context(), []string{"-doctor"}, func(k string) string { return env[k] }, out, nil)
	require.ErrorIs(t, err, errDoctorFailed, out.String())
	return out.String()
}
