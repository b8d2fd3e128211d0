// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// Structs shared between net.bpf.c and user space (lib/metrics/network).
#ifndef __ST_NET_H
#define __ST_NET_H

#define ST_TCP_ACTIVE 0x1	// we saw connect() (SYN_SENT)
#define ST_TCP_PASSIVE 0x2	// accepted side (SYN_RECV)
#define ST_TCP_OWNER 0x4	// tgid/comm known
#define ST_TCP_CLOSED 0x8	// reached TCP_CLOSE

#define ST_TCP_EV_OPEN 1	// reached ESTABLISHED
#define ST_TCP_EV_CLOSE 2	// reached CLOSE (totals final)
#define ST_TCP_EV_STATE 3	// any other state change

// Value of tcp_conns (key: socket cookie, unique per socket for the life of the system).
struct st_tcp_conn {
	__u8 saddr[16];		// local address (IPv4 in the first 4 bytes)
	__u8 daddr[16];		// remote address
	__u16 sport;		// local port, host order
	__u16 dport;		// remote port, host order
	__u16 family;		// AF_INET (2) or AF_INET6 (10)
	__u8 state;		// TCP state (1 ESTABLISHED ... 12)
	__u8 flags;		// ST_TCP_*
	__u32 tgid;		// owning process (0 while unknown)
	__u32 pad;
	__u64 start_ns;		// first state seen (SYN_SENT or SYN_RECV), CLOCK_MONOTONIC
	__u64 established_ns;
	__u64 end_ns;		// CLOSE
	__u64 bytes_sent;	// sendmsg() bytes accepted
	__u64 bytes_received;	// recvmsg() bytes returned (MSG_PEEK excluded)
	__u64 retransmits;
	__u64 cgroup_id;
	__u8 comm[16];
};

// Ring buffer record (tcp_events), only while a consumer asked for events.
struct st_tcp_event {
	__u64 ts_ns;
	__u64 sock;		// socket cookie (the tcp_conns key)
	__u32 type;		// ST_TCP_EV_*
	__s32 oldstate;
	__s32 newstate;
	__u32 pad;
	struct st_tcp_conn conn;
};

#endif /* __ST_NET_H */
