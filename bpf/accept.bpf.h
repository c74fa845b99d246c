/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/*
 * Accept: the moment a child leaves the listener's queue, and who took it.
 * Three rungs, best first: fexit and kretprobe on inet_csk_accept, and the
 * accept/accept4 syscall tracepoints where the kernel allows neither.
 */
#ifndef SOCKLIFE_ACCEPT_BPF_H
#define SOCKLIFE_ACCEPT_BPF_H

#include "common.bpf.h"
#include "backlog.bpf.h"
#include "aggregate.bpf.h"

/* Listener of each thread inside accept(), from the entry hook. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);   /* pid_tgid */
	__type(value, __u64); /* struct sock * */
} accepting SEC(".maps");

static __always_inline bool is_tcp(const struct sock *sk)
{
	__u16 family;

	if (!sk || BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
		return false;
	family = BPF_CORE_READ(sk, __sk_common.skc_family);
	return family == AF_INET || family == AF_INET6;
}

/* An accept of sk, a TCP sock (see on_accept), from listener lsk if known. */
static __always_inline int on_tcp_accept(const struct sock *lsk, const struct sock *sk, __u8 hook)
{
	__u64 key = (__u64)sk;
	__u64 now = bpf_ktime_get_ns();
	struct sock_info fresh = {};
	struct sock_info *si;
	struct tuple tu = {};
	struct event *e;
	bool inherited, wait_known;
	__u32 netns;
	__u8 state;

	si = bpf_map_lookup_elem(&socks, &key);
	if (!si) {
		/* accepted before we started: nothing knows its state time */
		bpf_map_update_elem(&socks, &key, &fresh, BPF_NOEXIST);
		si = bpf_map_lookup_elem(&socks, &key);
		if (!si)
			return 0;
	}
	/* whether the handshake found its listener's owner: not for a listener
	 * older than the tracer that user space did not seed */
	inherited = si->owner_flag == FLAG_OWNER_LISTENER;
	/* the accepting process owns the child from now on */
	task_now(&si->owner);
	si->owner_flag = FLAG_OWNER_TASK;

	netns = si->netns;
	if (!netns) {
		netns = sock_netns(sk);
		si->netns = netns;
	}
	sock_tuple(sk, &tu);
	/* a listener older than the tracer: its sock (and, if nobody seeded
	 * it, the acceptor for its owner); filter_pid accepting on it holds it */
	if (lsk && (!inherited || (want_queue && !si->listener_found) ||
		    (filter_pid && si->owner.tgid == filter_pid)))
		learn_listener(lsk, netns, tu.sport, &si->owner);
	state = BPF_CORE_READ(sk, __sk_common.skc_state);
	if (!wanted(si, sk, netns, &tu, state, state))
		return 0;
	/* the time since the handshake completed: the wait in the accept queue */
	wait_known = si->state_ts && state == TCP_ESTABLISHED;
	if (aggregate) {
		struct accept_key akey = { .ino = lsk ? sock_ino(lsk) : 0, .netns = netns, .port = tu.sport };

		count_accept(&akey, now, wait_known, now - si->state_ts, si->owner.tgid);
		return 0;
	}
	e = reserve_event();
	if (!e)
		return 0;
	/* the owner was set from the running task just above */
	fill_common_task(e, sk, now, si, netns, &tu, &si->owner);
	e->kind = EVENT_ACCEPT;
	e->hook = hook;
	e->oldstate = state;
	e->newstate = state;
	if (wait_known) {
		e->in_state_ns = now - si->state_ts;
		e->flags |= FLAG_IN_STATE_KNOWN;
	}
	if (lsk) {
		fill_listener(e, lsk, 0);
		si->listener_ino = e->listener_ino;
	}
	submit_event(e);
	return 0;
}

/* The same for hooks that have not checked sk yet. */
static __always_inline int on_accept(const struct sock *lsk, const struct sock *sk, __u8 hook)
{
	if (!is_tcp(sk))
		return 0;
	return on_tcp_accept(lsk, sk, hook);
}

/*
 * inet_csk_accept(sk, flags, err, kern) until 6.9, (sk, struct proto_accept_arg *)
 * since 6.10: fexit finds the return value after the last argument, so each
 * prototype has its program and the loader picks by the kernel's BTF. (One
 * program choosing with bpf_core_type_exists compiles to a load off a moved
 * ctx pointer, which the verifier refuses.)
 */
SEC("fexit/inet_csk_accept")
int BPF_PROG(fexit_accept, const struct sock *lsk, struct proto_accept_arg *arg,
	     const struct sock *sk)
{
	return on_accept(lsk, sk, HOOK_FEXIT);
}

SEC("fexit/inet_csk_accept")
int BPF_PROG(fexit_accept_pre610, const struct sock *lsk, int flags, int *err, bool kern,
	     const struct sock *sk)
{
	return on_accept(lsk, sk, HOOK_FEXIT);
}

SEC("kprobe/inet_csk_accept")
int BPF_KPROBE(kprobe_accept, const struct sock *lsk)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u64 lsk_addr = (__u64)lsk;

	bpf_map_update_elem(&accepting, &id, &lsk_addr, BPF_ANY);
	return 0;
}

SEC("kretprobe/inet_csk_accept")
int BPF_KRETPROBE(kretprobe_accept, const struct sock *sk)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u64 *lsk = bpf_map_lookup_elem(&accepting, &id);
	const struct sock *listener = NULL;

	if (lsk) {
		listener = (const struct sock *)*lsk;
		bpf_map_delete_elem(&accepting, &id);
	}
	return on_accept(listener, sk, HOOK_KRETPROBE);
}

/*
 * An MPTCP socket (what Go listens on by default since 1.24) runs TCP in
 * its subflows; the first one is the TCP sock whose states we trace,
 * including after a fallback to plain TCP.
 */
static __always_inline const struct sock *tcp_of(const struct sock *sk)
{
	if (!sk || BPF_CORE_READ(sk, sk_protocol) != IPPROTO_MPTCP)
		return sk;
	if (!bpf_core_field_exists(struct mptcp_sock, first))
		return NULL;
	return BPF_CORE_READ((const struct mptcp_sock *)sk, first);
}

/* The sock of a socket file, or NULL for any other file. */
static __always_inline const struct sock *file_sock(const struct file *f)
{
	struct socket *sock;

	if (!f)
		return NULL;
	sock = BPF_CORE_READ(f, private_data);
	/* private_data of a non-socket file is something else: check the back pointer */
	if (!sock || BPF_CORE_READ(sock, file) != f)
		return NULL;
	return tcp_of(BPF_CORE_READ(sock, sk));
}

/* fd -> struct file -> struct socket -> sk, in the current task's table. */
static __always_inline const struct sock *fd_sock(long fd)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	struct file **fds;
	struct file *f = NULL;

	if (!fdt || fd < 0 || fd >= BPF_CORE_READ(fdt, max_fds))
		return NULL;
	fds = BPF_CORE_READ(fdt, fd);
	if (bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]))
		return NULL;
	return file_sock(f);
}

/*
 * The same from a BTF-typed task (5.11+): the task, its files and fdtable
 * are plain loads; the fd array holds untyped pointers, read by helper.
 */
static __always_inline const struct sock *task_fd_sock(struct task_struct *task, long fd)
{
	struct fdtable *fdt = task->files->fdt;
	struct file *f = NULL;

	if (fd < 0 || fd >= fdt->max_fds)
		return NULL;
	if (bpf_probe_read_kernel(&f, sizeof(f), &fdt->fd[fd]))
		return NULL;
	return file_sock(f);
}

/*
 * sys_exit_accept and sys_exit_accept4 alone (5.15+, bpf_task_pt_regs): the
 * new fd holds the child, and the first argument, still in the task's saved
 * registers, the listener. One hook per accept instead of two, and nothing
 * kept between them.
 */
SEC("tracepoint/syscalls/sys_exit_accept4")
int sys_exit_accept_regs(struct trace_event_raw_sys_exit *ctx)
{
	struct task_struct *task;
	struct pt_regs *regs;
	const struct sock *sk;

	if (ctx->ret < 0)
		return 0;
	task = bpf_get_current_task_btf();
	sk = task_fd_sock(task, ctx->ret);
	if (!is_tcp(sk))
		return 0; /* most accepts on other families end here */
	regs = (struct pt_regs *)bpf_task_pt_regs(task);
	return on_tcp_accept(task_fd_sock(task, (int)regs->di), sk, HOOK_SYSCALL_TRACEPOINT);
}

/* Before 5.15: sys_enter_accept and sys_enter_accept4 remember the listener
 * of TCP accepts for the exit. */
SEC("tracepoint/syscalls/sys_enter_accept4")
int sys_enter_accept(struct trace_event_raw_sys_enter *ctx)
{
	const struct sock *lsk = fd_sock((long)ctx->args[0]);
	__u64 id = bpf_get_current_pid_tgid();
	__u64 lsk_addr = (__u64)lsk;

	if (!is_tcp(lsk))
		return 0;
	bpf_map_update_elem(&accepting, &id, &lsk_addr, BPF_ANY);
	return 0;
}

/*
 * sys_exit_accept and sys_exit_accept4 before 5.15. A thread that was
 * already blocked in accept() when we attached has no entry: its child is
 * still reported, with the listener the tracer knows for the child's port,
 * if any.
 */
SEC("tracepoint/syscalls/sys_exit_accept4")
int sys_exit_accept(struct trace_event_raw_sys_exit *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u64 *lsk = bpf_map_lookup_elem(&accepting, &id);
	const struct sock *listener = NULL;
	const struct listen_info *li;
	const struct sock *sk;
	struct tuple tu = {};

	if (lsk) {
		listener = (const struct sock *)*lsk;
		bpf_map_delete_elem(&accepting, &id);
	}
	if (ctx->ret < 0)
		return 0;
	sk = fd_sock(ctx->ret);
	if (!is_tcp(sk)) /* also every non-TCP accept with no entry */
		return 0;
	if (!lsk) {
		sock_tuple(sk, &tu);
		li = find_listener(sock_netns(sk), tu.sport, tu.saddr);
		listener = li ? (const struct sock *)li->sk : NULL;
	}
	return on_tcp_accept(listener, sk, HOOK_SYSCALL_TRACEPOINT);
}

#endif
