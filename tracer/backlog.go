package tracer

import (
	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// QueueInfo is a listener's queues as a BPF hook read them, for backlog
// accounting. An Accept carries it when the hook saw the listener; with
// Options.Backlog, so do a child's SYN_RECV->ESTABLISHED (the moment it
// enters the accept queue) and every SynackRetransmit.
type QueueInfo struct {
	// Known says the fields below are filled.
	Known    bool
	Listener uint64 // the listener's struct sock address
	// Inode is the listener socket's inode, sock_diag's idiag_inode: how
	// a listener from an event is matched with one from a dump.
	Inode uint64
	// Len is the accept-queue length after this enqueue or dequeue;
	// Backlog the listen() backlog. The queue is full when Len > Backlog.
	Len, Backlog uint32
	// SynQueue is the request (SYN) queue length: half-open connections.
	SynQueue uint32
	// Drops is the listener's sk_drops: overflows and other drops since
	// it was created, what ss -tlnm shows as "d".
	Drops uint32
}

// decodeQueue fills ev.Queue from the listener fields of the record.
func decodeQueue(w *socklifeEvent, ev *Event) {
	if w.Flags&flagListenerKnown == 0 {
		return
	}
	ev.Queue = QueueInfo{
		Known:    true,
		Listener: w.Listener,
		Inode:    w.ListenerIno,
		Len:      w.AckBacklog,
		Backlog:  w.MaxAckBacklog,
		SynQueue: w.SynQueue,
		Drops:    w.ListenerDrops,
	}
}

// synackLadder: SYN-ACK retransmits by listeners, for backlog accounting
// only (Options.Backlog). The raw tracepoint first: it needs no tracefs and
// the program reads little either way.
var synackLadder = []rung{
	{HookRawTracepoint, "tcp:tcp_retransmit_synack", []string{"raw_synack"}, attachRawSynack, nil},
	{HookTracepoint, "tcp:tcp_retransmit_synack", []string{"tp_synack"}, attachTracepoints("tcp", "tcp_retransmit_synack", "tp_synack"), nil},
}

func attachRawSynack(progs map[string]*ebpf.Program) ([]link.Link, error) {
	l, err := link.AttachRawTracepoint(link.RawTracepointOptions{Name: "tcp_retransmit_synack", Program: progs["raw_synack"]})
	if err != nil {
		return nil, err
	}
	return []link.Link{l}, nil
}

func boolByte(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}
