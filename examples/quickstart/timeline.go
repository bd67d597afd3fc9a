package main

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// The timeline.

type timeline struct {
	out io.Writer
	now func() time.Time

	mu        sync.Mutex
	steps     int
	callbacks map[string]int
}

func (t *timeline) printf(format string, args ...any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	fmt.Fprintf(t.out, "%s  "+format+"\n", append([]any{t.now().Format("15:04:05")}, args...)...)
}

// step announces what the customer, Google or an operator does.
func (t *timeline) step(name, format string, args ...any) {
	t.printf("%-4s %-24s %s", "", strings.ToUpper(name), fmt.Sprintf(format, args...))
}

// done records that a step's outcome was checked.
func (t *timeline) done(format string, args ...any) {
	t.mu.Lock()
	t.steps++
	n := t.steps
	t.mu.Unlock()
	t.printf("%-4s %s", fmt.Sprintf("%2d ✓", n), fmt.Sprintf(format, args...))
}

// callback records what the application saw.
func (t *timeline) callback(name, format string, args ...any) {
	t.mu.Lock()
	t.callbacks[name]++
	t.mu.Unlock()
	t.printf("%-4s   ↳ %-32s %s", "", name, fmt.Sprintf(format, args...))
}

// note records what the application did outside a callback.
func (t *timeline) note(name, format string, args ...any) {
	t.printf("%-4s   ↳ %-32s %s", "", name, fmt.Sprintf(format, args...))
}

func (t *timeline) callbackCount(name string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.callbacks[name]
}
