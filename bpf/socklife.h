/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/*
 * The one record socklife's BPF programs write to the ring buffer. Go gets
 * its mirror from bpf2go (-type event); change it here only.
 */
#ifndef SOCKLIFE_H
#define SOCKLIFE_H

enum event_kind {
	EVENT_STATE = 1,  /* sock:inet_sock_set_state */
	EVENT_ACCEPT = 2, /* a child socket left the accept queue */
	/* tcp:tcp_retransmit_synack on a listener: skaddr is the listener,
	 * dport/daddr the client whose final ACK is awaited */
	EVENT_SYNACK_RETRANS = 3,
};

/* Which hook wrote the event, so user space can say where data came from. */
enum event_hook {
	HOOK_RAW_TRACEPOINT = 1,
	HOOK_TRACEPOINT = 2,
	HOOK_FEXIT = 3,
	HOOK_KRETPROBE = 4,
	HOOK_SYSCALL_TRACEPOINT = 5,
	HOOK_TP_BTF = 6, /* BTF-typed raw tracepoint */
};

enum event_flag {
	/* owner was set by the owning process: a process-context transition or accept */
	FLAG_OWNER_TASK = 1 << 0,
	/* owner was inherited from the listener: a child not accepted yet */
	FLAG_OWNER_LISTENER = 1 << 1,
	/* in_state_ns holds the time in the old state (0 is a real value) */
	FLAG_IN_STATE_KNOWN = 1 << 2,
	/* listener, ack_backlog, max_ack_backlog, listener_drops
	 * and syn_queue are filled (accept, synack retransmit, and with
	 * backlog accounting on, a child's SYN_RECV->ESTABLISHED: enqueue) */
	FLAG_LISTENER_KNOWN = 1 << 3,
	/* bytes_acked ... srtt_us are filled (a transition to CLOSE) */
	FLAG_CLOSE_STATS = 1 << 4,
	/* owner came from user space's start-up snapshot (the socket predates
	 * the tracer): the process the /proc scan found holding it */
	FLAG_OWNER_SEEDED = 1 << 5,
	/* a child entered its listener's accept queue (SYN_RECV->ESTABLISHED,
	 * backlog accounting on); the queue fields are filled only with
	 * FLAG_LISTENER_KNOWN, when the listener's sock is known */
	FLAG_ENQUEUE = 1 << 6,
};

struct task_id {
	__u64 cgroup_id;
	__u32 tgid;
	__u8 comm[16]; /* not NUL-terminated when 16 long */
};

struct event {
	__u64 ts_ns;       /* bpf_ktime_get_ns: CLOCK_MONOTONIC */
	__u64 skaddr;      /* struct sock *: the socket's identity while it lives */
	__u64 listener;    /* accept: the listening struct sock *, if the hook sees it */
	__u64 in_state_ns; /* time spent in oldstate (accept: time since ESTABLISHED) */
	__u64 bytes_acked;
	__u64 bytes_received;
	struct task_id owner;   /* from the socks map, see FLAG_OWNER_* */
	struct task_id current; /* whoever ran the hook: in softirq, often not the owner */
	__u32 netns;            /* network namespace inode number */
	__u32 total_retrans;
	__u32 srtt_us;
	__u32 ack_backlog;     /* accept-queue length after this dequeue (accept) or enqueue */
	__u32 max_ack_backlog; /* accept: the listen() backlog */
	__u16 sport;           /* host order */
	__u16 dport;           /* host order */
	__u8 saddr[16];        /* IPv4 as v4-mapped IPv6 */
	__u8 daddr[16];
	__u8 kind;     /* enum event_kind */
	__u8 hook;     /* enum event_hook */
	__u8 family;   /* AF_INET or AF_INET6 */
	__u8 oldstate; /* TCP_* (accept: the child's state, both) */
	__u8 newstate;
	__u8 flags; /* enum event_flag */
	__u8 pad[2];
	/* inode of the listener's socket (sock_diag's idiag_inode), when known:
	 * a child's listener, or the listener of an accept or enqueue; 0 else */
	__u64 listener_ino;
	/* Listener fields, with FLAG_LISTENER_KNOWN (added after the above). */
	__u32 listener_drops; /* the listener's sk_drops: overflows and other drops */
	__u32 syn_queue;      /* request (SYN) queue length, icsk_accept_queue.qlen */
	/* the socket's bound device when an address is link-local IPv6: the
	 * zone it means nothing without (fe80::1%eth0); 0 otherwise */
	__u32 bound_dev_if;
	__u32 pad2;
	/* the cgroup v2 id the socket was created in (sk_cgrp_data), which a
	 * child copies from its listener: names a container when the socket
	 * has left it for a host process, or its owner is not known. 0 when
	 * the kernel keeps none (older kernels in cgroup v1 net_cls/net_prio mode). */
	__u64 sock_cgroup;
};

#endif
