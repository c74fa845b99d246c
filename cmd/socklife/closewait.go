package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/socklife/socklife/internal/closewait"
	"github.com/socklife/socklife/internal/render"
	"github.com/socklife/socklife/internal/topview"
)

type closewaitFlags struct {
	watchConfig
	duration  time.Duration
	threshold int
	growth    float64
	output    string
}

func newCloseWaitCmd() *cobra.Command {
	var f closewaitFlags
	cmd := &cobra.Command{
		Use:   "closewait [flags] [FILTER...]",
		Short: "Watch for CLOSE_WAIT build-up; exit 1 if a process crosses a limit (for scripts and alerts)",
		Long: `Watch the live socket table for --for. As soon as a process holds --threshold
CLOSE_WAIT sockets, or gains them faster than --growth per minute (measured
over --window, once a whole --window has been watched), print the offending
processes (count, growth, oldest socket, ports, peers) and exit 1. Exit 0 if
no process crossed a limit during --for.

Only sockets that stay count: one in CLOSE_WAIT for less than --min-age is
an ordinary close in progress (an HTTP/1.0 client sits there between the
server's FIN and its own close()), not a leak. A socket that was already in
CLOSE_WAIT when socklife started counts once it has been watched that long.

The filter flags are every command's: --port is either side (ss's sport or
dport; it used to be the local port: --sport is that), and lists work.`,
		Example: `  socklife closewait --for 5m --threshold 100
  socklife closewait --for 2m --growth 20 -o json`,
		Args: cobra.ArbitraryArgs, // an ss FILTER
		RunE: func(cmd *cobra.Command, args []string) error { f.filter.SetExpr(args); return runCloseWait(cmd, &f) },
	}
	fl := cmd.Flags()
	fl.DurationVar(&f.duration, "for", time.Minute, "how long to watch")
	fl.IntVar(&f.threshold, "threshold", 0, "alert when a process holds this many CLOSE_WAIT sockets")
	fl.Float64Var(&f.growth, "growth", 0, "alert when a process gains this many CLOSE_WAIT sockets per minute")
	fl.DurationVar(&f.interval, "interval", time.Second, "look this often")
	fl.DurationVar(&f.window, "window", time.Minute, "growth is measured over this sliding window, and judged once it has been watched")
	fl.DurationVar(&f.minAge, "min-age", 5*time.Second, "count only CLOSE_WAIT sockets at least this old (0: every one)")
	fl.StringVarP(&f.output, "output", "o", "table", "output format: table or json")
	f.register(fl)
	return cmd
}

// closewaitVerdict is closewait's -o json answer; a limit not set is null.
type closewaitVerdict struct {
	Alert     bool                          `json:"alert"`
	WatchedMs int64                         `json:"watched_ms"`
	MinAgeMs  int64                         `json:"min_age_ms"`
	Threshold *int                          `json:"threshold"`
	Growth    *float64                      `json:"growth_per_min"`
	Offenders []render.CloseWaitProcessJSON `json:"offenders"`
}

// limitsText names the limits that were set: "threshold 10, growth 20/min".
func (v *closewaitVerdict) limitsText() string {
	var parts []string
	if v.Threshold != nil {
		parts = append(parts, fmt.Sprintf("threshold %d", *v.Threshold))
	}
	if v.Growth != nil {
		parts = append(parts, fmt.Sprintf("growth %g/min", *v.Growth))
	}
	return strings.Join(parts, ", ")
}

func runCloseWait(cmd *cobra.Command, f *closewaitFlags) error {
	format, err := render.ParseFormat(f.output, render.Table, render.JSON)
	if err != nil {
		return usageError{err}
	}
	if err := f.check(); err != nil {
		return err
	}
	switch {
	case f.duration <= 0:
		return badInput("--for %v: want a positive duration", f.duration)
	case f.threshold < 0 || f.growth < 0:
		return badInput("--threshold and --growth take positive numbers")
	case f.threshold == 0 && f.growth == 0:
		return badInput("give --threshold N or --growth N (or both): nothing to watch for")
	case f.minAge < 0:
		return badInput("--min-age %v is negative", f.minAge)
	case f.growth > 0 && f.duration < f.window:
		return badInput("--growth is judged over --window (%v), which --for %v ends before: lengthen --for or shorten --window", f.window, f.duration)
	}
	ctx := cmd.Context()
	var start time.Time
	var offenders []closewait.Process
	var watched time.Duration
	limits := closewait.Limits{Count: f.threshold}
	err = watch(ctx, cmd.ErrOrStderr(), f.watchConfig, func(fr *topview.Frame) (bool, error) {
		if start.IsZero() {
			start = fr.At
		}
		watched = fr.At.Sub(start)
		limits.GrowthPerMin = 0
		if watched >= f.window {
			limits.GrowthPerMin = f.growth
		}
		offenders = fr.CloseWait.Offenders(limits)
		return len(offenders) == 0 && watched < f.duration, nil
	}, nil, nil)
	if err != nil {
		return err
	}
	v := closewaitVerdict{Alert: len(offenders) > 0, WatchedMs: watched.Milliseconds(), MinAgeMs: f.minAge.Milliseconds(),
		Offenders: render.ProcessesJSON(offenders)}
	if f.threshold > 0 {
		v.Threshold = &f.threshold
	}
	if f.growth > 0 {
		v.Growth = &f.growth
	}
	if err := writeVerdict(cmd.OutOrStdout(), format, &v, offenders); err != nil {
		return fmt.Errorf("writing output: %w", err)
	}
	if v.Alert {
		return exitStatus(1)
	}
	return nil
}

func writeVerdict(w io.Writer, format render.Format, v *closewaitVerdict, offenders []closewait.Process) error {
	if format == render.JSON {
		return render.WriteJSONList(w, true, 1, func(int) any { return v })
	}
	if !v.Alert {
		_, err := fmt.Fprintf(w, "ok: no process crossed the CLOSE_WAIT limits (%s; sockets at least %v old) in %s\n",
			v.limitsText(), time.Duration(v.MinAgeMs)*time.Millisecond, time.Duration(v.WatchedMs)*time.Millisecond)
		return err
	}
	if _, err := fmt.Fprintf(w, "ALERT: over the CLOSE_WAIT limits (%s; sockets at least %v old):\n",
		v.limitsText(), time.Duration(v.MinAgeMs)*time.Millisecond); err != nil {
		return err
	}
	return render.WriteCloseWait(w, offenders)
}
