// Package cmdmain is the main function the example commands share.
package cmdmain

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Run calls run with the command-line arguments and standard output, with a
// context cancelled on SIGINT or SIGTERM, and exits when it fails: with
// status 2 after a usage error (flag.ErrHelp), 1 otherwise, the error
// printed to standard error after the command's name.
func Run(name string, run func(ctx context.Context, args []string, out io.Writer) error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err == nil {
		return
	}
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(2)
	}
	fmt.Fprintln(os.Stderr, name+":", err)
	os.Exit(1)
}

// Serve runs an example's serve function as the command (see Run), with the
// process's environment and no ready hook (tests use it).
func Serve[T any](name string, serve func(ctx context.Context, args []string, getenv func(string) string, out io.Writer, ready func(T)) error) {
	Run(name, func(ctx context.Context, args []string, out io.Writer) error {
		return serve(ctx, args, os.Getenv, out, nil)
	})
}
