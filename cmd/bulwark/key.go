package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"
)

func newKeyCmd(g *globals) *cobra.Command {
	rf := &repoFlags{}
	var newPasswordFile string
	cmd := &cobra.Command{
		Use:   "key",
		Short: "Manage the passwords (keys) that open the repository",
		Long: `Key manages the repository's keys. Each key is the repository's master key
wrapped by one password (Argon2id), so several people or machines can have
their own password, and a password can be changed or revoked without
re-encrypting anything.

The new password of add and passwd comes from --new-password-file,
$BULWARK_NEW_PASSWORD_FILE or $BULWARK_NEW_PASSWORD, else it is asked twice
on the terminal.`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			return usageError{errors.New("key needs a subcommand: add, list, remove or passwd")}
		},
	}
	rf.register(cmd)
	cmd.PersistentFlags().StringVar(&newPasswordFile, "new-password-file", "", "read the new password from the first line of this file [$"+envNewPasswordFile+"]")

	cmd.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "List the keys",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			repo, err := rf.open(ctx, g)
			if err != nil {
				return err
			}
			defer repo.Backend().Close()
			keys, err := repo.Keys(ctx)
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), keys)
			}
			t := newTable(cmd.OutOrStdout(), "", "ID", "USER", "HOST", "CREATED")
			for _, k := range keys {
				cur := ""
				if k.Current {
					cur = "*"
				}
				t.row(cur, k.ID[:min(8, len(k.ID))], k.User, k.Host, k.Created.Local().Format("2006-01-02 15:04:05"))
			}
			return t.flush()
		},
	}, &cobra.Command{
		Use:   "add",
		Short: "Add a key with a new password",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			repo, err := rf.open(ctx, g)
			if err != nil {
				return err
			}
			defer repo.Backend().Close()
			pw, err := newPassword(newPasswordFile)
			if err != nil {
				return err
			}
			k, err := repo.AddKey(ctx, pw)
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), k)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "added key %s\n", k.ID)
			return nil
		},
	}, &cobra.Command{
		Use:   "remove ID",
		Short: "Remove a key (not the one in use); ID may be a unique prefix",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			repo, err := rf.open(ctx, g)
			if err != nil {
				return err
			}
			defer repo.Backend().Close()
			if err := repo.RemoveKey(ctx, args[0]); err != nil {
				return fmt.Errorf("remove key %s: %w", args[0], err)
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), map[string]string{"removed": args[0]})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "removed key %s\n", args[0])
			return nil
		},
	}, &cobra.Command{
		Use:   "passwd",
		Short: "Change the password of the key in use",
		Long: `Passwd adds a key with the new password and removes the key the current
password opened, so the old password stops working.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			repo, err := rf.open(ctx, g)
			if err != nil {
				return err
			}
			defer repo.Backend().Close()
			pw, err := newPassword(newPasswordFile)
			if err != nil {
				return err
			}
			if err := repo.ChangePassword(ctx, pw); err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), map[string]string{"result": "password changed"})
			}
			fmt.Fprintln(cmd.OutOrStdout(), "password changed")
			return nil
		},
	})
	return cmd
}
