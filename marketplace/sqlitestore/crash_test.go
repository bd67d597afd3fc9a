package sqlitestore_test

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/sqlitestore"
)

// The crash tests re-execute this test binary as a child that writes to the
// store, kill it with SIGKILL, and check what the reopened store holds.
const (
	crashEnvPath = "SQLITESTORE_CRASH_PATH"
	crashEnvMode = "SQLITESTORE_CRASH_MODE" // "block" or "loop"
	crashCommits = 20
	crashWorkers = 4 // goroutines committing concurrently in loop mode
)

// writeEvent is one event's effects: the processed mark and the entitlement
// it creates, committed together or not at all.
func writeEvent(ctx context.Context, tx marketplace.Tx, id string) error {
	if _, err := tx.MarkProcessed(ctx, "ev-"+id, time.Now()); err != nil {
		return err
	}
	return tx.PutEntitlement(ctx, marketplace.Entitlement{ID: "ent-" + id, AccountID: "acct", Plan: "plan-" + id, UpdateTime: time.Now()})
}

// TestCrashChild is the child process. It does nothing in a normal run.
func TestCrashChild(t *testing.T) {
	path := os.Getenv(crashEnvPath)
	if path == "" {
		t.Skip("only runs as the child of the crash tests")
	}
	ctx := context.Background()
	s, err := sqlitestore.Open(ctx, path)
	if err != nil {
		fmt.Println("OPEN_ERROR", err)
		os.Exit(3)
	}
	var stdout sync.Mutex
	say := func(a ...any) {
		stdout.Lock()
		fmt.Println(a...)
		stdout.Unlock()
	}
	commit := func(id string) {
		if err := s.InTx(ctx, func(ctx context.Context, tx marketplace.Tx) error { return writeEvent(ctx, tx, id) }); err != nil {
			say("TX_ERROR", err)
			os.Exit(4)
		}
		say("COMMITTED", id)
	}
	switch os.Getenv(crashEnvMode) {
	case "block":
		for i := range crashCommits {
			commit(strconv.Itoa(i))
		}
		_ = s.InTx(ctx, func(ctx context.Context, tx marketplace.Tx) error {
			if err := writeEvent(ctx, tx, "open"); err != nil {
				say("TX_ERROR", err)
				os.Exit(4)
			}
			say("IN_TX")
			select {} // killed here
		})
	case "loop":
		var wg sync.WaitGroup
		for w := range crashWorkers {
			wg.Go(func() {
				for i := 0; ; i++ {
					commit(fmt.Sprintf("p%d-w%d-%d", os.Getpid(), w, i)) // unique across rounds
				}
			})
		}
		wg.Wait()
	}
	os.Exit(5)
}

type crashChild struct {
	cmd   *exec.Cmd
	lines chan string
}

func startCrashChild(t *testing.T, path, mode string) *crashChild {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnvPath+"="+path, crashEnvMode+"="+mode)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	c := &crashChild{cmd: cmd, lines: make(chan string, 1<<16)}
	go func() {
		defer close(c.lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return c
}

// kill sends SIGKILL, waits for the child to die and returns every id it
// reported committed.
func (c *crashChild) kill(t *testing.T) map[string]bool {
	t.Helper()
	require.NoError(t, c.cmd.Process.Kill()) // SIGKILL on Unix
	_ = c.cmd.Wait()
	committed := map[string]bool{}
	for line := range c.lines {
		if id, ok := strings.CutPrefix(line, "COMMITTED "); ok {
			committed[id] = true
		}
		require.False(t, strings.HasSuffix(line, "_ERROR"), "child failed: %s", line)
	}
	return committed
}

// storeContents returns the ids of processed events and of entitlements in
// the store at path, after checking the file's integrity.
func storeContents(t *testing.T, path string) (events, ents map[string]bool) {
	t.Helper()
	s, err := sqlitestore.Open(context.Background(), path)
	require.NoError(t, err, "reopen after crash")
	events, ents = map[string]bool{}, map[string]bool{}
	require.NoError(t, s.InTx(context.Background(), func(ctx context.Context, tx marketplace.Tx) error {
		all, err := tx.ListEntitlements(ctx, marketplace.EntitlementQuery{})
		if err != nil {
			return err
		}
		for _, e := range all {
			id := strings.TrimPrefix(e.ID, "ent-")
			ents[id] = true
			done, err := tx.IsProcessed(ctx, "ev-"+id)
			if err != nil {
				return err
			}
			events[id] = done
			if e.Plan != "plan-"+id {
				return fmt.Errorf("entitlement %s has plan %q", e.ID, e.Plan)
			}
		}
		return nil
	}))
	require.NoError(t, s.Close())

	db, err := sql.Open("sqlite", path)
	require.NoError(t, err)
	defer db.Close()
	var check string
	require.NoError(t, db.QueryRow("PRAGMA integrity_check").Scan(&check))
	require.Equal(t, "ok", check)
	var processed int
	require.NoError(t, db.QueryRow("SELECT count(*) FROM processed_events").Scan(&processed))
	require.Equal(t, len(ents), processed, "processed events without their entitlement")
	return events, ents
}

func TestCrashKilledInTransaction(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "store.db")
	child := startCrashChild(t, path, "block")
	var reported []string
	for line := range child.lines {
		reported = append(reported, line)
		if line == "IN_TX" {
			break
		}
	}
	require.Equal(t, "IN_TX", reported[len(reported)-1], "child output: %q", reported)
	committed := child.kill(t)
	for _, line := range reported {
		if id, ok := strings.CutPrefix(line, "COMMITTED "); ok {
			committed[id] = true
		}
	}
	require.Len(t, committed, crashCommits)

	events, ents := storeContents(t, path)
	assert.Equal(t, committed, ents, "entitlements after the crash: exactly the committed ones")
	for id := range committed {
		assert.True(t, events[id], "processed mark of committed event %s", id)
	}
	assert.False(t, ents["open"], "entitlement of the open transaction survived")
	assert.False(t, events["open"], "processed mark of the open transaction survived")
}

func TestCrashKilledAtRandomPoints(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "store.db")
	total := map[string]bool{}
	for round := range 8 {
		child := startCrashChild(t, path, "loop")
		// Wait for the child to be committing, then kill it at a random
		// point of its commit loop.
		first, ok := <-child.lines
		require.True(t, ok, "child exited early")
		require.True(t, strings.HasPrefix(first, "COMMITTED "), "child said %q", first)
		time.Sleep(time.Duration(rand.IntN(60_000)) * time.Microsecond)
		committed := child.kill(t)
		committed[strings.TrimPrefix(first, "COMMITTED ")] = true
		for id := range committed {
			total[id] = true
		}

		events, ents := storeContents(t, path)
		for id := range total {
			require.True(t, ents[id], "round %d: entitlement of reported commit %s is missing", round, id)
		}
		for id := range ents {
			require.True(t, events[id], "round %d: entitlement %s without its processed mark", round, id)
		}
		// At most the batches in flight can have committed without being
		// reported: one per worker.
		assert.LessOrEqual(t, len(ents)-len(total), crashWorkers*sqlitestore.DefaultMaxBatch, "round %d", round)
		t.Logf("round %d: %d reported, %d in the store", round, len(total), len(ents))
		// Unreported commits are real commits; count them for the next round.
		for id := range ents {
			total[id] = true
		}
	}
}
