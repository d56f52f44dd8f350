package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/bulwark-ml/bulwark/internal/atomicfile"
	"github.com/bulwark-ml/bulwark/internal/sample"
)

func newSampleCmd(g *globals) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "sample",
		Short: "Train the sample iris classifier in Go and write it as an ONNX file",
		Long: `Sample trains a small classifier (4 features, 3 classes) on a generated
iris-like data set and writes it as a standard ONNX file that Bulwark and
onnxruntime both load. bulwark up uses the same model.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			res := sample.Build()
			if err := atomicfile.WriteFile(out, res.ONNX, 0o644); err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), map[string]any{"path": out, "bytes": len(res.ONNX), "accuracy": res.Accuracy})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s (%d bytes, held-out accuracy %.1f%%)\n", out, len(res.ONNX), 100*res.Accuracy)
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "out", "o", "iris.onnx", "file to write")
	return cmd
}
