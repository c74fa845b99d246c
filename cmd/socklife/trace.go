package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// Placeholder until the tracer lands (issue 3).
func newTraceCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "trace",
		Short: "Stream TCP state transitions as they happen",
		RunE:  func(*cobra.Command, []string) error { return errors.New("trace: not built yet") },
	}
}
