/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/*
 * Accept-backlog accounting: the listener's queues as seen at enqueue (the
 * child's SYN_RECV->ESTABLISHED), at accept, and at SYN-ACK retransmits.
 * Overflows themselves have no tracepoint (tcp_listendrop is inline), so
 * every event carries the listener's sk_drops for user space to difference.
 */
#ifndef SOCKLIFE_BACKLOG_BPF_H
#define SOCKLIFE_BACKLOG_BPF_H

#include "common.bpf.h"

/* Set by the loader when backlog accounting is wanted: off, the state
 * program skips the listener lookup at enqueue (and accept what it finds). */
volatile const __u8 want_queue;

/* The listener's queues, read now: accept-queue length and backlog, the
 * SYN (request) queue length and the listener's drop counter. ino is the
 * listener's inode if known (listeners keeps it), else 0. */
static __always_inline void fill_listener(struct event *e, const struct sock *lsk, __u64 ino)
{
	const struct inet_connection_sock *icsk = (const struct inet_connection_sock *)lsk;

	e->listener = (__u64)lsk;
	e->ack_backlog = BPF_CORE_READ(lsk, sk_ack_backlog);
	e->max_ack_backlog = BPF_CORE_READ(lsk, sk_max_ack_backlog);
	/* TCP listeners count drops in sk_drops alone; the per-NUMA
	 * counters of 6.18 are for UDP */
	e->listener_drops = BPF_CORE_READ(lsk, sk_drops.counter);
	e->syn_queue = BPF_CORE_READ(icsk, icsk_accept_queue.qlen.counter);
	e->listener_ino = ino ? ino : sock_ino(lsk);
	e->flags |= FLAG_LISTENER_KNOWN;
}

/* Enqueue: at SYN_RECV->ESTABLISHED the child is already on the listener's
 * accept queue (inet_csk_complete_hashdance ran in tcp_check_req). */
static __always_inline void fill_enqueue(struct event *e, struct sock_info *si, int old, int new,
					 __u32 netns, const struct tuple *tu)
{
	const struct listen_info *li;

	if (!want_queue || old != TCP_SYN_RECV || new != TCP_ESTABLISHED)
		return;
	e->flags |= FLAG_ENQUEUE;
	li = find_listener(netns, tu->sport, tu->saddr);
	if (!li)
		return;
	if (li->sk) {
		fill_listener(e, (const struct sock *)li->sk, li->ino);
		si->listener_found = 1;
	} else {
		/* seeded: no sock to read the queue from until the first accept
		 * or SYN-ACK retransmit teaches it; user space counts the
		 * enqueue against the listener it names */
		e->listener_ino = li->ino;
	}
}

/*
 * Teach listeners the sock of a listener user space seeded (it knows only
 * its inode), or of one older than the tracer that nobody seeded, so that
 * enqueues can read its queues. owner stands for the listener's owner in a
 * new entry: the acceptor, or NULL when there is nobody to name.
 */
static __always_inline void learn_listener(const struct sock *lsk, __u32 netns, __u16 port,
					   const struct task_id *owner)
{
	struct listen_key key = {};
	struct listen_info *cur;

	listen_key_of(lsk, netns, port, &key);
	cur = bpf_map_lookup_elem(&listeners, &key);
	if (!cur) {
		struct listen_info li = { .sk = (__u64)lsk, .ino = sock_ino(lsk) };

		if (owner) {
			li.owner = *owner;
			li.held_by_filter = filter_pid && owner->tgid == filter_pid;
		}
		bpf_map_update_elem(&listeners, &key, &li, BPF_NOEXIST);
		return;
	}
	if (!cur->sk) { /* seeded by user space: the owner is known */
		cur->ino = sock_ino(lsk);
		cur->sk = (__u64)lsk;
	}
	if (owner && filter_pid && owner->tgid == filter_pid)
		cur->held_by_filter = 1;
}

static __always_inline int on_synack(const struct sock *lsk, const struct request_sock *req,
				     __u8 hook)
{
	__u64 key = (__u64)lsk;
	struct sock_info none = {};
	struct sock_info *si = bpf_map_lookup_elem(&socks, &key);
	struct tuple tu = {};
	struct event *e;
	__u32 netns;

	if (!lsk || BPF_CORE_READ(lsk, sk_protocol) != IPPROTO_TCP ||
	    BPF_CORE_READ(lsk, __sk_common.skc_state) != TCP_LISTEN)
		return 0; /* a fast-open child retransmits too: not a queue matter */
	if (!si)
		si = &none;
	netns = sock_netns(lsk);
	sock_tuple(lsk, &tu);
	tu.dport = bpf_ntohs(BPF_CORE_READ(req, __req_common.skc_dport));
	skc_remote_addr(&req->__req_common, tu.family, tu.daddr);
	learn_listener(lsk, netns, tu.sport, NULL);
	if (!wanted(si, lsk, netns, &tu, TCP_LISTEN, TCP_LISTEN))
		return 0;
	e = reserve_event();
	if (!e)
		return 0;
	fill_common(e, lsk, bpf_ktime_get_ns(), si, netns, &tu);
	e->kind = EVENT_SYNACK_RETRANS;
	e->hook = hook;
	e->oldstate = TCP_LISTEN;
	e->newstate = TCP_LISTEN;
	fill_listener(e, lsk, 0);
	submit_event(e);
	return 0;
}

/* A listener retransmits a SYN-ACK when the client's final ACK was dropped
 * (the accept queue was full) or lost. */
SEC("raw_tracepoint/tcp_retransmit_synack")
int raw_synack(struct bpf_raw_tracepoint_args *ctx)
{
	return on_synack((const struct sock *)ctx->args[0],
			 (const struct request_sock *)ctx->args[1], HOOK_RAW_TRACEPOINT);
}

SEC("tracepoint/tcp/tcp_retransmit_synack")
int tp_synack(struct trace_event_raw_tcp_retransmit_synack *ctx)
{
	return on_synack(ctx->skaddr, ctx->req, HOOK_TRACEPOINT);
}

#endif
