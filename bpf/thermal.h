// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// Structs shared by bpf/thermal.bpf.c and user space (lib/metrics/thermal). Fixed-size fields only.
#ifndef SMOOTHTASK_THERMAL_H
#define SMOOTHTASK_THERMAL_H

#define THERMAL_ZONE_NAME_LEN 20
#define THERMAL_MAX_CPUS 1024

#define THERMAL_EV_TEMPERATURE 1
#define THERMAL_EV_TRIP 2

// Ring buffer record: a temperature change or a trip point crossed.
struct thermal_event {
  __u64 ts_ns;      // bpf_ktime_get_ns (CLOCK_MONOTONIC)
  __u32 kind;       // THERMAL_EV_*
  __s32 zone_id;
  __s32 temp_prev;  // millidegrees Celsius (temperature events)
  __s32 temp;       // millidegrees Celsius (temperature events)
  __s32 trip;       // trip index (trip events)
  __u32 trip_type;  // enum thermal_trip_type: 0 active, 1 passive, 2 hot, 3 critical
  char zone[THERMAL_ZONE_NAME_LEN];
};

// Last state of a thermal zone, key: zone id.
struct thermal_zone_state {
  __s32 temp;
  __s32 temp_prev;
  __u64 updates;
  __u64 trips;
  __u64 last_ts_ns;
  __s32 last_trip;
  __u32 last_trip_type;
  char zone[THERMAL_ZONE_NAME_LEN];
  __u32 pad;
};

// Residency key: (cpu, frequency in kHz) or (cpu, idle state index).
struct cpu_state_key {
  __u32 cpu;
  __u32 state;
};

// Residency value: nanoseconds spent in the state (closed intervals) and entries.
struct cpu_residency {
  __u64 ns;
  __u64 count;
};

// Current state of a CPU (array index: cpu id). since_ns == 0: no transition seen yet.
struct cpu_current {
  __u64 freq_since_ns;
  __u32 freq_khz;
  __u32 idle_state;  // index of the idle state entered, valid while idle_since_ns != 0
  __u64 idle_since_ns;
};

// Runtime settings (array index 0), written by user space without a reload.
struct thermal_config {
  __u32 emit_events;  // send thermal_event records through the ring buffer
  __u32 pad;
};

// Counters of the program itself (array index 0).
struct thermal_prog_stats {
  __u64 events_dropped;  // ring buffer full
  __u64 freq_events;
  __u64 idle_events;
  __u64 temp_events;
  __u64 trip_events;
};

#endif
