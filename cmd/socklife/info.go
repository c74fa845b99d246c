package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// Placeholder until the tracer lands (issue 3).
func newInfoCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "info",
		Short: "Print the kernel, BTF and the hook each feature uses",
		RunE:  func(*cobra.Command, []string) error { return errors.New("info: not built yet") },
	}
}
