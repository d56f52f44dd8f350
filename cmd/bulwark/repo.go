package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/bulwark-ml/bulwark/internal/repository"
)

func newRepoCmd(g *globals) *cobra.Command {
	rf := &repoFlags{}
	cmd := &cobra.Command{
		Use:   "repo",
		Short: "Create a backup repository",
		Long: `Repo manages backup repositories. A repository holds snapshots of sites:
content-defined chunks, compressed, encrypted under a random master key
that passwords unlock (see bulwark key), packed into pack files with an
index. docs/backup.md explains backups; docs/repository-format.md the
format.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageError{fmt.Errorf("repo needs a subcommand: init")}
		},
	}
	rf.register(cmd)
	cmd.AddCommand(newRepoInitCmd(g, rf))
	return cmd
}

func newRepoInitCmd(g *globals, rf *repoFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "init",
		Short: "Create a new, empty repository",
		Long: `Init creates a repository at --repo (or $BULWARK_REPOSITORY): a directory
that must be missing or empty. The password (--password-file,
$BULWARK_PASSWORD_FILE, $BULWARK_PASSWORD, or asked twice on the terminal)
wraps the repository's master key; without it the repository cannot be
read, so keep it safe, and add a second key with bulwark key add.`,
		Example: "  BULWARK_REPOSITORY=/backups/site BULWARK_PASSWORD_FILE=~/.bulwark-pw bulwark repo init",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			loc, err := rf.location()
			if err != nil {
				return err
			}
			pw, err := rf.password("enter a password for the new repository "+loc+": ", true)
			if err != nil {
				return err
			}
			be, err := openBackend(loc, true, rf.s3)
			if err != nil {
				return fmt.Errorf("create repository %s: %w", loc, err)
			}
			repo, err := repository.InitWithOptions(ctx, be, pw, repoOptions(g))
			if err != nil {
				be.Close()
				return fmt.Errorf("create repository %s: %w", loc, err)
			}
			defer repo.Backend().Close()
			cfg := repo.Config()
			if g.json {
				return printJSON(cmd.OutOrStdout(), map[string]any{"id": cfg.ID, "location": loc, "version": cfg.Version})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "created repository %s at %s (format version %d)\n", cfg.ID, loc, cfg.Version)
			fmt.Fprintln(cmd.OutOrStdout(), "Keep the password safe: without it the repository cannot be read.")
			return nil
		},
	}
}
