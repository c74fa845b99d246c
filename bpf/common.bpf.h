/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/*
 * Maps, load-time filters and helpers shared by the state and accept programs.
 */
#ifndef SOCKLIFE_COMMON_BPF_H
#define SOCKLIFE_COMMON_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_tracing.h>

#include "socklife.h"

#define AF_INET 2
#define AF_INET6 10

/*
 * Filters, set by the loader before load so the verifier sees constants and a
 * filtered-out event costs no ring space. 0 means "no filter".
 */
volatile const __u32 filter_pid;    /* owner tgid, not the current task */
volatile const __u32 filter_netns;  /* netns inode */
/* Port sets: up to MAX_FILTER_PORTS, the rest 0; empty is no filter. */
#define MAX_FILTER_PORTS 8
volatile const __u16 filter_ports[MAX_FILTER_PORTS];  /* either side */
volatile const __u16 filter_sports[MAX_FILTER_PORTS]; /* local port */
volatile const __u16 filter_dports[MAX_FILTER_PORTS]; /* remote port */
volatile const __u8 filter_family;  /* AF_INET (v4-mapped counts as IPv4) or AF_INET6 */
volatile const __u32 filter_states; /* 1 << state, matches the old or the new state */
/* keep only sockets of the cgroups in filter_cgroups: created in one, or
 * owned by a process in one (--container, --pod) */
volatile const __u8 filter_by_cgroup;
/* Wake the reader once this much is pending; below it the reader polls on a timer. */
volatile const __u64 wakeup_bytes = 256 * 1024;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20); /* the loader may resize */
} events SEC(".maps");

/* Per CPU, summed by the reader: reserve failures (the ring was full), and
 * accepts aggregate's map of listeners had no room for. */
enum lost_slot {
	LOST_RING = 0,
	LOST_LISTENER_ACCEPTS = 1,
	LOST_SLOTS,
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, LOST_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} lost SEC(".maps");

/*
 * What we know of a live socket: who owns it and when it entered its state.
 * All zero is "nothing known", the same as no entry.
 */
struct sock_info {
	struct task_id owner;
	__u64 state_ts; /* 0: not seen entering its state */
	/* a child's listener (its socket inode), for user space to name the
	 * listener's holders; 0: not a child, or its listener is unknown */
	__u64 listener_ino;
	/* 0, FLAG_OWNER_TASK, FLAG_OWNER_LISTENER or FLAG_OWNER_SEEDED */
	__u8 owner_flag;
	/* backlog: the enqueue found this child's listener, so its accept
	 * need not teach listeners about it */
	__u8 listener_found;
	/* a child not accepted yet whose listener filter_pid holds: filter_pid
	 * may be the one to accept it, so its events pass the pid filter */
	__u8 held_by_filter;
	/* the state it entered last (state_ts's), for the census to trust
	 * state_ts as a CLOSE_WAIT socket's entry into it */
	__u8 state;
	/* 0 until the state or accept program reads it; kept as a sock's netns
	 * never changes and the read costs two helper calls */
	__u32 netns;
	__u32 pad2;
	/* the sock's cgroup id, see sock_cgroup_id; 0 until an event reads it */
	__u64 sock_cgroup;
};

/*
 * Keyed by struct sock *. At ->CLOSE the entry is zeroed, not deleted: the
 * address is reused, mostly by the next socket, and finding a zeroed entry
 * spares that socket an insert and this one a delete (an LRU hash insert
 * costs ~250 ns here, a lookup ~40 ns). Zeroed entries of addresses never
 * reused are the first the LRU evicts.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1 << 18); /* the loader may resize */
	__type(key, __u64);
	__type(value, struct sock_info);
} socks SEC(".maps");

struct tuple {
	__u16 family;
	__u16 sport;
	__u16 dport;
	__u8 saddr[16];
	__u8 daddr[16];
};

static __always_inline void task_now(struct task_id *t)
{
	t->tgid = bpf_get_current_pid_tgid() >> 32;
	t->cgroup_id = bpf_get_current_cgroup_id();
	bpf_get_current_comm(t->comm, sizeof(t->comm));
}

static __always_inline __u32 sock_netns(const struct sock *sk)
{
	return BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
}

/* sock_cgroup_data of older kernels (5.10): the cgroup pointer, or with either low bit
 * set, net_cls/net_prio data in its place (a cgroup v1 host using them). */
struct sock_cgroup_data___old {
	__u64 val;
} __attribute__((preserve_access_index));

struct sock___old {
	struct sock_cgroup_data___old sk_cgrp_data;
} __attribute__((preserve_access_index));

/* The cgroup v2 id of the cgroup the sock was created in: the id of its
 * kernfs directory, as bpf_get_current_cgroup_id() gives a task's. */
static __always_inline __u64 sock_cgroup_id(const struct sock *sk)
{
	struct cgroup *cg;

	if (bpf_core_field_exists(struct sock_cgroup_data, cgroup)) {
		cg = BPF_CORE_READ(sk, sk_cgrp_data.cgroup);
	} else {
		__u64 v = BPF_CORE_READ((const struct sock___old *)sk, sk_cgrp_data.val);

		if (v & 3)
			return 0;
		cg = (struct cgroup *)v;
	}
	if (!cg)
		return 0;
	return BPF_CORE_READ(cg, kn, id);
}

static __always_inline void map_v4(__u8 out[16], __be32 addr)
{
	__builtin_memset(out, 0, 10);
	out[10] = 0xff;
	out[11] = 0xff;
	__builtin_memcpy(out + 12, &addr, 4);
}

/* The local (bound) and remote address of a sock or request sock, as the
 * tuple holds them: IPv4 v4-mapped. (tp_btf reads its typed sock by plain
 * loads instead, see btf_state.) */
static __always_inline void skc_local_addr(const struct sock_common *skc, __u16 family, __u8 out[16])
{
	if (family == AF_INET)
		map_v4(out, BPF_CORE_READ(skc, skc_rcv_saddr));
	else
		bpf_core_read(out, 16, &skc->skc_v6_rcv_saddr); /* out is a pointer: give the size */
}

static __always_inline void skc_remote_addr(const struct sock_common *skc, __u16 family, __u8 out[16])
{
	if (family == AF_INET)
		map_v4(out, BPF_CORE_READ(skc, skc_daddr));
	else
		bpf_core_read(out, 16, &skc->skc_v6_daddr);
}

/* The tuple straight from the sock, for hooks that get no tracepoint fields. */
static __always_inline void sock_tuple(const struct sock *sk, struct tuple *tu)
{
	tu->family = BPF_CORE_READ(sk, __sk_common.skc_family);
	/* inet_sport, not skc_num: ->CLOSE clears skc_num before the tracepoint */
	tu->sport = bpf_ntohs(BPF_CORE_READ((const struct inet_sock *)sk, inet_sport));
	tu->dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	skc_local_addr(&sk->__sk_common, tu->family, tu->saddr);
	skc_remote_addr(&sk->__sk_common, tu->family, tu->daddr);
}

static __always_inline bool is_v4mapped(const __u8 a[16])
{
	__u64 hi;
	__u32 mid;

	__builtin_memcpy(&hi, a, 8);
	__builtin_memcpy(&mid, a + 8, 4);
	return hi == 0 && mid == bpf_htonl(0xffff);
}

/*
 * Listeners by what they are bound to, so a child finds its own: several
 * listeners may share a port on different addresses. addr is the bound
 * address as the tuple holds it (IPv4 v4-mapped); a wildcard listener has
 * ::ffff:0.0.0.0 (IPv4) or :: (IPv6, dual-stack). SO_REUSEPORT groups share
 * a key: the last to listen (or accept) stands for the group.
 */
struct listen_key {
	__u32 netns;
	__u16 port;
	__u16 pad;
	__u8 addr[16];
};

struct listen_info {
	__u64 sk;  /* struct sock *; 0 in an entry user space seeded */
	__u64 ino; /* its socket's inode: kept, it never changes */
	struct task_id owner;
	/* filter_pid holds this listener (or one of its SO_REUSEPORT group):
	 * set by user space from /proc, and here when filter_pid listens or
	 * accepts on it */
	__u8 held_by_filter;
	__u8 pad[7];
};

/*
 * Filled at CLOSE->LISTEN; for listeners older than the tracer, by user
 * space (Tracer.SeedListeners), and their sock at the first accept or
 * SYN-ACK retransmit. It lends a new child its listener's owner and inode
 * until accept names the real owner, and backlog accounting the
 * listener's sock at enqueue.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct listen_key);
	__type(value, struct listen_info);
} listeners SEC(".maps");

/*
 * Owners of sockets older than the tracer, by socket cookie: user space
 * fills it from its start-up snapshot (Tracer.SeedOwners). sock_diag
 * generated each dumped socket's cookie, so the sock holds it now; a
 * socket this map names takes its owner from here at its first event,
 * which removes the entry. New sockets have cookie 0 and skip the lookup.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1 << 18); /* the loader may resize */
	__type(key, __u64);
	__type(value, struct task_id);
} seeded SEC(".maps");

/* The seeded owner of an older socket, if user space named one. */
static __always_inline void seed_owner(struct sock_info *si, __u64 cookie)
{
	struct task_id *o;

	if (!cookie)
		return;
	o = bpf_map_lookup_elem(&seeded, &cookie);
	if (!o)
		return;
	si->owner = *o;
	si->owner_flag = FLAG_OWNER_SEEDED;
	bpf_map_delete_elem(&seeded, &cookie);
}

/* The listeners key of a listening sock: what it is bound to. */
static __always_inline void listen_key_of(const struct sock *lsk, __u32 netns, __u16 port,
					  struct listen_key *key)
{
	key->netns = netns;
	key->port = port;
	skc_local_addr(&lsk->__sk_common, BPF_CORE_READ(lsk, __sk_common.skc_family), key->addr);
}

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

/* The listener a child on (addr, port) came from: the exact address first,
 * then the IPv4 wildcard (v4-mapped children only), then the IPv6 one. */
static __always_inline struct listen_info *find_listener(__u32 netns, __u16 port,
							  const __u8 addr[16])
{
	struct listen_key key = { .netns = netns, .port = port };
	struct listen_info *li;

	__builtin_memcpy(key.addr, addr, 16);
	li = bpf_map_lookup_elem(&listeners, &key);
	if (li)
		return li;
	__builtin_memset(key.addr, 0, 16);
	if (is_v4mapped(addr)) {
		key.addr[10] = 0xff;
		key.addr[11] = 0xff;
		li = bpf_map_lookup_elem(&listeners, &key);
		if (li)
			return li;
		key.addr[10] = 0;
		key.addr[11] = 0;
	}
	return bpf_map_lookup_elem(&listeners, &key);
}

/* Whether port is in set (a 0 ends it). The loop unrolls; the verifier
 * sees constants and drops what an empty set never runs. */
static __always_inline bool port_in(const volatile __u16 *set, __u16 port)
{
#pragma unroll
	for (int i = 0; i < MAX_FILTER_PORTS; i++) {
		if (!set[i])
			return false;
		if (set[i] == port)
			return true;
	}
	return false;
}

/*
 * The cgroups --container and --pod keep (each container's cgroup and those
 * below it); user space adds a container's as it appears.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);  /* cgroup id */
	__type(value, __u8); /* unused */
} filter_cgroups SEC(".maps");

/* One more lost in slot: what never reached user space is counted. */
static __always_inline void count_lost(__u32 slot)
{
	__u64 *n = bpf_map_lookup_elem(&lost, &slot);

	if (n)
		*n += 1;
}

/* Whether sk (si's) passes filter_by_cgroup: the cgroup it was created in,
 * or its owner's. */
static __always_inline bool cgroup_wanted(const struct sock_info *si, const struct sock *sk)
{
	__u64 cg = si->sock_cgroup;

	if (!cg)
		cg = sock_cgroup_id(sk);
	if (cg && bpf_map_lookup_elem(&filter_cgroups, &cg))
		return true;
	cg = si->owner.cgroup_id;
	return si->owner_flag && cg && bpf_map_lookup_elem(&filter_cgroups, &cg);
}

static __always_inline bool wanted(const struct sock_info *si, const struct sock *sk, __u32 netns,
				   const struct tuple *tu, int old, int new)
{
	if (filter_pid && !(si->owner_flag && si->owner.tgid == filter_pid) &&
	    !(si->owner_flag == FLAG_OWNER_LISTENER && si->held_by_filter))
		return false;
	if (filter_netns && netns != filter_netns)
		return false;
	if (filter_ports[0] && !port_in(filter_ports, tu->sport) && !port_in(filter_ports, tu->dport))
		return false;
	if (filter_sports[0] && !port_in(filter_sports, tu->sport))
		return false;
	if (filter_dports[0] && !port_in(filter_dports, tu->dport))
		return false;
	if (filter_states && !(filter_states & (1u << (old & 31))) &&
	    !(filter_states & (1u << (new & 31))))
		return false;
	if (filter_family) {
		bool v4 = tu->family == AF_INET || is_v4mapped(tu->saddr) ||
			  is_v4mapped(tu->daddr);
		if (v4 != (filter_family == AF_INET))
			return false;
	}
	if (filter_by_cgroup && !cgroup_wanted(si, sk))
		return false;
	return true;
}

static __always_inline struct event *reserve_event(void)
{
	struct event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);

	if (!e) {
		count_lost(LOST_RING);
		return NULL;
	}
	/* ring memory is not zeroed, and every byte of it reaches user space */
	__builtin_memset(e, 0, sizeof(*e));
	return e;
}

/*
 * A wake-up per event is what makes per-event tracers expensive: skip it
 * unless enough is pending, and let the reader's timer pick up the rest.
 */
static __always_inline void submit_event(struct event *e)
{
	__u64 flags = BPF_RB_NO_WAKEUP;

	if (bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= wakeup_bytes)
		flags = BPF_RB_FORCE_WAKEUP;
	bpf_ringbuf_submit(e, flags);
}

/* fe80::/10 */
static __always_inline bool link_local(const __u8 a[16])
{
	return a[0] == 0xfe && (a[1] & 0xc0) == 0x80;
}

/*
 * Fill the fields every event kind shares. current is the running task when
 * the caller has just read it (saving three helper calls), else NULL.
 */
static __always_inline void fill_common_task(struct event *e, const void *sk, __u64 now,
					     const struct sock_info *si, __u32 netns,
					     const struct tuple *tu, const struct task_id *current)
{
	e->ts_ns = now;
	e->skaddr = (__u64)sk;
	e->owner = si->owner;
	e->flags = si->owner_flag;
	e->listener_ino = si->listener_ino;
	if (current)
		e->current = *current;
	else
		task_now(&e->current);
	e->netns = netns;
	e->sock_cgroup = si->sock_cgroup ? si->sock_cgroup : sock_cgroup_id(sk);
	e->family = tu->family;
	e->sport = tu->sport;
	e->dport = tu->dport;
	__builtin_memcpy(e->saddr, tu->saddr, 16);
	__builtin_memcpy(e->daddr, tu->daddr, 16);
	/* A link-local address needs its zone, the device the kernel bound
	 * the socket to from the scope id. Read only then: a helper call the
	 * common case does without. */
	if (tu->family == AF_INET6 && (link_local(tu->saddr) || link_local(tu->daddr)))
		e->bound_dev_if = BPF_CORE_READ((const struct sock_common *)sk, skc_bound_dev_if);
}

static __always_inline void fill_common(struct event *e, const void *sk, __u64 now,
					const struct sock_info *si, __u32 netns,
					const struct tuple *tu)
{
	fill_common_task(e, sk, now, si, netns, tu, NULL);
}

#endif
