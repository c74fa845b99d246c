package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/socklife/socklife/internal/output"
	"github.com/socklife/socklife/internal/topview"
)

type topFlags struct {
	watchConfig
	output     string
	iterations int
	pid        uint32
	port       uint16
	comm       string
	rows       int
}

func newTopCmd() *cobra.Command {
	var f topFlags
	cmd := &cobra.Command{
		Use:   "top",
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
interval; -o json prints one JSON object per interval.`,
		Example: `  socklife top
  socklife top --interval 5s --port 8080
  socklife top -o json -n 3 | jq '.close_wait.processes[0]'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runTop(cmd, &f) },
	}
	fl := cmd.Flags()
	fl.DurationVar(&f.interval, "interval", 2*time.Second, "refresh every this long")
	fl.DurationVar(&f.window, "window", time.Minute, "CLOSE_WAIT growth is measured over this sliding window")
	f.listenerHolders = true
	fl.DurationVar(&f.minAge, "min-age", 0, "count only CLOSE_WAIT sockets at least this old (closewait's --min-age; 0: every one)")
	fl.StringVarP(&f.output, "output", "o", "table", "output format: table or json (one object per interval)")
	fl.IntVarP(&f.iterations, "iterations", "n", 0, "stop after this many intervals (0: until Ctrl-C)")
	fl.Uint32Var(&f.pid, "pid", 0, "show only this process")
	fl.Uint16Var(&f.port, "port", 0, "show only this local port")
	fl.StringVar(&f.comm, "comm", "", "show only processes with this command name")
	fl.IntVar(&f.rows, "rows", 20, "rows per section at most (0: all)")
	f.register(fl)
	return cmd
}

// initialFilter turns --pid, --port or --comm into the filter top's f key edits.
func (f *topFlags) initialFilter() (string, error) {
	var filters []string
	if f.pid != 0 {
		filters = append(filters, strconv.FormatUint(uint64(f.pid), 10))
	}
	if f.port != 0 {
		filters = append(filters, ":"+strconv.FormatUint(uint64(f.port), 10))
	}
	if f.comm != "" {
		filters = append(filters, f.comm)
	}
	if len(filters) > 1 {
		return "", badInput("--pid, --port and --comm: give one of them")
	}
	if len(filters) == 0 {
		return "", nil
	}
	return filters[0], nil
}

func runTop(cmd *cobra.Command, f *topFlags) error {
	format, err := output.ParseFormat(f.output, output.Table, output.JSON)
	if err != nil {
		return usageError{err}
	}
	if err := f.check(); err != nil {
		return err
	}
	if err := refuseZero(cmd.Flags(), "pid", "port"); err != nil {
		return err
	}
	if f.minAge < 0 {
		return badInput("--min-age %v is negative", f.minAge)
	}
	if f.iterations < 0 || f.rows < 0 {
		return badInput("-n and --rows take a count, not %d", min(f.iterations, f.rows))
	}
	filter, err := f.initialFilter()
	if err != nil {
		return err
	}
	view := topview.View{Filter: filter, Rows: f.rows}
	if f.pid != 0 || f.port != 0 || f.comm != "" {
		cw := closewaitFlags{pid: f.pid, port: f.port, comm: f.comm}
		f.keep = cw.keepFn() // json frames count only what the filter shows, too
	}
	out := cmd.OutOrStdout()
	term := format == output.Table && isTerminal(out) && isTerminal(os.Stdin)
	var keys <-chan byte
	if term {
		restore, err := rawInput(os.Stdin)
		if err == nil {
			defer restore()
			keys = readKeys(os.Stdin)
		}
	}
	ctx := cmd.Context()
	frames := 0
	paused, pausedDrawn := false, false
	var last *topview.Frame
	var typing []byte // the filter being typed after f, nil when not typing
	draw := func() error {
		// paused: the frame it stopped on, drawn once more marked PAUSED
		if last == nil || paused && pausedDrawn {
			return nil
		}
		view.Paused, pausedDrawn = paused, paused
		if term {
			// fit the screen as it is now: the header and CLOSE_WAIT first
			view.Height, view.Width = 0, 0
			if ws, err := unix.IoctlGetWinsize(int(out.(*os.File).Fd()), unix.TIOCGWINSZ); err == nil && ws.Row > 0 {
				view.Height, view.Width = int(ws.Row)-topFooterLines, int(ws.Col)
			}
		}
		if format == output.JSON {
			return output.WriteJSONList(out, true, 1, func(int) any { return topview.ToJSON(last, view) })
		}
		var b bytes.Buffer
		if term {
			b.WriteString("\x1b[H\x1b[2J") // home, clear
		} else if frames > 1 {
			b.WriteString("\n")
		}
		if err := topview.WriteText(&b, last, view); err != nil {
			return err
		}
		if term {
			// topFooterLines: a blank line and this one
			fmt.Fprintf(&b, "\nq quit  space pause  s sort (%s)  f filter", view.Sort)
			if view.Filter != "" {
				fmt.Fprintf(&b, " [%s]", view.Filter)
			}
			if typing != nil {
				fmt.Fprintf(&b, "  filter: %s_", typing)
			}
			b.WriteString("\n")
			// Raw mode turns off output post-processing: \n must carry \r.
			b = *bytes.NewBuffer(bytes.ReplaceAll(b.Bytes(), []byte("\n"), []byte("\r\n")))
		}
		_, err := out.Write(b.Bytes())
		return err
	}
	onFrame := func(fr *topview.Frame) (bool, error) {
		frames++
		last = fr
		if err := draw(); err != nil {
			return false, err
		}
		return f.iterations == 0 || frames < f.iterations, nil
	}
	onKey := func(k byte) (bool, error) {
		if handleKey(k, &view, &paused, &typing) {
			return false, nil
		}
		if !paused {
			pausedDrawn = false
		}
		return true, draw()
	}
	err = watch(ctx, cmd.ErrOrStderr(), f.watchConfig, onFrame, keys, onKey)
	if isBrokenPipe(err) {
		return nil
	}
	return err
}

// topFooterLines are the lines top adds under the frame on a terminal.
const topFooterLines = 2

// handleKey applies one key press to the view; it reports a quit.
func handleKey(k byte, view *topview.View, paused *bool, typing *[]byte) bool {
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

// rawInput switches the terminal to byte-at-a-time input without echo and
// returns the function that puts it back.
func rawInput(f *os.File) (func(), error) {
	fd := int(f.Fd())
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return nil, err
	}
	raw := *old
	raw.Lflag &^= unix.ICANON | unix.ECHO | unix.ISIG
	raw.Oflag &^= unix.OPOST
	raw.Cc[unix.VMIN], raw.Cc[unix.VTIME] = 1, 0
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &raw); err != nil {
		return nil, err
	}
	return func() { unix.IoctlSetTermios(fd, unix.TCSETS, old) }, nil
}

func readKeys(r io.Reader) <-chan byte {
	keys := make(chan byte, 16)
	go func() {
		defer close(keys)
		br := bufio.NewReader(r)
		for {
			b, err := br.ReadByte()
			if err != nil {
				return
			}
			keys <- b
		}
	}()
	return keys
}
