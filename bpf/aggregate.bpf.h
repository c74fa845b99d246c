/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/*
 * serve's counting in the kernel (aggregate, set by the loader). An
 * always-on exporter must not pay per transition what trace pays: a ring
 * record, a wake-up, a decode and a table update in user space. With
 * aggregate on, each transition adds to its namespace's counters, read by
 * user space at scrape time; the ring carries only what the backlog
 * accounting reads that the kernel does not count: listeners starting and
 * stopping. Accepts, when the accept hook is attached, add to their
 * listener's counts and wait histogram (count_accept), read at scrape time
 * too. The sockets in CLOSE_WAIT cost a transition nothing more than the
 * socks entry it already keeps: the census lists them at scrape time
 * (states.bpf.h).
 */
#ifndef SOCKLIFE_AGGREGATE_BPF_H
#define SOCKLIFE_AGGREGATE_BPF_H

#include "common.bpf.h"

volatile const __u8 aggregate;

/* Connections of one network namespace since the tracer started. */
struct conn_totals {
	__u64 opened_client; /* CLOSE -> SYN_SENT: connect() */
	__u64 opened_server; /* LISTEN -> SYN_RECV: a listener's child */
	/* -> CLOSE, by who started the end, told by the state it left:
	 * FIN_WAIT1/2 or CLOSING (we sent the first FIN), CLOSE_WAIT or
	 * LAST_ACK (the peer did), ESTABLISHED, SYN_SENT or SYN_RECV (no FIN
	 * exchange: a reset, a refused or timed-out connect) */
	__u64 closed_local;
	__u64 closed_remote;
	__u64 closed_reset;
	__u64 connect_failures; /* SYN_SENT -> CLOSE */
};

/* Per CPU: an increment is a plain add on this CPU's copy. LRU: a host
 * that makes more namespaces than this forgets the least recently busy. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32); /* netns inode */
	__type(value, struct conn_totals);
} netns_totals SEC(".maps");

/*
 * A socket in CLOSE_WAIT as the census writes it (states.bpf.h): its
 * addresses, and from its socks entry its owner and when it entered
 * CLOSE_WAIT.
 */
struct close_wait {
	struct task_id owner; /* owner_flag 0: not known */
	__u64 since_ns;       /* bpf_ktime_get_ns at CLOSE_WAIT; 0: not seen entering it */
	__u64 sock_cgroup;
	__u32 netns;
	__u16 family;
	__u16 sport; /* host order */
	__u16 dport;
	__u8 owner_flag; /* sock_info's */
	__u8 pad;
	__u8 saddr[16]; /* IPv4 as v4-mapped IPv6 */
	__u8 daddr[16];
};

enum counter { NOT_COUNTED, OPENED_CLIENT, OPENED_SERVER, CLOSED_LOCAL, CLOSED_REMOTE, CLOSED_RESET };

/* Which counter a transition adds to: most add to none, and then the map
 * is not touched. */
static __always_inline enum counter counted(int old, int new)
{
	if (old == TCP_CLOSE && new == TCP_SYN_SENT)
		return OPENED_CLIENT;
	if (old == TCP_LISTEN && new == TCP_SYN_RECV)
		return OPENED_SERVER;
	if (new != TCP_CLOSE)
		return NOT_COUNTED;
	switch (old) {
	case TCP_FIN_WAIT1:
	case TCP_FIN_WAIT2:
	case TCP_CLOSING:
		return CLOSED_LOCAL;
	case TCP_CLOSE_WAIT:
	case TCP_LAST_ACK:
		return CLOSED_REMOTE;
	case TCP_ESTABLISHED:
	case TCP_SYN_RECV:
	case TCP_SYN_SENT: /* a connect failure too */
		return CLOSED_RESET;
	}
	return NOT_COUNTED;
}

static __always_inline void count_transition(__u32 netns, int old, int new)
{
	enum counter c = counted(old, new);
	struct conn_totals *t;

	if (c == NOT_COUNTED)
		return;
	t = bpf_map_lookup_elem(&netns_totals, &netns);
	if (!t) {
		struct conn_totals zero = {};

		bpf_map_update_elem(&netns_totals, &netns, &zero, BPF_NOEXIST);
		t = bpf_map_lookup_elem(&netns_totals, &netns);
		if (!t)
			return;
	}
	switch (c) {
	case OPENED_CLIENT:
		t->opened_client++;
		break;
	case OPENED_SERVER:
		t->opened_server++;
		break;
	case CLOSED_LOCAL:
		t->closed_local++;
		break;
	case CLOSED_REMOTE:
		t->closed_remote++;
		break;
	case CLOSED_RESET:
		t->closed_reset++;
		if (old == TCP_SYN_SENT)
			t->connect_failures++;
		break;
	default:
		break;
	}
}

/*
 * Accept waits: the histogram's upper bounds in ns, ascending, set by the
 * loader from tracer.AcceptWaitBuckets, their one home.
 */
#define ACCEPT_WAIT_BOUNDS 16
volatile const __u64 accept_wait_bounds[ACCEPT_WAIT_BOUNDS];

/* The listener accepts count against: its socket inode (sock_diag's), or
 * ino 0 and its port when the accept hook did not see the listener (a
 * syscall-tracepoint accept that began before the tracer). */
struct accept_key {
	__u64 ino;
	__u32 netns;
	__u16 port; /* host order */
	__u16 pad;
};

/* One listener's accepts since the tracer started. */
struct accept_totals {
	__u64 accepts;
	/* accepts whose wait in the queue is known (the child's handshake
	 * was seen), by the first bound they do not exceed; the last counts
	 * those above every bound. Not cumulative. */
	__u64 waits[ACCEPT_WAIT_BOUNDS + 1];
	__u64 wait_sum_ns;
	__u64 last_ns;      /* bpf_ktime_get_ns of a latest accept */
	__u32 acceptor;     /* the tgid that made it */
	__u32 pad;
};

/*
 * One entry per listener, shared by every CPU: the counts are atomic adds,
 * and last_ns and acceptor single stores (with accepts on two CPUs at once,
 * either one's). Preallocated: a per-CPU value would cost each listener
 * its size times the CPUs, and a hash allocated at run time is unsafe in
 * tracing programs before 6.1 (the verifier warns with a kernel splat).
 * Removed when the listener closes. A listener that finds no room is
 * counted in lost[LOST_LISTENER_ACCEPTS].
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct accept_key);
	__type(value, struct accept_totals);
} listener_accepts SEC(".maps");

/* The bucket of a wait of ns: the first bound it does not exceed. */
static __always_inline __u32 wait_bucket(__u64 ns)
{
	__u32 i;

#pragma unroll
	for (i = 0; i < ACCEPT_WAIT_BOUNDS; i++)
		if (ns <= accept_wait_bounds[i])
			return i;
	return ACCEPT_WAIT_BOUNDS;
}

/* An accept under aggregate: add it to its listener's counts instead of
 * ringing an event. wait_known says whether wait_ns (the time in the
 * queue) is. */
static __always_inline void count_accept(const struct accept_key *key, __u64 now, bool wait_known,
					 __u64 wait_ns, __u32 acceptor)
{
	struct accept_totals *t = bpf_map_lookup_elem(&listener_accepts, key);

	if (!t) {
		struct accept_totals zero = {};

		/* BPF_NOEXIST: another CPU may have made it since */
		bpf_map_update_elem(&listener_accepts, key, &zero, BPF_NOEXIST);
		t = bpf_map_lookup_elem(&listener_accepts, key);
		if (!t) {
			count_lost(LOST_LISTENER_ACCEPTS);
			return;
		}
	}
	__sync_fetch_and_add(&t->accepts, 1);
	t->last_ns = now;
	t->acceptor = acceptor;
	if (wait_known) {
		__u32 b = wait_bucket(wait_ns);

		if (b <= ACCEPT_WAIT_BOUNDS) /* for the verifier */
			__sync_fetch_and_add(&t->waits[b], 1);
		__sync_fetch_and_add(&t->wait_sum_ns, wait_ns);
	}
}

/* A listener closing takes its accept counts with it. */
static __always_inline void forget_listener_accepts(const struct sock *sk, __u32 netns, __u16 port)
{
	struct accept_key key = { .ino = sock_ino(sk), .netns = netns, .port = port };

	bpf_map_delete_elem(&listener_accepts, &key);
}

/* Whether the ring gets a state change under aggregate: a listener's
 * start or end, which the backlog accounting reads. */
static __always_inline bool aggregate_rings(int old, int new)
{
	return new == TCP_LISTEN || (old == TCP_LISTEN && new == TCP_CLOSE);
}

#endif
