// Package snapshot lists the sockets that exist now, through sock_diag
// netlink dumps (TCP, UDP and Unix; every network namespace on request),
// and finds the processes that hold them. One decoded TCP socket, as
// Dump returns it with Options.Info:
//
//	{Protocol:tcp Family:AF_INET State:ESTAB Netns:4026531840
//	 Local:127.0.0.1:35361 Remote:127.0.0.1:46346 RecvQ:100 SendQ:0
//	 Inode:2539844 Cookie:331191 CgroupID:1 Congestion:bbr
//	 TCPInfo:{RTT:11µs BytesReceived:100 SndCwnd:10 ...}}
package snapshot

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/socklife/socklife/internal/ssfilter"
	"github.com/socklife/socklife/internal/tcpstate"
)

// Options selects what Dump lists. The zero value of each group means "all":
// no protocol set lists TCP, UDP and Unix; neither family lists both; an
// empty States lists every state.
type Options struct {
	TCP, UDP, Unix bool
	IPv4, IPv6     bool
	// States is filtered in the kernel (idiag_states / udiag_states).
	States tcpstate.Mask
	// Info asks for tcp_info, socket memory and congestion control (ss -i -m).
	Info bool
	// AllNetns dumps every network namespace on the host, not only ours.
	AllNetns bool
	// Netns adds these namespaces (by inode) to ours; one that cannot be
	// found (it vanished) is skipped with a warning.
	Netns []uint32
	// SSFilter is an ss filter expression (what ss takes after its flags).
	// As in ss, its bytecode goes with every TCP and UDP dump request, so
	// the kernel leaves out what does not match, and then ss's user-space
	// test runs on what comes back: that one also covers what bytecode
	// cannot say (dev) and Unix sockets. A family in it (inet:, inet6:,
	// unix:) limits the dumps to that family. Its state words are not
	// applied here: fold Filter.StateMask into States.
	SSFilter *ssfilter.Filter
	// Keep, if set, sees every socket as it is decoded and says whether
	// Result keeps it: a caller that only counts most of them holds memory
	// in proportion to what it keeps, not to the host's sockets. It runs
	// on the dump workers, so on several goroutines at once.
	Keep func(*Socket) bool

	// bytecode is SSFilter's program, compiled once by Dump; nil for none.
	bytecode []byte
}

// Result is one snapshot.
type Result struct {
	// Sockets in namespace order (Namespaces), then TCP, UDP, Unix, each
	// IPv4 before IPv6, each in kernel hash order.
	Sockets []Socket
	// Namespaces are the inodes of the network namespaces dumped.
	Namespaces []uint32
	// Warnings say what was skipped and why (a namespace that vanished).
	Warnings []string
}

// query is one sock_diag dump: a protocol and, for inet, a family.
type query struct {
	proto  Protocol
	family uint8
}

// module names the kernel module that answers q, for error messages.
func (q query) module() string {
	switch q.proto {
	case TCP:
		return "tcp_diag"
	case UDP:
		return "udp_diag"
	}
	return "unix_diag"
}

func (q query) request(opts Options) []byte {
	switch q.proto {
	case TCP:
		return inetDiagReq(q.family, unix.IPPROTO_TCP, opts.States, opts.Info, opts.bytecode)
	case UDP:
		return inetDiagReq(q.family, unix.IPPROTO_UDP, opts.States, opts.Info, opts.bytecode)
	}
	return unixDiagReq(opts.States, opts.Info)
}

func (q query) decode(b []byte, s *Socket, a *arena) error {
	if q.proto == Unix {
		return decodeUnix(b, s, a)
	}
	return decodeInet(b, q.proto, s, a)
}

// queries lists the dumps opts asks for, in output order.
func (o Options) queries() []query {
	anyProto := o.TCP || o.UDP || o.Unix
	bothFamilies := !o.IPv4 && !o.IPv6
	var qs []query
	for _, p := range []Protocol{TCP, UDP} {
		if anyProto && !(p == TCP && o.TCP || p == UDP && o.UDP) {
			continue
		}
		if (o.IPv4 || bothFamilies) && o.ssFamily(unix.AF_INET) {
			qs = append(qs, query{p, unix.AF_INET})
		}
		if (o.IPv6 || bothFamilies) && o.ssFamily(unix.AF_INET6) {
			qs = append(qs, query{p, unix.AF_INET6})
		}
	}
	if (o.Unix || !anyProto) && o.ssFamily(unix.AF_UNIX) {
		qs = append(qs, query{Unix, unix.AF_UNIX})
	}
	return qs
}

// job is one query in one namespace, and what it found.
type job struct {
	ns      namespace
	q       query
	sockets []Socket
	err     error
	gone    bool // the namespace vanished before it could be dumped
	denied  bool // we may not enter the namespace (not root)
}

// Dump lists sockets through sock_diag. The dumps of a namespace run two at
// a time (the kernel walks its hash table once per dump, so on two cores
// the IPv4 and IPv6 walks overlap).
func Dump(ctx context.Context, opts Options) (*Result, error) {
	if opts.States == 0 {
		opts.States = tcpstate.All
	}
	opts.compileSSFilter()
	self, err := CurrentNetns()
	if err != nil {
		return nil, err
	}
	namespaces := []namespace{{inode: self, paths: []string{"/proc/self/ns/net"}}}
	var warnings []string
	switch {
	case opts.AllNetns:
		if namespaces, err = listNamespacesNoting(&warnings); err != nil {
			return nil, err
		}
	case len(opts.Netns) > 0:
		if namespaces, warnings, err = someNamespaces(self, opts.Netns); err != nil {
			return nil, err
		}
	}
	// sockstat counts sockets in every state and of every address: a dump
	// of listeners alone (socklife backlog, each interval), one the
	// kernel filters with bytecode (ss filters keep a few) or one Keep
	// thins must not allocate, and zero, room for every connection on
	// the host.
	sized := opts.States&^tcpstate.Of(tcpstate.Listen) != 0 && opts.bytecode == nil && opts.Keep == nil
	jobs := planJobsSized(namespaces, opts.queries(), sized)
	runJobs(ctx, jobs, opts, self)
	res, err := gather(jobs, namespaces)
	if res != nil {
		res.Warnings = append(warnings, res.Warnings...)
	}
	return res, err
}

// planJobs lists the dumps and sizes their slices by sockstatHint. The first
// gets room for every socket, so gathering them copies only the later
// (usually small) dumps and never regrows the big one.
func planJobs(namespaces []namespace, qs []query) []*job {
	return planJobsSized(namespaces, qs, true)
}

// planJobsSized is planJobs, without the sockstat sizing unless sized.
func planJobsSized(namespaces []namespace, qs []query, sized bool) []*job {
	var jobs []*job
	var hints []int
	total := 0
	for _, ns := range namespaces {
		for _, q := range qs {
			jobs = append(jobs, &job{ns: ns, q: q})
			hint := 0
			if sized {
				hint = sockstatHint(q, ns)
			}
			hints = append(hints, hint)
			total += hints[len(hints)-1]
		}
	}
	for i, j := range jobs {
		if i == 0 {
			j.sockets = make([]Socket, 0, total)
		} else if hints[i] > 0 {
			j.sockets = make([]Socket, 0, hints[i])
		}
	}
	return jobs
}

// dumpWorkers is how many dumps run at once. Two, because the kernel walks
// its whole hash table for each family: on two cores the IPv4 and IPv6
// walks overlap (BenchmarkDumpWorkers measures it).
var dumpWorkers = 2

// runJobs runs the jobs on up to dumpWorkers workers, each with its own
// netlink socket and receive buffer.
func runJobs(ctx context.Context, jobs []*job, opts Options, self uint32) {
	workers := min(dumpWorkers, runtime.GOMAXPROCS(0), len(jobs))
	next := make(chan *job)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := worker{self: self}
			defer w.close()
			for j := range next {
				w.run(ctx, j, opts)
			}
		}()
	}
	for _, j := range jobs {
		next <- j
	}
	close(next)
	wg.Wait()
}

type worker struct {
	self  uint32
	ns    uint32
	conn  *diagConn
	arena arena
}

func (w *worker) close() {
	if w.conn != nil {
		w.conn.Close()
		w.conn = nil
	}
}

func (w *worker) run(ctx context.Context, j *job, opts Options) {
	if w.conn == nil || w.ns != j.ns.inode {
		w.close()
		if j.ns.inode == w.self {
			w.conn, j.err = openDiag()
		} else {
			w.conn, j.err = openDiagIn(j.ns)
		}
		if j.err != nil {
			j.gone = errors.Is(j.err, errNamespaceGone)
			j.denied = errors.Is(j.err, unix.EPERM) || errors.Is(j.err, unix.EACCES)
			return
		}
		w.ns = j.ns.inode
	}
	j.sockets, j.err = w.conn.collect(ctx, j.q, opts, j.ns.inode, j.sockets, &w.arena)
}

// collect runs one dump and appends its sockets to out.
func (c *diagConn) collect(ctx context.Context, q query, opts Options, netns uint32, out []Socket, a *arena) ([]Socket, error) {
	err := c.dump(ctx, q.request(opts), q.module(), func(payload []byte) error {
		out = append(out, Socket{})
		s := &out[len(out)-1]
		if err := q.decode(payload, s, a); err != nil {
			out = out[:len(out)-1]
			return fmt.Errorf("decoding %s answer: %w", q.module(), err)
		}
		s.Netns = netns
		if opts.SSFilter != nil && !ssKeep(opts.SSFilter, s) || opts.Keep != nil && !opts.Keep(s) {
			out = out[:len(out)-1]
		}
		return nil
	})
	return out, err
}

// gather joins the jobs' sockets in order, turning vanished namespaces into
// warnings; any other failure fails the snapshot.
func gather(jobs []*job, namespaces []namespace) (*Result, error) {
	res := &Result{}
	warned := make(map[uint32]bool)
	denied := 0
	for _, j := range jobs {
		switch {
		case j.denied:
			// Without CAP_SYS_ADMIN the other namespaces stay closed: list
			// what can be listed and say, once, what was left out.
			if !warned[j.ns.inode] {
				warned[j.ns.inode] = true
				denied++
			}
			continue
		case j.gone:
			if !warned[j.ns.inode] {
				warned[j.ns.inode] = true
				noteGone(j.ns.inode, j.err, &res.Warnings)
			}
			continue
		case j.err != nil:
			return nil, j.err
		}
		if res.Sockets == nil {
			res.Sockets = j.sockets
		} else {
			res.Sockets = append(res.Sockets, j.sockets...)
		}
		j.sockets = nil
	}
	if denied > 0 {
		res.Warnings = append(res.Warnings, deniedWarning(denied))
	}
	for _, ns := range namespaces {
		if !warned[ns.inode] {
			res.Namespaces = append(res.Namespaces, ns.inode)
		}
	}
	return res, nil
}

// arena hands out the optional per-socket parts from chunks, so a dump with
// Info does not make three small allocations per socket.
type arena struct {
	timers []Timer
	infos  []TCPInfo
	mems   []MemInfo
}

// Chunks start small (most dumps are small) and double up to a cap, so a
// dump of 100,000 TIME-WAIT sockets makes a few dozen allocations for
// their timers, not one per socket or per 256.
const (
	arenaFirstChunk = 64
	arenaMaxChunk   = 4096
)

func take[T any](chunk *[]T) *T {
	if len(*chunk) == cap(*chunk) {
		*chunk = make([]T, 0, min(max(2*cap(*chunk), arenaFirstChunk), arenaMaxChunk))
	}
	*chunk = (*chunk)[:len(*chunk)+1]
	return &(*chunk)[len(*chunk)-1]
}

func (a *arena) timer() *Timer     { return take(&a.timers) }
func (a *arena) tcpInfo() *TCPInfo { return take(&a.infos) }
func (a *arena) memInfo() *MemInfo { return take(&a.mems) }

// sockstatHint estimates how many sockets q will return in namespace ns from
// /proc/PID/net/sockstat{,6} (counters the kernel keeps anyway), plus slack
// for sockets born during the dump. It is 0 when unknown (Unix sockets, or a
// namespace known only by its /run/netns name).
func sockstatHint(q query, ns namespace) int {
	dir, ok := ns.procDir()
	if q.proto == Unix || !ok {
		return 0
	}
	file, key := dir+"/net/sockstat", "TCP:"
	if q.family == unix.AF_INET6 {
		file, key = file+"6", "TCP6:"
	}
	if q.proto == UDP {
		key = "UDP" + key[3:]
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	return sockstatHintOf(string(data), key, q.proto == TCP && q.family == unix.AF_INET)
}

// maxSockstatHint bounds what a hint may allocate: sockstat is the
// kernel's, but a hint is only a guess, and a wrong one must not ask for
// more memory than a very busy host's sockets take.
const maxSockstatHint = 1 << 22

// sockstatHintOf reads a sockstat file's line for key ("TCP:", "UDP6:"),
// with the TIME-WAIT count when tw.
func sockstatHintOf(data, key string, tw bool) int {
	n := 0
	for line := range strings.Lines(data) {
		if rest, ok := strings.CutPrefix(line, key); ok {
			n = sockstatCount(rest, "inuse")
			if tw {
				// tw counts TIME-WAIT of both families; they are mostly IPv4.
				n += sockstatCount(rest, "tw")
			}
		}
	}
	n = min(n, maxSockstatHint)
	return n + n/8 + 16
}

// sockstatCount returns the number after name in "inuse 3 orphan 0 tw 5".
func sockstatCount(fields, name string) int {
	f := strings.Fields(fields)
	for i := 0; i+1 < len(f); i++ {
		if f[i] == name {
			n, _ := strconv.ParseUint(f[i+1], 10, 64)
			return int(min(n, maxSockstatHint))
		}
	}
	return 0
}
