package main

import (
	"errors"
	"fmt"
	"runtime"
	"strings"

	"github.com/spf13/cobra"
)

// Version is set at build time: -ldflags "-X main.Version=$(git describe --tags --always)".
var Version = "dev"

func newRootCmd() *cobra.Command {
	resetContainers()
	root := &cobra.Command{
		Use:   "socklife",
		Short: "eBPF socket-lifecycle tracer: snapshot, trace and diagnose sockets",
		Long: `socklife shows every socket on the host and follows TCP connections through
their states as they happen, with the right process on both sides.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		// --version, as `socklife version` prints it
		Version: versionLine(),
		// Without a command: the help. With an unknown one: bad input
		// (exit 2) rather than cobra's plain error.
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return badInput("unknown command %q (see socklife --help)", args[0])
			}
			return cmd.Help()
		},
	}
	root.SetVersionTemplate("{{.Version}}\n")
	root.PersistentFlags().StringVar(&runtimeEndpoint, "runtime-endpoint", "",
		"the container runtime's API socket to ask for container and pod names (CRI or Docker API; default: the usual places)")
	root.PersistentFlags().BoolVar(&containersOn, "containers", true,
		"name the container and pod of every socket (false: no cgroup reads, no runtime calls)")
	root.PersistentFlags().DurationVar(&runtimeTimeout, "runtime-timeout", defaultRuntimeTimeout,
		"how long one call to the container runtime may take; one that does not answer is left alone for 30s")
	// a bad endpoint is bad input, said before anything is attached
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		return checkRuntimeEndpoint(cmd.Context())
	}
	// Flag parse errors are bad input: exit 2, like an unknown flag value.
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return usageError{plainFlagError(err)}
	})
	root.AddCommand(
		newSnapshotCmd(),
		newTraceCmd(),
		newRecordCmd(),
		newTopCmd(),
		newCloseWaitCmd(),
		newBacklogCmd(),
		newServeCmd(),
		newInfoCmd(),
		newVersionCmd(),
	)
	for _, c := range root.Commands() {
		argsAreInput(c)
		checkValues(c)
	}
	root.PersistentFlags().VisitAll(wrapValue)
	return root
}

// argsAreInput makes a wrong positional argument a usage error (exit 2),
// like a bad flag; cobra's validators return plain errors.
func argsAreInput(c *cobra.Command) {
	if validate := c.Args; validate != nil {
		c.Args = func(cmd *cobra.Command, args []string) error {
			if err := validate(cmd, args); err != nil {
				return usageError{err}
			}
			return nil
		}
	}
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(cmd.OutOrStdout(), versionLine())
			return err
		},
	}
}

func versionLine() string {
	return fmt.Sprintf("socklife %s (%s, %s/%s)", Version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// plainFlagError drops the Go parser from pflag's messages: `invalid
// argument "70000" for "--port" flag: strconv.ParseUint: parsing "70000":
// value out of range` becomes `... for "--port" flag: value out of range`.
func plainFlagError(err error) error {
	msg := err.Error()
	if strings.HasPrefix(msg, "flag needs an argument: 'o' in -o") || msg == "flag needs an argument: --output" {
		// ss -tno: ss's -o shows timers; here it picks the output format
		return errors.New(msg + ": socklife's -o is the output format (table, json, ndjson); ss's -o, the timers, is in the JSON")
	}
	i := strings.Index(msg, ": strconv.")
	if i < 0 {
		return err
	}
	return errors.New(msg[:i] + msg[strings.LastIndex(msg, ":"):])
}
