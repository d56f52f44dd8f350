// Command bulwark keeps machine-learning models serving through failures and
// brings a model deployment back after a disaster. Each subcommand is in its
// own file; domain code lives in internal/.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/bulwark-ml/bulwark/internal/archiver"
	"github.com/bulwark-ml/bulwark/internal/backend"
	"github.com/bulwark-ml/bulwark/internal/control"
	"github.com/bulwark-ml/bulwark/internal/modelstore"
	"github.com/bulwark-ml/bulwark/internal/repository"
	"github.com/bulwark-ml/bulwark/internal/restorer"
	"github.com/bulwark-ml/bulwark/internal/state"
	"github.com/bulwark-ml/bulwark/internal/version"
)

// Exit codes, documented in docs/cli.md.
const (
	exitOK       = 0
	exitError    = 1
	exitUsage    = 2
	exitNotFound = 3
	exitInvalid  = 4
	exitExists   = 5 // also a stale resource version (conflict)
	// exitWrongPassword: no key of the backup repository opens with the
	// password given.
	exitWrongPassword = 6
	// exitLocked: the repository is locked by another process (prune,
	// forget), or the site is running and the command needs it stopped;
	// retrying later may succeed.
	exitLocked = 7
	// exitDrillFailed: bulwark drill ran and missed an objective.
	exitDrillFailed = 8
)

// globals are the flags every subcommand shares.
type globals struct {
	site      string
	logLevel  string
	logFormat string
	json      bool
	log       *slog.Logger // built from the flags before any command runs
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := newRootCmd().ExecuteContext(ctx)
	os.Exit(exitCode(err))
}

func newRootCmd() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:           "bulwark",
		Short:         "Keep ML models serving through failures; bring deployments back after disasters",
		Version:       version.String(),
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(*cobra.Command, []string) error {
			log, err := g.logger()
			g.log = log
			return err
		},
	}
	pf := root.PersistentFlags()
	pf.StringVar(&g.site, "site", envOr("BULWARK_SITE", "bulwark-site"), "site directory (model store, state, configuration) [$BULWARK_SITE]")
	pf.StringVar(&g.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	pf.StringVar(&g.logFormat, "log-format", "text", "log format: text or json")
	pf.BoolVar(&g.json, "json", false, "print machine-readable JSON instead of tables")
	root.AddCommand(
		newVersionCmd(),
		newModelCmd(g),
		newSampleCmd(g),
		newNodeCmd(g),
		newUpCmd(g),
		newGatewayCmd(g),
		newStatusCmd(g),
		newControllerCmd(g), newApplyCmd(g), newGetCmd(g), newDescribeCmd(g), newRolloutCmd(g), newRollbackCmd(g), newDeleteCmd(g),
		newPlanCmd(g),
		newDrillCmd(g),
		newRepoCmd(g), newBackupCmd(g), newSnapshotsCmd(g), newDiffCmd(g), newRestoreCmd(g), newVerifyCmd(g), newForgetCmd(g), newPruneCmd(g), newKeyCmd(g),
		newCopyCmd(g),
	)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	markArgErrorsAsUsage(root)
	return root
}

// markArgErrorsAsUsage makes every command's argument-count errors usage
// errors, so they exit 2 like a bad flag does.
func markArgErrorsAsUsage(c *cobra.Command) {
	if check := c.Args; check != nil {
		c.Args = func(cmd *cobra.Command, args []string) error {
			if err := check(cmd, args); err != nil {
				return usageError{err}
			}
			return nil
		}
	}
	for _, sub := range c.Commands() {
		markArgErrorsAsUsage(sub)
	}
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// logger builds the process logger from the global flags.
func (g *globals) logger() (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(g.logLevel)); err != nil {
		return nil, usageError{fmt.Errorf("--log-level: %w", err)}
	}
	opts := &slog.HandlerOptions{Level: level}
	switch strings.ToLower(g.logFormat) {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, usageError{fmt.Errorf("--log-format must be text or json, not %q", g.logFormat)}
}

// usageError marks a mistake in how the command was called.
type usageError struct{ error }

func (u usageError) Unwrap() error { return u.error }

// exitCode maps an error to the process exit status, in this one place, and
// prints it.
func exitCode(err error) int {
	if err == nil {
		return exitOK
	}
	fmt.Fprintln(os.Stderr, "bulwark:", err)
	var ue usageError
	var ce childExitError
	switch {
	case errors.As(err, &ce):
		return ce.code
	case errors.As(err, &ue), strings.HasPrefix(err.Error(), "unknown command"):
		return exitUsage
	case errors.Is(err, modelstore.ErrNotFound):
		return exitNotFound
	case errors.Is(err, modelstore.ErrInvalid), errors.Is(err, modelstore.ErrChecksum), errors.Is(err, errInvalidConfig):
		return exitInvalid
	case errors.Is(err, modelstore.ErrExists):
		return exitExists
	case errors.Is(err, control.ErrNotFound):
		return exitNotFound
	case errors.Is(err, control.ErrInvalid), errors.Is(err, state.ErrCorrupt):
		return exitInvalid
	case errors.Is(err, control.ErrConflict):
		return exitExists
	case errors.Is(err, errDrillFailed):
		return exitDrillFailed
	}
	return backupExitCode(err)
}

// backupExitCode maps the backup repository's errors (docs/backup.md).
func backupExitCode(err error) int {
	switch {
	case errors.Is(err, repository.ErrWrongPassword):
		return exitWrongPassword
	case errors.Is(err, repository.ErrLocked), errors.Is(err, archiver.ErrSiteRunning):
		return exitLocked
	case errors.Is(err, repository.ErrAmbiguous):
		return exitUsage
	case errors.Is(err, repository.ErrCorrupt), errors.Is(err, repository.ErrUnsupportedFormat), errors.Is(err, restorer.ErrIncomplete):
		return exitInvalid
	case errors.Is(err, repository.ErrNotFound), errors.Is(err, backend.ErrNotFound):
		return exitNotFound
	case errors.Is(err, repository.ErrExists), errors.Is(err, backend.ErrExists):
		return exitExists
	}
	return exitError
}
