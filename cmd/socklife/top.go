package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/socklife/socklife/internal/render"
	"github.com/socklife/socklife/internal/topview"
)

type topFlags struct {
	watchConfig
	output     string
	iterations int
	rows       int
}

func newTopCmd() *cobra.Command {
	var f topFlags
	cmd := &cobra.Command{
		Use:   "top [flags] [FILTER...]",
		Short: "Live socket table: CLOSE_WAIT build-up first, then listeners and their accept queues",
		Long: `Show the live socket table, refreshed every --interval: counts per state with
their change, events/s and lost events, then the processes holding CLOSE_WAIT
sockets (count, growth per minute over --window, age of the oldest, ports and
peers), then the listeners with accept-queue length/backlog and accepts/s.

A socket that predates socklife has an unknown start: its age is shown as a
lower bound (">=12s": it was already in CLOSE_WAIT when socklife found it).

On a terminal: q quits, space pauses, s cycles the sort (count, growth,
oldest), f filters (type a pid, :port or a command name, then Enter; an
empty filter shows all). Without a terminal it prints the table every
interval; -o json prints one JSON object per interval.

The filter flags are every command's: --port is either side (ss's sport or
dport; it used to be the local port: --sport is that), lists work, and
--pid, --port and --comm combine. What they leave out is not traced at all:
the state counts follow them too.`,
		Example: `  socklife top
  socklife top --interval 5s --port 8080
  socklife top -o json -n 3 | jq '.close_wait.processes[0]'`,
		Args: cobra.ArbitraryArgs, // an ss FILTER
		RunE: func(cmd *cobra.Command, args []string) error { f.filter.SetExpr(args); return runTop(cmd, &f) },
	}
	fl := cmd.Flags()
	fl.DurationVar(&f.interval, "interval", 2*time.Second, "refresh every this long")
	fl.DurationVar(&f.window, "window", time.Minute, "CLOSE_WAIT growth is measured over this sliding window")
	f.listenerHolders = true
	fl.DurationVar(&f.minAge, "min-age", 0, "count only CLOSE_WAIT sockets at least this old (closewait's --min-age; 0: every one)")
	fl.StringVarP(&f.output, "output", "o", "table", "output format: table or json (one object per interval)")
	fl.IntVarP(&f.iterations, "iterations", "n", 0, "stop after this many intervals (0: until Ctrl-C)")
	fl.IntVar(&f.rows, "rows", 20, "rows per section at most (0: all)")
	f.register(fl)
	return cmd
}

func runTop(cmd *cobra.Command, f *topFlags) error {
	format, err := render.ParseFormat(f.output, render.Table, render.JSON)
	if err != nil {
		return usageError{err}
	}
	if err := f.check(); err != nil {
		return err
	}
	if f.minAge < 0 {
		return badInput("--min-age %v is negative", f.minAge)
	}
	if f.iterations < 0 || f.rows < 0 {
		return badInput("-n and --rows take a count, not %d", min(f.iterations, f.rows))
	}
	names, err := newNames(f.flt)
	if err != nil {
		return err
	}
	view := render.View{Rows: f.rows, By: f.group, Names: names}
	out := cmd.OutOrStdout()
	scr := &topScreen{out: out, json: format == render.JSON, view: view,
		term: format == render.Table && isTerminal(out) && isTerminal(os.Stdin)}
	var keys <-chan byte
	if scr.term {
		restore, err := rawInput(os.Stdin)
		if err == nil {
			defer restore()
			keys = readKeys(os.Stdin)
		}
	}
	onFrame := func(fr *topview.Frame) (bool, error) {
		if err := scr.frame(fr); err != nil {
			return false, err
		}
		return f.iterations == 0 || scr.frames < f.iterations, nil
	}
	err = watch(cmd.Context(), cmd.ErrOrStderr(), f.watchConfig, onFrame, keys, scr.key)
	if isBrokenPipe(err) {
		return nil
	}
	return err
}

// topScreen is what top shows: the last frame, drawn for the view the
// keys shape, in place on a terminal and one after another elsewhere.
type topScreen struct {
	out    io.Writer
	term   bool // a terminal: clear, fit, footer, keys
	json   bool
	view   render.View
	last   *topview.Frame
	frames int
	// paused: the frame it stopped on, drawn once more marked PAUSED
	paused, pausedDrawn bool
	typing              []byte // the filter being typed after f, nil when not typing
}

// frame shows a new frame.
func (s *topScreen) frame(fr *topview.Frame) error {
	s.frames++
	s.last = fr
	return s.draw()
}

// key applies one key press and redraws; false is a quit.
func (s *topScreen) key(k byte) (bool, error) {
	if handleKey(k, &s.view, &s.paused, &s.typing) {
		return false, nil
	}
	if !s.paused {
		s.pausedDrawn = false
	}
	return true, s.draw()
}

func (s *topScreen) draw() error {
	if s.last == nil || s.paused && s.pausedDrawn {
		return nil
	}
	s.view.Paused, s.pausedDrawn = s.paused, s.paused
	if s.term {
		// fit the screen as it is now: the header and CLOSE_WAIT first
		s.view.Height, s.view.Width = 0, 0
		if rows, cols, ok := windowSize(s.out); ok {
			s.view.Height, s.view.Width = rows-topFooterLines, cols
		}
	}
	if s.json {
		return render.WriteJSONList(s.out, true, 1, func(int) any { return render.FrameToJSON(s.last, s.view) })
	}
	var b bytes.Buffer
	if s.term {
		b.WriteString("\x1b[H\x1b[2J") // home, clear
	} else if s.frames > 1 {
		b.WriteString("\n")
	}
	if err := render.WriteTop(&b, s.last, s.view); err != nil {
		return err
	}
	if s.term {
		// topFooterLines: a blank line and this one
		fmt.Fprintf(&b, "\nq quit  space pause  s sort (%s)  f filter", s.view.Sort)
		if s.view.Filter != "" {
			fmt.Fprintf(&b, " [%s]", s.view.Filter)
		}
		if s.typing != nil {
			fmt.Fprintf(&b, "  filter: %s_", s.typing)
		}
		b.WriteString("\n")
		// Raw mode turns off output post-processing: \n must carry \r.
		b = *bytes.NewBuffer(bytes.ReplaceAll(b.Bytes(), []byte("\n"), []byte("\r\n")))
	}
	_, err := s.out.Write(b.Bytes())
	return err
}

// topFooterLines are the lines top adds under the frame on a terminal.
const topFooterLines = 2

// handleKey applies one key press to the view; it reports a quit.
func handleKey(k byte, view *render.View, paused *bool, typing *[]byte) bool {
	if *typing != nil {
		switch k {
		case '\r', '\n':
			view.Filter = string(*typing)
			*typing = nil
		case 0x1b: // Esc: keep the old filter
			*typing = nil
		case 0x7f, 0x08:
			if n := len(*typing); n > 0 {
				*typing = (*typing)[:n-1]
			}
		default:
			if k >= ' ' && k < 0x7f {
				*typing = append(*typing, k)
			}
		}
		return false
	}
	switch k {
	case 'q', 3: // q or Ctrl-C (raw mode delivers it as a byte)
		return true
	case ' ':
		*paused = !*paused
	case 's':
		view.Sort = (view.Sort + 1) % 3
	case 'f':
		*typing = []byte{}
	}
	return false
}
