// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// Temperature and CPU power states from the kernel's own tracepoints:
//  - thermal/thermal_temperature, thermal/thermal_zone_trip: last temperature per zone, trip
//    crossings, and (when user space asked) one ring-buffer record per change or trip;
//  - power/cpu_frequency: time per CPU per frequency (residency);
//  - power/cpu_idle: time per CPU per idle state, and entries.
// Contexts are declared here with the tracepoint format's offsets (stable ABI), so the object
// also loads on kernels built without the thermal subsystem (the attach then fails, not the load).
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "thermal.h"

#define PWR_EVENT_EXIT ((__u32)-1)

// Keeps struct thermal_event in the object's BTF (ring buffers carry no value type), so
// user space can check its decoder against it.
struct thermal_event *st_thermal_event_btf __attribute__((unused));

struct {
  __uint(type, BPF_MAP_TYPE_RINGBUF);
  __uint(max_entries, 64 * 1024);
} thermal_events SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 256);
  __type(key, __s32);
  __type(value, struct thermal_zone_state);
} thermal_zones SEC(".maps");

// (cpu, kHz) and (cpu, idle state): bounded by CPUs x states, never churns. Not preallocated:
// a host holds CPUs x its states (tens to hundreds of entries), not the bound.
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 8192);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, struct cpu_state_key);
  __type(value, struct cpu_residency);
} freq_residency SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 8192);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, struct cpu_state_key);
  __type(value, struct cpu_residency);
} idle_residency SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, THERMAL_MAX_CPUS);
  __type(key, __u32);
  __type(value, struct cpu_current);
} cpu_current SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct thermal_config);
} thermal_config SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct thermal_prog_stats);
} thermal_prog SEC(".maps");

// include/trace/events/thermal.h
struct thermal_temperature_tp {
  __u64 common;
  __u32 zone_loc;  // __data_loc char[]: offset in the low 16 bits, length in the high 16
  __s32 id;
  __s32 temp_prev;
  __s32 temp;
};
struct thermal_zone_trip_tp {
  __u64 common;
  __u32 zone_loc;
  __s32 id;
  __s32 trip;
  __u32 trip_type;
};
// include/trace/events/power.h (DECLARE_EVENT_CLASS cpu)
struct cpu_tp {
  __u64 common;
  __u32 state;
  __u32 cpu_id;
};

static __always_inline struct thermal_prog_stats *prog_stats(void) {
  __u32 zero = 0;
  return bpf_map_lookup_elem(&thermal_prog, &zero);
}

static __always_inline bool events_wanted(void) {
  __u32 zero = 0;
  struct thermal_config *c = bpf_map_lookup_elem(&thermal_config, &zero);
  return c && c->emit_events;
}

static __always_inline void zone_name(void *ctx, __u32 loc, char *dst) {
  bpf_probe_read_kernel_str(dst, THERMAL_ZONE_NAME_LEN, (char *)ctx + (loc & 0xffff));
}

static __always_inline struct thermal_zone_state *zone(void *ctx, __s32 id, __u32 loc) {
  struct thermal_zone_state *z = bpf_map_lookup_elem(&thermal_zones, &id);
  if (z) return z;
  struct thermal_zone_state init = {};
  zone_name(ctx, loc, init.zone);
  bpf_map_update_elem(&thermal_zones, &id, &init, BPF_NOEXIST);
  return bpf_map_lookup_elem(&thermal_zones, &id);
}

static __always_inline void emit(void *ctx, __u32 kind, __s32 id, __u32 loc, __s32 prev, __s32 temp, __s32 trip,
                                 __u32 type) {
  if (!events_wanted()) return;
  struct thermal_event *e = bpf_ringbuf_reserve(&thermal_events, sizeof(*e), 0);
  if (!e) {
    struct thermal_prog_stats *ps = prog_stats();
    if (ps) __sync_fetch_and_add(&ps->events_dropped, 1);
    return;
  }
  e->ts_ns = bpf_ktime_get_ns();
  e->kind = kind;
  e->zone_id = id;
  e->temp_prev = prev;
  e->temp = temp;
  e->trip = trip;
  e->trip_type = type;
  zone_name(ctx, loc, e->zone);
  bpf_ringbuf_submit(e, 0);
}

SEC("tracepoint/thermal/thermal_temperature")
int thermal_temperature(struct thermal_temperature_tp *ctx) {
  __s32 id = ctx->id, prev = ctx->temp_prev, temp = ctx->temp;
  struct thermal_prog_stats *ps = prog_stats();
  if (ps) __sync_fetch_and_add(&ps->temp_events, 1);
  struct thermal_zone_state *z = zone(ctx, id, ctx->zone_loc);
  if (z) {
    z->temp_prev = prev;
    z->temp = temp;
    z->last_ts_ns = bpf_ktime_get_ns();
    __sync_fetch_and_add(&z->updates, 1);
  }
  if (prev != temp) emit(ctx, THERMAL_EV_TEMPERATURE, id, ctx->zone_loc, prev, temp, -1, 0);
  return 0;
}

SEC("tracepoint/thermal/thermal_zone_trip")
int thermal_zone_trip(struct thermal_zone_trip_tp *ctx) {
  __s32 id = ctx->id;
  struct thermal_prog_stats *ps = prog_stats();
  if (ps) __sync_fetch_and_add(&ps->trip_events, 1);
  struct thermal_zone_state *z = zone(ctx, id, ctx->zone_loc);
  __s32 t = 0;
  if (z) {
    z->last_trip = ctx->trip;
    z->last_trip_type = ctx->trip_type;
    z->last_ts_ns = bpf_ktime_get_ns();
    __sync_fetch_and_add(&z->trips, 1);
    t = z->temp;
  }
  emit(ctx, THERMAL_EV_TRIP, id, ctx->zone_loc, t, t, ctx->trip, ctx->trip_type);
  return 0;
}

static __always_inline void add_residency(void *map, __u32 cpu, __u32 state, __u64 ns) {
  struct cpu_state_key k = {.cpu = cpu, .state = state};
  struct cpu_residency *r = bpf_map_lookup_elem(map, &k);
  if (!r) {
    struct cpu_residency init = {};
    bpf_map_update_elem(map, &k, &init, BPF_NOEXIST);
    r = bpf_map_lookup_elem(map, &k);
    if (!r) return;
  }
  __sync_fetch_and_add(&r->ns, ns);
  __sync_fetch_and_add(&r->count, 1);
}

// cpu_frequency reports the new frequency of cpu_id (often from another CPU): close the
// interval at the old frequency, open one at the new.
SEC("tracepoint/power/cpu_frequency")
int cpu_frequency(struct cpu_tp *ctx) {
  __u32 cpu = ctx->cpu_id, khz = ctx->state;
  struct thermal_prog_stats *ps = prog_stats();
  if (ps) __sync_fetch_and_add(&ps->freq_events, 1);
  if (cpu >= THERMAL_MAX_CPUS) return 0;
  struct cpu_current *c = bpf_map_lookup_elem(&cpu_current, &cpu);
  if (!c) return 0;
  __u64 now = bpf_ktime_get_ns();
  if (c->freq_since_ns) add_residency(&freq_residency, cpu, c->freq_khz, now - c->freq_since_ns);
  c->freq_khz = khz;
  c->freq_since_ns = now;
  return 0;
}

// cpu_idle: state = idle state index on entry, PWR_EVENT_EXIT on exit; always on the CPU itself.
SEC("tracepoint/power/cpu_idle")
int cpu_idle(struct cpu_tp *ctx) {
  __u32 cpu = ctx->cpu_id, state = ctx->state;
  struct thermal_prog_stats *ps = prog_stats();
  if (ps) __sync_fetch_and_add(&ps->idle_events, 1);
  if (cpu >= THERMAL_MAX_CPUS) return 0;
  struct cpu_current *c = bpf_map_lookup_elem(&cpu_current, &cpu);
  if (!c) return 0;
  __u64 now = bpf_ktime_get_ns();
  if (state == PWR_EVENT_EXIT) {
    if (c->idle_since_ns) add_residency(&idle_residency, cpu, c->idle_state, now - c->idle_since_ns);
    c->idle_since_ns = 0;
  } else {
    c->idle_state = state;
    c->idle_since_ns = now;
  }
  return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
