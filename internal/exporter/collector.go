package exporter

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/socklife/socklife/internal/backlog"
	"github.com/socklife/socklife/internal/tcpstate"
)

// Collector is a prometheus.Collector over a collection function: a scrape
// within Every of the last collection (or while one runs) gets that one, so
// ten scrapes at once cost the kernel one collection.
type Collector struct {
	collect func(context.Context) (Model, error)
	every   time.Duration

	mu          sync.Mutex // held through a collection: concurrent scrapes wait for it
	last        Model
	lastErr     error
	lastAt      time.Time
	collections uint64
}

// NewCollector caches collect's Model for every (at least a scrape's worth
// of work apart).
func NewCollector(collect func(context.Context) (Model, error), every time.Duration) *Collector {
	return &Collector{collect: collect, every: every}
}

// Collections counts the collections made so far.
func (c *Collector) Collections() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.collections
}

// model returns a Model no older than every, collecting one if needed.
func (c *Collector) model() (Model, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.collections > 0 && time.Since(c.lastAt) < c.every {
		return c.last, c.lastErr
	}
	start := time.Now()
	m, err := c.collect(context.Background())
	m.Tool.CollectionSeconds = since(start)
	c.last, c.lastErr, c.lastAt = m, err, time.Now()
	c.collections++
	return m, err
}

var (
	listenerLabels = []string{"netns", "listener", "comm", "container", "pod", "pod_namespace"}
	processLabels  = []string{"pid", "comm", "container", "pod", "pod_namespace"}
	netnsLabels    = []string{"netns", "netns_name"}
)

func desc(name, help string, labels []string, extra ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, append(append([]string{}, labels...), extra...), nil)
}

var (
	descQueue     = desc("socklife_listener_accept_queue_length", "Connections waiting for accept() on the listener.", listenerLabels)
	descLimit     = desc("socklife_listener_accept_queue_limit", "The listener's listen() backlog: the accept queue holds at most this plus one.", listenerLabels)
	descDrops     = desc("socklife_listener_drops_total", "The listener's sk_drops: connections dropped on overflow and other listen drops (ss -tlnm's d).", listenerLabels)
	descSynack    = desc("socklife_listener_synack_retransmits_total", "SYN-ACK retransmits on the listener since socklife started: final ACKs dropped or lost.", listenerLabels)
	descAccepts   = desc("socklife_listener_accepts_total", "accept()s on the listener since socklife started.", listenerLabels)
	descWait      = desc("socklife_listener_accept_wait_seconds", "Time from a connection's handshake completing to accept() returning it.", listenerLabels)
	descStalled   = desc("socklife_listener_stalled", "1 while the listener's accept queue is not empty and nobody has called accept() for longer than --stall.", listenerLabels)
	descStallSecs = desc("socklife_listener_stall_seconds_total", "Time the listener spent stalled since socklife started.", listenerLabels)

	descCloseWait = desc("socklife_process_close_wait_sockets", "CLOSE_WAIT sockets the process holds: the peer closed, the process has not.", processLabels)
	descOldest    = desc("socklife_process_close_wait_oldest_seconds", "Age of the process's oldest CLOSE_WAIT socket (a lower bound for sockets older than socklife).", processLabels)
	descOpenFDs   = desc("socklife_process_open_fds", "File descriptors the process has open.", processLabels)
	descMaxFDs    = desc("socklife_process_max_fds", "The process's soft RLIMIT_NOFILE (ulimit -n).", processLabels)

	descSockets   = desc("socklife_tcp_sockets", "TCP sockets in the namespace by state.", netnsLabels, "state")
	descOpened    = desc("socklife_tcp_connections_opened_total", "TCP connections seen opening since socklife started, by role: client (connect) or server (accepted).", netnsLabels, "role")
	descClosed    = desc("socklife_tcp_connections_closed_total", "TCP connections seen closing since socklife started, by who ended them: local, remote (the peer's FIN) or reset.", netnsLabels, "closed_by")
	descConnFail  = desc("socklife_tcp_connect_failures_total", "connect()s that failed (SYN_SENT -> CLOSE) since socklife started.", netnsLabels)
	descTcpExt    = map[string]*prometheus.Desc{}
	descBuild     = desc("socklife_build_info", "socklife's version, the Go version it was built with and the kernel it runs on.", nil, "version", "goversion", "kernel")
	descHook      = desc("socklife_hook_info", "The hook each feature uses, \"none\" when it is off.", nil, "feature", "hook")
	descLost      = desc("socklife_events_lost_total", "Tracer events lost, by cause: the counts they touched are short by as many (listener_accepts_map_full: accepts on listeners serve's kernel accept map had no room for).", nil, "cause")
	descCollected = desc("socklife_scrape_collection_seconds", "How long the last collection took.", nil)
)

// tcpExt are the /proc/net/netstat counters exported per namespace.
var tcpExt = []struct {
	name, help string
	get        func(backlog.Netstat) uint64
}{
	{"listen_overflows", "TcpExtListenOverflows: SYNs and final ACKs dropped because an accept queue was full", func(n backlog.Netstat) uint64 { return n.ListenOverflows }},
	{"listen_drops", "TcpExtListenDrops: every listen drop, overflows included", func(n backlog.Netstat) uint64 { return n.ListenDrops }},
	{"syncookies_sent", "TcpExtSyncookiesSent", func(n backlog.Netstat) uint64 { return n.SyncookiesSent }},
	{"syncookies_recv", "TcpExtSyncookiesRecv: valid cookies that came back", func(n backlog.Netstat) uint64 { return n.SyncookiesRecv }},
	{"syncookies_failed", "TcpExtSyncookiesFailed: invalid cookies", func(n backlog.Netstat) uint64 { return n.SyncookiesFailed }},
	{"reqq_full_do_cookies", "TcpExtTCPReqQFullDoCookies: SYNs answered with a cookie because the SYN queue was full", func(n backlog.Netstat) uint64 { return n.ReqQFullDoCookies }},
	{"reqq_full_drop", "TcpExtTCPReqQFullDrop: SYNs dropped because the SYN queue was full", func(n backlog.Netstat) uint64 { return n.ReqQFullDrop }},
}

func init() {
	for _, c := range tcpExt {
		descTcpExt[c.name] = desc("socklife_tcpext_"+c.name+"_total", c.help+", in the namespace since socklife started.", netnsLabels)
	}
}

// Describe sends every metric's description.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descQueue, descLimit, descDrops, descSynack, descAccepts, descWait, descStalled,
		descStallSecs, descCloseWait, descOldest, descOpenFDs, descMaxFDs, descSockets, descOpened, descClosed, descConnFail,
		descBuild, descHook, descLost, descCollected} {
		ch <- d
	}
	for _, d := range descTcpExt {
		ch <- d
	}
}

// Collect emits the cached (or a fresh) Model.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	m, err := c.model()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(descCollected, err)
		return
	}
	Emit(&m, ch)
}

// Emit sends m's metrics.
func Emit(m *Model, ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	for i := range m.Listeners {
		emitListener(&m.Listeners[i], m.Tool.AcceptsMeasured, gauge, counter, ch)
	}
	for _, p := range m.Processes {
		l := []string{p.PID, p.Comm, p.Container, p.Pod, p.PodNamespace}
		gauge(descCloseWait, float64(p.CloseWait), l...)
		gauge(descOldest, p.OldestSeconds, l...)
		if p.FDsKnown {
			gauge(descOpenFDs, float64(p.OpenFDs), l...)
			gauge(descMaxFDs, float64(p.MaxFDs), l...)
		}
	}
	for i := range m.Netns {
		emitNetns(&m.Netns[i], gauge, counter)
	}
	t := &m.Tool
	gauge(descBuild, 1, t.Version, t.GoVersion, t.Kernel)
	for _, h := range t.Hooks {
		gauge(descHook, 1, h.Feature, h.Hook)
	}
	counter(descLost, float64(t.Loss.RingFull), "ring_full")
	counter(descLost, float64(t.Loss.Recursion), "recursion")
	counter(descLost, float64(t.Loss.Undecodable), "undecodable")
	counter(descLost, float64(t.Loss.ListenerAcceptsFull), "listener_accepts_map_full")
	gauge(descCollected, t.CollectionSeconds)
}

func emitListener(l *Listener, accepts bool, gauge, counter func(*prometheus.Desc, float64, ...string), ch chan<- prometheus.Metric) {
	lv := []string{strconv.FormatUint(uint64(l.Netns), 10), l.Listener, l.Comm, l.Container, l.Pod, l.PodNamespace}
	gauge(descQueue, float64(l.Queue), lv...)
	gauge(descLimit, float64(l.Limit), lv...)
	counter(descDrops, float64(l.Drops), lv...)
	counter(descSynack, float64(l.SynackRetrans), lv...)
	if !accepts {
		return
	}
	counter(descAccepts, float64(l.Accepts), lv...)
	cum := l.Waits.Cumulative()
	buckets := make(map[float64]uint64, len(cum))
	for i, b := range backlog.WaitBuckets {
		buckets[b.Seconds()] = cum[i]
	}
	ch <- prometheus.MustNewConstHistogram(descWait, l.Waits.Count, l.Waits.Sum.Seconds(), buckets, lv...)
	stalled := 0.0
	if l.Stalled {
		stalled = 1
	}
	gauge(descStalled, stalled, lv...)
	counter(descStallSecs, l.StallSeconds, lv...)
}

func emitNetns(n *Netns, gauge, counter func(*prometheus.Desc, float64, ...string)) {
	nv := []string{strconv.FormatUint(uint64(n.Netns), 10), n.Name}
	for s := tcpstate.State(1); s < tcpstate.Max; s++ {
		if s == tcpstate.NewSynRecv {
			continue // a request, not a socket: counted in SYN_RECV's place by no dump
		}
		gauge(descSockets, float64(n.States[s]), append(nv, s.KernelName())...)
	}
	t := n.Totals
	counter(descOpened, float64(t.OpenedClient), append(nv, "client")...)
	counter(descOpened, float64(t.OpenedServer), append(nv, "server")...)
	counter(descClosed, float64(t.ClosedLocal), append(nv, "local")...)
	counter(descClosed, float64(t.ClosedRemote), append(nv, "remote")...)
	counter(descClosed, float64(t.ClosedReset), append(nv, "reset")...)
	counter(descConnFail, float64(t.ConnectFailures), nv...)
	if n.HasNetstat {
		for _, c := range tcpExt {
			counter(descTcpExt[c.name], float64(c.get(n.Netstat)), nv...)
		}
	}
}
