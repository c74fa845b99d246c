package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/socklife/socklife/internal/filter"
	"github.com/socklife/socklife/internal/live"
	"github.com/socklife/socklife/internal/outfile"
	"github.com/socklife/socklife/internal/record"
	"github.com/socklife/socklife/internal/render"
	"github.com/socklife/socklife/internal/tcpstate"
	"github.com/socklife/socklife/snapshot"
	"github.com/socklife/socklife/tracer"
)

type recordFlags struct {
	filter filter.Flags
	tracerFlags
	output      string
	overwrite   bool
	includeOpen bool
	maxSize     string
	maxFiles    int
	maxFilesSet bool // given, not the default
	duration    time.Duration
}

func newRecordCmd() *cobra.Command {
	var f recordFlags
	cmd := &cobra.Command{
		Use:   "record [flags] [FILTER...]",
		Short: "Write one JSON record per TCP connection when it closes",
		Long: `Write one NDJSON record per TCP connection when it closes: every state it went
through with the time it entered it, who opened and who closed first, bytes,
retransmits, RTT, the owning process and, for accepted connections, the
listener and the wait in its accept queue. Connections that were open before
the recording started have "seen_from_start": false and null for what was not
seen, never 0. Every write to the file (or to a stdout that is a regular
file) holds only whole records, so a killed socklife leaves only complete
lines. Files are created mode 0600; an existing -o path must be a regular
file of yours, not a symbolic link (--overwrite writes it anyway). The schema
is docs/record.schema.json. At stop (Ctrl-C, SIGTERM, --duration) it prints
"socklife: N records, M events, K lost, R resyncs" on stderr, with the causes
of any loss, and a warning when events were lost.`,
		Example: `  socklife record -o conns.ndjson --max-size 100M --max-files 10
  socklife record -o - --port 443 | jq 'select(.closed_by == "reset")'`,
		Args: cobra.ArbitraryArgs, // an ss FILTER
		RunE: func(cmd *cobra.Command, args []string) error {
			f.filter.SetExpr(args)
			f.maxFilesSet = cmd.Flags().Changed("max-files")
			return runRecord(cmd, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.output, "output", "o", "-", `file to write the records to; "-" is stdout`)
	fl.BoolVar(&f.overwrite, "overwrite", false, "write -o even if it is a symbolic link, a device or another user's file (never chmodded)")
	fl.BoolVar(&f.includeOpen, "include-open", false, `at stop, also write the connections still open (with "open": true)`)
	fl.StringVar(&f.maxSize, "max-size", "", "start a new file before one grows past this size (bytes, or with K, M, G)")
	fl.IntVar(&f.maxFiles, "max-files", 5, "with --max-size: files to keep, the current one included")
	f.filter.Register(fl, "only connections that went through this state")
	f.tracerFlags.register(fl)
	fl.DurationVar(&f.duration, "duration", 0, "stop after this long (e.g. 30s)")
	return cmd
}

// parseSize reads "4096", "64K", "100M" or "1G" (powers of 1024).
func parseSize(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	mult := int64(1)
	switch strings.ToUpper(s[len(s)-1:]) {
	case "K":
		mult = 1 << 10
	case "M":
		mult = 1 << 20
	case "G":
		mult = 1 << 30
	}
	num := s
	if mult > 1 {
		num = s[:len(s)-1]
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("--max-size %q is not a positive size (like 4096, 64K, 100M, 1G)", s)
	}
	return n * mult, nil
}

// recordSetup is what the flags ask for, checked.
type recordSetup struct {
	live   live.Options
	rest   *filter.Filter // what the kernel does not filter
	states tcpstate.Mask
	writer record.Options
}

func (f recordFlags) setup() (recordSetup, error) {
	var s recordSetup
	flt, err := parseFilter(&f.filter)
	if err != nil {
		return s, err
	}
	if err := f.tracerFlags.check(); err != nil {
		return s, err
	}
	size, err := parseSize(f.maxSize)
	if err != nil {
		return s, badInput("%w", err)
	}
	if f.maxFiles < 1 {
		return s, badInput("--max-files %d: want at least 1", f.maxFiles)
	}
	// Each of these once went without rotation, without a word.
	switch {
	case f.maxFilesSet && size == 0:
		return s, badInput("--max-files keeps rotated files: give --max-size too")
	case size > 0 && f.output == "-":
		return s, badInput("--max-size rotates files; stdout cannot rotate: give -o FILE")
	}
	if f.duration < 0 {
		return s, badInput("--duration %v is negative", f.duration)
	}
	if f.output == "" {
		return s, badInput(`-o: want a file name or "-"`)
	}
	topts, rest := flt.Split(true)
	f.tracerFlags.apply(&topts)
	// the older sockets are filtered as a whole, events in the kernel
	// and then by rest
	s.live = live.Options{Tracer: topts, Keep: flt.Socket}
	s.rest, s.states = rest, flt.States
	s.writer = record.Options{Path: f.output, Overwrite: f.overwrite, MaxSize: size, MaxFiles: f.maxFiles}
	return s, nil
}

// wants says whether a connection belongs in the output: listeners are not
// connections; rest (what the kernel did not filter: --comm, --src, ...)
// and --state apply to the whole connection.
func wants(c *live.Conn, rest *filter.Filter, states tcpstate.Mask) bool {
	if c.Role == live.RoleListener || !rest.Match(c.Netns, c.Local, c.Remote, connOwners(c)...) {
		return false
	}
	if states == 0 || states.Has(c.State) {
		return true
	}
	return slices.ContainsFunc(c.History, func(s live.Step) bool { return states.Has(s.State) })
}

func runRecord(cmd *cobra.Command, f recordFlags) error {
	s, err := f.setup()
	if err != nil {
		return err
	}
	s.writer.Stdout = cmd.OutOrStdout()
	names, err := newNames(s.rest) // OnClose runs on one goroutine
	if err != nil {
		return err
	}
	// Not closed by a defer: after a stop that gave up on a blocked
	// output, closing would block as well.
	w, err := openRecords(s.writer)
	if err != nil {
		return err
	}
	var line []byte
	write := func(c *live.Conn) error {
		if !wants(c, s.rest, s.states) || s.rest.Contained() && !s.rest.Container(names.Container(c.SockCgroupID, c.OwnerCgroup())) {
			return nil
		}
		line = render.AppendRecord(line[:0], c, names)
		return w.Add(line)
	}
	s.live.OnClose = write
	s.live.OnDrained = w.Flush
	s.live.Logger = stderrLogger(cmd.ErrOrStderr(), f.debug)
	ctx, cancel := context.WithCancel(cmd.Context())
	defer cancel()
	if f.duration > 0 {
		ctx, cancel = context.WithTimeout(ctx, f.duration)
		defer cancel()
	}
	var broken atomic.Bool
	if f.output == "-" {
		cancelOnBrokenPipe(s.writer.Stdout, func() { broken.Store(true); cancel() })
	}
	follow := kernelCgroups(&s.live.Tracer, s.rest)
	tk, err := live.Start(ctx, s.live)
	if err != nil {
		w.Close()
		if ctx.Err() != nil {
			return nil // stopped while starting: nothing was recorded
		}
		return err
	}
	if err := writeReadyFile(f.readyFile); err != nil {
		tk.Close()
		w.Close()
		return err
	}
	go follow(ctx, tk.AddCgroups)
	// The tracker stops by itself when ctx ends, once it has applied what
	// the ring held then; or earlier if writing fails. Each step of the
	// end is bounded: a stalled reader of stdout must not hold a stop up.
	err = untilStopped(ctx, w.Stalled, func() error {
		<-tk.Done()
		tk.Close()
		return tk.Err()
	})
	if err == nil && f.includeOpen {
		err = untilStopped(doneContext, w.Stalled, func() error { return writeOpen(tk, write) })
	}
	if !errors.Is(err, errOutputBlocked) {
		if cerr := untilStopped(doneContext, w.Stalled, w.Close); err == nil {
			err = cerr
		}
	}
	switch {
	case isBrokenPipe(err) || broken.Load():
		return nil // `socklife record | head`: the reader has all it wants
	case errors.Is(err, errOutputBlocked):
		fmt.Fprintf(cmd.ErrOrStderr(), "socklife: %d records (%v)\n", w.Records(), err)
		return nil
	}
	st := tk.Stats()
	fmt.Fprintf(cmd.ErrOrStderr(), "socklife: %d records, %d events, %s, %d resyncs\n", w.Records(), st.Events, render.LossSummary(st.Loss), st.Resyncs)
	if w := lossWarning(st); w != "" {
		fmt.Fprintln(cmd.ErrOrStderr(), "socklife: warning:", w)
	}
	return err
}

// doneContext has ended: untilStopped with it waits as after a stop.
var doneContext = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

// openRecords opens the output and checks everything that can be checked
// before the file is emptied: its path (record.Create), then the rights
// to attach, so that a run that cannot start leaves an old file whole.
func openRecords(opts record.Options) (*record.Writer, error) {
	w, err := record.Create(opts)
	if errors.Is(err, outfile.ErrRefused) {
		return nil, fmt.Errorf("%w (--overwrite writes it anyway)", err)
	}
	if err != nil {
		return nil, err
	}
	if err := tracer.Preflight(); err != nil {
		w.Close()
		return nil, err
	}
	if err := w.Start(); err != nil {
		w.Close()
		return nil, err
	}
	return w, nil
}

// lossWarning says what lost events cost a recording; "" if none was lost.
func lossWarning(st live.Stats) string {
	switch {
	case st.Lost == 0:
		return ""
	case st.Unresynced > 0:
		// the resync at stop failed or the run ended with an error
		return fmt.Sprintf("%d events lost, %d of them since the last resync: connections may be missing, and --include-open may list closed ones as open", st.Lost, st.Unresynced)
	}
	return fmt.Sprintf("%d events lost; the connections were re-listed from the kernel, so those whose close was lost have \"closed_at\": null and those opened and closed between two re-listings have no record", st.Lost)
}

// connOwners is a connection's owner for the filter; none when unknown.
func connOwners(c *live.Conn) []tracer.Holder {
	if !c.OwnerKnown {
		return nil
	}
	return []tracer.Holder{{PID: c.PID, Comm: c.Comm}}
}

// connKey names a connection in both the table and a snapshot.
type connKey struct {
	netns         uint32
	local, remote netip.AddrPort
}

// writeOpen writes the connections still open, with their totals so far
// from tcp_info (null if the connection went away meanwhile).
func writeOpen(tk *live.Tracker, write func(*live.Conn) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := snapshot.Dump(ctx, snapshot.Options{TCP: true, AllNetns: true, Info: true})
	if err != nil {
		return err
	}
	infos := make(map[connKey]*snapshot.TCPInfo, len(res.Sockets))
	for i := range res.Sockets {
		s := &res.Sockets[i]
		if s.TCPInfo != nil {
			infos[connKey{s.Netns, unmap(s.Local), unmap(s.Remote)}] = s.TCPInfo
		}
	}
	tk.View(func(t *live.Table) {
		t.Each(func(c *live.Conn) bool {
			if ti := infos[connKey{c.Netns, c.Local, c.Remote}]; ti != nil {
				c.HasStats = true
				c.Stats = tracer.CloseStats{BytesAcked: ti.BytesAcked, BytesReceived: ti.BytesReceived, TotalRetrans: ti.TotalRetrans, SRTT: ti.RTT}
			}
			err = write(c)
			return err == nil
		})
	})
	return err
}

func unmap(a netip.AddrPort) netip.AddrPort { return netip.AddrPortFrom(a.Addr().Unmap(), a.Port()) }
