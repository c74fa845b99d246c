package main

import (
	"errors"

	"github.com/spf13/cobra"
)

func newSnapshotCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "snapshot",
		Aliases: []string{"ls"},
		Short:   "List every socket now, with its owner (like ss -tulpnx)",
		RunE:    func(*cobra.Command, []string) error { return errors.New("snapshot: not built yet") },
	}
}
