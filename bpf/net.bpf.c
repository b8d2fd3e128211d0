// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// Network family: the TCP connection lifecycle (IPv4 and IPv6), bytes sent and received and
// retransmits per connection, attributed to processes, without kprobes:
//   sock/inet_sock_set_state  lifecycle (created at SYN_SENT / SYN_RECV)
//   sock/sock_send_length, sock/sock_recv_length  bytes, in the context of the process doing I/O
//   tcp/tcp_retransmit_skb  retransmits
// Passive connections change state in softirq context, where "current" is whoever was
// interrupted: their owner is set by the first process that sends or receives on them.
#include "vmlinux.h"
#include "common.bpf.h"
#include <bpf/bpf_endian.h>
#include "net.h"

#define ST_AF_INET 2
#define ST_AF_INET6 10
#define ST_IPPROTO_TCP 6
#define ST_MSG_PEEK 2
#define ST_TCP_ESTABLISHED 1
#define ST_TCP_SYN_SENT 2
#define ST_TCP_SYN_RECV 3
#define ST_TCP_CLOSE 7

// Keyed by socket cookie, not by the sock address: a freed sock's memory is reused by the next
// connection at once, which would overwrite a closed entry user space has not read yet.
// Closed connections stay until user space has read them (it deletes them); LRU bounds it.
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 2048);
	__type(key, __u64);
	__type(value, struct st_tcp_conn);
} tcp_conns SEC(".maps");

// Bumped after every write to tcp_conns: the reader walks it again only when it moved.
ST_DECLARE_WRITES();

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 128 * 1024);
} tcp_events SEC(".maps");

ST_DECLARE_DROPS()

// Ring buffer record type, kept in the object's BTF.
struct st_tcp_event *st_btf_tcp_event __attribute__((unused));

// Scratch for a new entry (too big for the 512-byte stack together with the rest).
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct st_tcp_conn);
} tcp_scratch SEC(".maps");

static __always_inline bool is_tcp(const struct sock *sk)
{
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);

	if (family != ST_AF_INET && family != ST_AF_INET6)
		return false;
	return BPF_CORE_READ(sk, sk_protocol) == ST_IPPROTO_TCP;
}

static __always_inline void set_owner(struct st_tcp_conn *c)
{
	c->tgid = st_tgid();
	c->cgroup_id = bpf_get_current_cgroup_id();
	bpf_get_current_comm(&c->comm, sizeof(c->comm));
	c->flags |= ST_TCP_OWNER;
}

static __always_inline void fill_addrs(struct st_tcp_conn *c, const struct sock *sk)
{
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);

	c->family = family;
	c->sport = BPF_CORE_READ(sk, __sk_common.skc_num);
	c->dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (family == ST_AF_INET) {
		BPF_CORE_READ_INTO((__u32 *)c->saddr, sk, __sk_common.skc_rcv_saddr);
		BPF_CORE_READ_INTO((__u32 *)c->daddr, sk, __sk_common.skc_daddr);
	} else {
		BPF_CORE_READ_INTO(&c->saddr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
		BPF_CORE_READ_INTO(&c->daddr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
	}
}

static __always_inline void emit(__u32 type, __u64 key, int oldstate, int newstate, struct st_tcp_conn *c)
{
	struct st_tcp_event *e;

	if (!st_events_on())
		return;
	e = bpf_ringbuf_reserve(&tcp_events, sizeof(*e), 0);
	if (!e) {
		st_count_drop();
		return;
	}
	e->ts_ns = bpf_ktime_get_ns();
	e->sock = key;
	e->type = type;
	e->oldstate = oldstate;
	e->newstate = newstate;
	e->pad = 0;
	__builtin_memcpy(&e->conn, c, sizeof(*c));
	bpf_ringbuf_submit(e, 0);
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(st_tcp_set_state, const struct sock *sk, const int oldstate, const int newstate)
{
	__u64 key;
	struct st_tcp_conn *c;
	__u32 zero = 0;

	if (!is_tcp(sk))
		return 0;
	key = bpf_get_socket_cookie((void *)sk);
	if (newstate == ST_TCP_SYN_SENT || newstate == ST_TCP_SYN_RECV) {
		// connect() runs in the owner's context; SYN_RECV children do not.
		if (newstate == ST_TCP_SYN_SENT && !st_filter_pass())
			return 0;
		c = bpf_map_lookup_elem(&tcp_scratch, &zero);
		if (!c)
			return 0;
		__builtin_memset(c, 0, sizeof(*c));
		fill_addrs(c, sk);
		c->state = newstate;
		c->start_ns = bpf_ktime_get_ns();
		if (newstate == ST_TCP_SYN_SENT) {
			c->flags = ST_TCP_ACTIVE;
			set_owner(c);
		} else {
			c->flags = ST_TCP_PASSIVE;
		}
		bpf_map_update_elem(&tcp_conns, &key, c, BPF_ANY);
		st_count_write();
		return 0;
	}
	c = bpf_map_lookup_elem(&tcp_conns, &key);
	if (!c)
		return 0;
	c->state = newstate;
	if (newstate == ST_TCP_ESTABLISHED) {
		// Ports and addresses are final now (a passive child had them already; a
		// connect() may have bound the local port late).
		fill_addrs(c, sk);
		c->established_ns = bpf_ktime_get_ns();
		emit(ST_TCP_EV_OPEN, key, oldstate, newstate, c);
	} else if (newstate == ST_TCP_CLOSE) {
		c->end_ns = bpf_ktime_get_ns();
		c->flags |= ST_TCP_CLOSED;
		emit(ST_TCP_EV_CLOSE, key, oldstate, newstate, c);
	} else {
		emit(ST_TCP_EV_STATE, key, oldstate, newstate, c);
	}
	st_count_write();
	return 0;
}

static __always_inline struct st_tcp_conn *conn_for_io(struct sock *sk, __u64 *key)
{
	struct st_tcp_conn *c;

	*key = bpf_get_socket_cookie(sk);
	c = bpf_map_lookup_elem(&tcp_conns, key);
	if (!c)
		return 0;
	if (!(c->flags & ST_TCP_OWNER)) {
		// First I/O on an accepted connection: its owner is this process, if the filter keeps it.
		if (!st_filter_pass()) {
			bpf_map_delete_elem(&tcp_conns, key);
			st_count_write();
			return 0;
		}
		set_owner(c);
	}
	return c;
}

SEC("tp_btf/sock_send_length")
int BPF_PROG(st_sock_send, struct sock *sk, int ret, int flags)
{
	struct st_tcp_conn *c;
	__u64 key;

	if (ret <= 0)
		return 0;
	c = conn_for_io(sk, &key);
	if (c) {
		__sync_fetch_and_add(&c->bytes_sent, ret);
		st_count_write();
	}
	return 0;
}

SEC("tp_btf/sock_recv_length")
int BPF_PROG(st_sock_recv, struct sock *sk, int ret, int flags)
{
	struct st_tcp_conn *c;
	__u64 key;

	if (ret <= 0 || (flags & ST_MSG_PEEK))
		return 0;
	c = conn_for_io(sk, &key);
	if (c) {
		__sync_fetch_and_add(&c->bytes_received, ret);
		st_count_write();
	}
	return 0;
}

SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(st_tcp_retransmit, const struct sock *sk, const struct sk_buff *skb)
{
	__u64 key = bpf_get_socket_cookie((void *)sk);
	struct st_tcp_conn *c = bpf_map_lookup_elem(&tcp_conns, &key);

	if (c) {
		__sync_fetch_and_add(&c->retransmits, 1);
		st_count_write();
	}
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
