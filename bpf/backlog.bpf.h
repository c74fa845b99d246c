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
 * program skips the listener lookup at enqueue. */
volatile const __u8 want_queue;

/* The inode of a sock's struct socket: what sock_diag calls idiag_inode. */
static __always_inline __u64 sock_ino(const struct sock *sk)
{
	struct socket *sock = BPF_CORE_READ(sk, sk_socket);
	struct socket_alloc *sa;

	if (!sock)
		return 0;
	sa = container_of(sock, struct socket_alloc, socket);
	return BPF_CORE_READ(sa, vfs_inode.i_ino);
}

/* The listener's queues, read now: accept-queue length and backlog, the
 * SYN (request) queue length and the listener's drop counter. ino is the
 * listener's inode if known (queue_listeners keeps it), else 0. */
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

/*
 * Listeners by what they are bound to, so a child finds its own: several
 * listeners may share a port on different addresses. addr is the bound
 * address as the tuple holds it (IPv4 v4-mapped); a wildcard listener has
 * ::ffff:0.0.0.0 (IPv4) or :: (IPv6, dual-stack). SO_REUSEPORT groups share
 * a key: the last to listen (or accept) stands for the group.
 */
struct queue_key {
	__u32 netns;
	__u16 port;
	__u16 pad;
	__u8 addr[16];
};

/* The inode is kept to spare every enqueue two reads: it never changes. */
struct queue_listener {
	__u64 sk; /* struct sock * */
	__u64 ino;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct queue_key);
	__type(value, struct queue_listener);
} queue_listeners SEC(".maps");

/* Keep queue_listeners current at CLOSE->LISTEN and LISTEN->CLOSE. */
static __always_inline void track_queue_listener(const struct sock *sk, int new, __u32 netns,
						 const struct tuple *tu)
{
	struct queue_key key = { .netns = netns, .port = tu->sport };
	struct queue_listener *cur;

	if (!want_queue)
		return;
	__builtin_memcpy(key.addr, tu->saddr, 16);
	if (new == TCP_LISTEN) {
		struct queue_listener ql = { .sk = (__u64)sk, .ino = sock_ino(sk) };

		bpf_map_update_elem(&queue_listeners, &key, &ql, BPF_ANY);
		return;
	}
	cur = bpf_map_lookup_elem(&queue_listeners, &key);
	if (cur && cur->sk == (__u64)sk)
		bpf_map_delete_elem(&queue_listeners, &key);
}

/* The listener a child on (addr, port) came from: the exact address first,
 * then the IPv4 wildcard (v4-mapped children only), then the IPv6 one. */
static __always_inline const struct queue_listener *known_listener(__u32 netns, __u16 port,
								   const __u8 addr[16])
{
	struct queue_key key = { .netns = netns, .port = port };
	const struct queue_listener *lsk;

	__builtin_memcpy(key.addr, addr, 16);
	lsk = bpf_map_lookup_elem(&queue_listeners, &key);
	if (lsk)
		return lsk;
	__builtin_memset(key.addr, 0, 16);
	if (is_v4mapped(addr)) {
		key.addr[10] = 0xff;
		key.addr[11] = 0xff;
		lsk = bpf_map_lookup_elem(&queue_listeners, &key);
		if (lsk)
			return lsk;
		key.addr[10] = 0;
		key.addr[11] = 0;
	}
	return bpf_map_lookup_elem(&queue_listeners, &key);
}

/*
 * Learn a listener from an accept on it, so listeners that predate the
 * tracer (no CLOSE->LISTEN seen) are found at enqueue from then on. The
 * child shares the listener's netns and port; only the bound address is
 * the listener's own.
 */
static __always_inline void learn_listener(const struct sock *lsk, __u32 netns, __u16 port)
{
	struct queue_key key = { .netns = netns, .port = port };
	struct queue_listener ql = { .sk = (__u64)lsk };

	if (BPF_CORE_READ(lsk, __sk_common.skc_family) == AF_INET)
		map_v4(key.addr, BPF_CORE_READ(lsk, __sk_common.skc_rcv_saddr));
	else
		BPF_CORE_READ_INTO(&key.addr, lsk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
	if (!bpf_map_lookup_elem(&queue_listeners, &key)) {
		ql.ino = sock_ino(lsk);
		bpf_map_update_elem(&queue_listeners, &key, &ql, BPF_NOEXIST);
	}
}

/* Enqueue: at SYN_RECV->ESTABLISHED the child is already on the listener's
 * accept queue (inet_csk_complete_hashdance ran in tcp_check_req). */
static __always_inline void fill_enqueue(struct event *e, struct sock_info *si, int old, int new,
					 __u32 netns, const struct tuple *tu)
{
	const struct queue_listener *ql;

	if (!want_queue || old != TCP_SYN_RECV || new != TCP_ESTABLISHED)
		return;
	ql = known_listener(netns, tu->sport, tu->saddr);
	if (ql) {
		fill_listener(e, (const struct sock *)ql->sk, ql->ino);
		si->listener_found = 1;
	}
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
	if (tu.family == AF_INET)
		map_v4(tu.daddr, BPF_CORE_READ(req, __req_common.skc_daddr));
	else
		BPF_CORE_READ_INTO(&tu.daddr, req, __req_common.skc_v6_daddr.in6_u.u6_addr8);
	if (!wanted(si, netns, &tu, TCP_LISTEN, TCP_LISTEN))
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
