/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/*
 * serve's counting in the kernel (aggregate, set by the loader). An
 * always-on exporter must not pay per transition what trace pays: a ring
 * record, a wake-up, a decode and a table update in user space. With
 * aggregate on, each transition adds to its namespace's counters and keeps
 * the map of sockets in CLOSE_WAIT, both read by user space at scrape time;
 * the ring carries only what the backlog accounting reads, which is rare
 * (listeners starting and stopping) or per accept (the accept hook's, when
 * attached).
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

/* A socket in CLOSE_WAIT: the peer closed, its owner has not yet. */
struct close_wait {
	struct task_id owner; /* tgid 0: not known */
	__u64 since_ns;       /* bpf_ktime_get_ns at CLOSE_WAIT */
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

/* Sockets in CLOSE_WAIT, by struct sock *: entered at ->CLOSE_WAIT,
 * removed at CLOSE_WAIT->. A plain hash: an entry must not be evicted for
 * a newer one (the leak is the old ones); one that finds no room is
 * counted in lost[LOST_CLOSE_WAIT]. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1 << 16); /* the loader may resize */
	__type(key, __u64);
	__type(value, struct close_wait);
} close_waits SEC(".maps");

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

static __always_inline void enter_close_wait(const struct sock *sk, __u64 now,
					     const struct sock_info *si, __u32 netns,
					     const struct tuple *tu)
{
	__u64 key = (__u64)sk;
	struct close_wait cw = {
		.owner = si->owner,
		.since_ns = now,
		.sock_cgroup = si->sock_cgroup,
		.netns = netns,
		.family = tu->family,
		.sport = tu->sport,
		.dport = tu->dport,
		.owner_flag = si->owner_flag,
	};

	__builtin_memcpy(cw.saddr, tu->saddr, 16);
	__builtin_memcpy(cw.daddr, tu->daddr, 16);
	if (bpf_map_update_elem(&close_waits, &key, &cw, BPF_ANY)) {
		__u32 slot = LOST_CLOSE_WAIT;
		__u64 *n = bpf_map_lookup_elem(&lost, &slot);

		if (n)
			*n += 1;
	}
}

/* What aggregate does with one transition that passed the filters. */
static __always_inline void aggregate_transition(const struct sock *sk, __u64 now, int old,
						 int new, const struct sock_info *si,
						 __u32 netns, const struct tuple *tu)
{
	count_transition(netns, old, new);
	if (new == TCP_CLOSE_WAIT && old != new)
		enter_close_wait(sk, now, si, netns, tu);
}

/* A socket leaving CLOSE_WAIT, whether or not it passed the filters when
 * it entered (the delete of a missing key is a lookup). */
static __always_inline void aggregate_leave(const struct sock *sk, int old, int new)
{
	__u64 key = (__u64)sk;

	if (old == TCP_CLOSE_WAIT && new != old)
		bpf_map_delete_elem(&close_waits, &key);
}

/* Whether the ring gets a state change under aggregate: a listener's
 * start or end, which the backlog accounting reads. */
static __always_inline bool aggregate_rings(int old, int new)
{
	return new == TCP_LISTEN || (old == TCP_LISTEN && new == TCP_CLOSE);
}

#endif
