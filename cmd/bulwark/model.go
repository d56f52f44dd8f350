package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/bulwark-ml/bulwark/internal/modelstore"
	"github.com/bulwark-ml/bulwark/internal/tensor"
)

func newModelCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "model",
		Short: "Manage the model store: push, list and show model versions",
	}
	cmd.AddCommand(newModelPushCmd(g), newModelListCmd(g), newModelShowCmd(g))
	return cmd
}

func newModelPushCmd(g *globals) *cobra.Command {
	var version string
	cmd := &cobra.Command{
		Use:   "push NAME FILE",
		Short: "Validate a model file and store it as a new immutable version",
		Long: `Push validates FILE (it must load in the runtime that will serve it),
then copies it into the site's model store with its SHA-256, atomically: an
interrupted push leaves no partial version. Without --version the next
integer version is used.`,
		Example: "  bulwark model push iris ./iris.onnx\n  bulwark model push resnet ./resnet.onnx --version 2024-06-01",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			store, err := modelstore.Open(g.site)
			if err != nil {
				return err
			}
			m, err := store.Push(cmd.Context(), args[0], args[1], inspectModel, modelstore.PushOptions{Version: version})
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), m)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "pushed %s (%s, %s, sha256 %.16s…)\n", m.Ref(), m.Format, humanBytes(m.Size()), m.Files[0].SHA256)
			return nil
		},
	}
	cmd.Flags().StringVar(&version, "version", "", "version to create (default: next integer)")
	return cmd
}

// modelSummary is one row of `model list`.
type modelSummary struct {
	Name     string   `json:"name"`
	Versions []string `json:"versions"`
	Latest   string   `json:"latest"`
	Format   string   `json:"format"`
	Size     int64    `json:"size_bytes"`
}

func newModelListCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the models in the store",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			store, err := modelstore.Open(g.site)
			if err != nil {
				return err
			}
			names, err := store.Names()
			if err != nil {
				return err
			}
			rows := []modelSummary{}
			for _, n := range names {
				vs, err := store.Versions(n)
				if err != nil {
					continue
				}
				s := modelSummary{Name: n, Versions: vs, Latest: vs[len(vs)-1]}
				if m, err := store.Manifest(n, s.Latest); err == nil {
					s.Format, s.Size = m.Format, m.Size()
				}
				rows = append(rows, s)
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), rows)
			}
			if len(rows) == 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "no models in %s (push one with: bulwark model push NAME FILE)\n", store.Dir())
				return nil
			}
			t := newTable(cmd.OutOrStdout(), "NAME", "VERSIONS", "LATEST", "FORMAT", "SIZE")
			for _, r := range rows {
				t.row(r.Name, strings.Join(r.Versions, ","), r.Latest, r.Format, humanBytes(r.Size))
			}
			return t.flush()
		},
	}
}

func newModelShowCmd(g *globals) *cobra.Command {
	var verify bool
	cmd := &cobra.Command{
		Use:   "show NAME[:VERSION]",
		Short: "Show a model version's manifest (latest version by default)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			store, err := modelstore.Open(g.site)
			if err != nil {
				return err
			}
			name, version, err := modelstore.ParseRef(args[0])
			if err != nil {
				return usageError{err}
			}
			if version == "" {
				if version, err = store.Latest(name); err != nil {
					return err
				}
			}
			var m *modelstore.Manifest
			if verify {
				m, err = store.Verify(name, version)
			} else {
				m, err = store.Manifest(name, version)
			}
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), m)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "Model:    %s\nVersion:  %s\nFormat:   %s\nCreated:  %s\nSource:   %s\n", m.Name, m.Version, m.Format, m.Created.Format("2006-01-02 15:04:05Z07:00"), m.Source)
			if verify {
				fmt.Fprintln(w, "Checksums: verified")
			}
			fmt.Fprintln(w, "\nInputs:")
			t := newTable(w, "  NAME", "DATATYPE", "SHAPE")
			for _, s := range m.Inputs {
				t.row("  "+s.Name, s.Datatype, tensor.ShapeString(s.Shape))
			}
			t.flush()
			fmt.Fprintln(w, "\nOutputs:")
			t = newTable(w, "  NAME", "DATATYPE", "SHAPE")
			for _, s := range m.Outputs {
				t.row("  "+s.Name, s.Datatype, tensor.ShapeString(s.Shape))
			}
			t.flush()
			fmt.Fprintln(w, "\nFiles:")
			t = newTable(w, "  PATH", "SIZE", "SHA256")
			for _, f := range m.Files {
				t.row("  "+f.Path, humanBytes(f.Size), f.SHA256)
			}
			return t.flush()
		},
	}
	cmd.Flags().BoolVar(&verify, "verify", false, "also verify the files' checksums")
	return cmd
}
