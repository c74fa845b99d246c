// SPDX-License-Identifier: (GPL-2.0-only OR MIT)
/*
 * socklife: TCP state changes and accepts, one CO-RE object for every kernel.
 * The loader loads each program on its own, so a program this kernel refuses
 * only costs its feature. State changes here, accepts in accept.bpf.h.
 */
#include "common.bpf.h"
#include "backlog.bpf.h"
#include "aggregate.bpf.h"
#include "states.bpf.h"

char LICENSE[] SEC("license") = "Dual MIT/GPL";

/*
 * Put struct event and its enums in the BTF, where bpf2go -type finds them:
 * Go's mirror of the ring-buffer contract is generated, never copied.
 */
const struct event *unused_event __attribute__((unused));
const enum event_kind *unused_event_kind __attribute__((unused));
const enum event_hook *unused_event_hook __attribute__((unused));
const enum event_flag *unused_event_flag __attribute__((unused));
const enum lost_slot *unused_lost_slot __attribute__((unused));
const struct conn_totals *unused_conn_totals __attribute__((unused));
const struct close_wait *unused_close_wait __attribute__((unused)); /* the census's */
const struct accept_key *unused_accept_key __attribute__((unused));
const struct accept_totals *unused_accept_totals __attribute__((unused));
const struct tuple *unused_tuple __attribute__((unused));

#define PF_KTHREAD 0x00200000 /* include/linux/sched.h */

/*
 * Whether a transition runs in a process acting on the socket, so that the
 * running task is its owner. That is so exactly when the socket lock is
 * held by a process (lock_sock: connect, listen, close, shutdown, and the
 * packets its release_sock() processes from the socket's backlog). Softirq
 * never holds it: it processes a packet only when no process does
 * (sock_owned_by_user), on whatever task happens to be current (on
 * loopback, the sender). Kernel threads that lock a socket (MPTCP's
 * worker) act for its owner and do not replace it. A child not accepted
 * yet is never locked by a process: its listener's holders stand for it.
 */
static __always_inline bool in_owner_context(__u32 lock_owned)
{
	struct task_struct *task;

	if (!lock_owned)
		return false;
	if (bpf_core_enum_value_exists(enum bpf_func_id, BPF_FUNC_get_current_task_btf))
		return !(bpf_get_current_task_btf()->flags & PF_KTHREAD);
	task = (struct task_struct *)bpf_get_current_task();
	return !(BPF_CORE_READ(task, flags) & PF_KTHREAD);
}

/* A new child inherits the listener's owner until accept names its own. */
static __always_inline void inherit_listener(struct sock_info *si, __u32 netns,
					     const struct tuple *tu)
{
	struct listen_info *li = find_listener(netns, tu->sport, tu->saddr);

	if (!li)
		return;
	si->listener_ino = li->ino;
	si->held_by_filter = li->held_by_filter;
	if (li->owner.tgid) {
		si->owner = li->owner;
		si->owner_flag = FLAG_OWNER_LISTENER;
	}
}

/* Keep listeners current at CLOSE->LISTEN and LISTEN->CLOSE. */
static __always_inline void track_listener(const struct sock *sk, int new,
					   const struct sock_info *si, __u32 netns,
					   const struct tuple *tu)
{
	struct listen_key key = { .netns = netns, .port = tu->sport };
	struct listen_info *cur;

	__builtin_memcpy(key.addr, tu->saddr, 16);
	cur = bpf_map_lookup_elem(&listeners, &key);
	if (new == TCP_LISTEN) {
		struct listen_info li = { .sk = (__u64)sk, .ino = sock_ino(sk), .owner = si->owner };

		/* a SO_REUSEPORT peer's holder is held the group's */
		li.held_by_filter = (filter_pid && si->owner.tgid == filter_pid) ||
				    (cur && cur->held_by_filter);
		bpf_map_update_elem(&listeners, &key, &li, BPF_ANY);
		return;
	}
	/* only our own entry (SO_REUSEPORT peers share the key), or one user
	 * space seeded for a listener older than the tracer (sk 0) */
	if (cur && (cur->sk == (__u64)sk || !cur->sk))
		bpf_map_delete_elem(&listeners, &key);
}

/* btf: a tcp_sock the verifier typed from BTF, read by plain loads; else NULL. */
static __always_inline void close_stats(struct event *e, const struct sock *sk,
					const struct tcp_sock *btf)
{
	const struct tcp_sock *tp = (const struct tcp_sock *)sk;

	if (btf) {
		e->bytes_acked = btf->bytes_acked;
		e->bytes_received = btf->bytes_received;
		e->total_retrans = btf->total_retrans;
		e->srtt_us = btf->srtt_us >> 3;
	} else {
		e->bytes_acked = BPF_CORE_READ(tp, bytes_acked);
		e->bytes_received = BPF_CORE_READ(tp, bytes_received);
		e->total_retrans = BPF_CORE_READ(tp, total_retrans);
		e->srtt_us = BPF_CORE_READ(tp, srtt_us) >> 3; /* stored << 3 */
	}
	e->flags |= FLAG_CLOSE_STATS;
}

/*
 * One transition. btf is the same sock as a BTF-typed tcp_sock when the hook
 * has one (tp_btf), so that the fields it needs are plain loads, not a
 * helper call each; NULL otherwise.
 */
static __always_inline int on_state(const struct sock *sk, int old, int new,
				    const struct tuple *tu, __u8 hook,
				    const struct tcp_sock *btf)
{
	__u64 key = (__u64)sk;
	__u64 now = 0;
	struct sock_info fresh = {};
	struct sock_info *si = bpf_map_lookup_elem(&socks, &key);
	bool known = si != NULL;
	bool owner_now, ring;
	__u64 in_state = 0;
	bool in_state_known = false;
	__u32 netns;

	if (old == TCP_LISTEN && new == TCP_SYN_RECV)
		owner_now = false; /* a new child: see in_owner_context */
	else if (btf)
		owner_now = in_owner_context(btf->inet_conn.icsk_inet.sk.sk_lock.owned);
	else
		owner_now = in_owner_context(BPF_CORE_READ(sk, sk_lock.owned));
	if (!si) {
		si = &fresh;
		/* a socket older than the tracer: its owner from the snapshot.
		 * Not a new child: it is a copy of its listener, cookie
		 * included, until inet_csk_clone_lock() sets its own after
		 * LISTEN->SYN_RECV (seen on 6.1). */
		if (!(old == TCP_LISTEN && new == TCP_SYN_RECV))
			seed_owner(si, btf ? btf->inet_conn.icsk_inet.sk.__sk_common.skc_cookie.counter
					   : BPF_CORE_READ(sk, __sk_common.skc_cookie.counter));
	}
	/* one pointer from here on: else clang computes si->netns on the
	 * map value before its NULL check, which the verifier refuses */
	barrier_var(si);
	netns = si->netns;
	if (!netns) {
		netns = btf ? btf->inet_conn.icsk_inet.sk.__sk_common.skc_net.net->ns.inum
			    : sock_netns(sk);
		si->netns = netns;
	}
	/* read once per socket: it never changes, and an event reads it.
	 * Under aggregate no connection's event does, and the census reads
	 * it for the few sockets in CLOSE_WAIT: three helper calls a socket
	 * saved (unless a cgroup filter needs it). */
	if (!si->sock_cgroup && (!aggregate || filter_by_cgroup))
		si->sock_cgroup = sock_cgroup_id(sk);
	/* Under aggregate only these need the time: a listener's start and
	 * end ring; a child's entry into ESTABLISHED starts its accept wait;
	 * the census ages CLOSE_WAIT. A clock read (~25 ns in a VM) saved
	 * on six transitions of ten. */
	if (!aggregate || new == TCP_LISTEN || old == TCP_LISTEN || new == TCP_CLOSE_WAIT ||
	    (old == TCP_SYN_RECV && new == TCP_ESTABLISHED))
		now = bpf_ktime_get_ns();
	if (si->state_ts && now) {
		in_state = now - si->state_ts;
		in_state_known = true;
	}
	if (owner_now) {
		/* Under aggregate the owner names a process (serve's series are
		 * per process): the same process acting again keeps the comm
		 * and cgroup read the first time, two helper calls saved on
		 * most of a connection's transitions. trace names the thread
		 * that runs, each time, and pays no extra helper call for the
		 * check (short-circuit on a load-time constant). */
		if (!aggregate || si->owner_flag != FLAG_OWNER_TASK ||
		    si->owner.tgid != (__u32)(bpf_get_current_pid_tgid() >> 32))
			task_now(&si->owner);
		si->owner_flag = FLAG_OWNER_TASK;
	} else if (old == TCP_LISTEN && new == TCP_SYN_RECV && !si->owner_flag) {
		inherit_listener(si, netns, tu);
	}
	/* FIN_WAIT1 -> FIN_WAIT1 (shutdown, then close) is a real event, but
	 * the socket has been in FIN_WAIT1 since the first: keep that time. */
	if (old != new)
		si->state_ts = now; /* 0: not timed */
	si->state = new;

	ring = wanted(si, sk, netns, tu, old, new);
	if (aggregate) {
		if (old == TCP_LISTEN && new == TCP_CLOSE)
			forget_listener_accepts(sk, netns, tu->sport);
		if (ring)
			count_transition(netns, old, new);
		ring = ring && aggregate_rings(old, new);
	}
	if (ring) {
		struct event *e = reserve_event();

		if (e) {
			/* in the owner's context, the owner is who runs */
			fill_common_task(e, sk, now, si, netns, tu, owner_now ? &si->owner : NULL);
			e->kind = EVENT_STATE;
			e->hook = hook;
			e->oldstate = old;
			e->newstate = new;
			e->in_state_ns = in_state;
			if (in_state_known)
				e->flags |= FLAG_IN_STATE_KNOWN;
			if (new == TCP_CLOSE)
				close_stats(e, sk, btf);
			fill_enqueue(e, si, old, new, netns, tu);
			submit_event(e);
		}
	}

	/* a listener's own transitions; a child's LISTEN->SYN_RECV is not one */
	if (new == TCP_LISTEN || (old == TCP_LISTEN && new == TCP_CLOSE))
		track_listener(sk, new, si, netns, tu);
	if (new == TCP_CLOSE) {
		if (known) /* see socks */
			__builtin_memset(si, 0, sizeof(*si));
	} else if (!known)
		bpf_map_update_elem(&socks, &key, &fresh, BPF_ANY);
	return 0;
}

/* No tracefs needed; reads the tuple from the sock. */
SEC("raw_tracepoint/inet_sock_set_state")
int raw_state(struct bpf_raw_tracepoint_args *ctx)
{
	const struct sock *sk = (const struct sock *)ctx->args[0];
	struct tuple tu = {};

	if (BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
		return 0;
	sock_tuple(sk, &tu);
	return on_state(sk, (int)ctx->args[1], (int)ctx->args[2], &tu, HOOK_RAW_TRACEPOINT, NULL);
}

/*
 * An address array of the tracepoint record as two 8-byte loads off ctx (the
 * arrays are 8-byte aligned). A memcpy from ctx compiles to loads off a moved
 * ctx pointer, which the verifier refuses, and bpf_probe_read_kernel costs
 * a helper call (~30 ns) per array.
 */
static __always_inline void ctx_addr(__u8 out[16], const __u8 *lo, const __u8 *hi)
{
	__u64 a = *(const __u64 *)lo, b = *(const __u64 *)hi;

	__builtin_memcpy(out, &a, 8);
	__builtin_memcpy(out + 8, &b, 8);
}

/* The tracepoint has already copied the tuple for us. */
SEC("tracepoint/sock/inet_sock_set_state")
int tp_state(struct trace_event_raw_inet_sock_set_state *ctx)
{
	struct tuple tu = {};

	if (ctx->protocol != IPPROTO_TCP)
		return 0;
	tu.family = ctx->family;
	tu.sport = ctx->sport;
	tu.dport = ctx->dport;
	ctx_addr(tu.saddr, &ctx->saddr_v6[0], &ctx->saddr_v6[8]);
	ctx_addr(tu.daddr, &ctx->daddr_v6[0], &ctx->daddr_v6[8]);
	return on_state(ctx->skaddr, ctx->oldstate, ctx->newstate, &tu, HOOK_TRACEPOINT, NULL);
}

/*
 * The BTF-typed raw tracepoint: the verifier knows sk's type, so the tuple
 * and everything else are plain loads, where the raw tracepoint needs a
 * helper call per field and the classic one has the kernel copy a record
 * first.
 */
SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(btf_state, const struct sock *sk, int old, int new)
{
	const struct tcp_sock *tp;
	const struct sock_common *skc;
	struct tuple tu = {};

	/* NULL for anything but a full TCP sock (MPTCP, DCCP, SCTP) */
	tp = bpf_skc_to_tcp_sock((void *)sk);
	if (!tp)
		return 0;
	skc = &tp->inet_conn.icsk_inet.sk.__sk_common;
	tu.family = skc->skc_family;
	/* inet_sport, not skc_num: ->CLOSE clears skc_num before the tracepoint */
	tu.sport = bpf_ntohs(tp->inet_conn.icsk_inet.inet_sport);
	tu.dport = bpf_ntohs(skc->skc_dport);
	if (tu.family == AF_INET) {
		map_v4(tu.saddr, skc->skc_rcv_saddr);
		map_v4(tu.daddr, skc->skc_daddr);
	} else {
		__builtin_memcpy(tu.saddr, skc->skc_v6_rcv_saddr.in6_u.u6_addr8, 16);
		__builtin_memcpy(tu.daddr, skc->skc_v6_daddr.in6_u.u6_addr8, 16);
	}
	return on_state(sk, old, new, &tu, HOOK_TP_BTF, tp);
}

#include "accept.bpf.h"
