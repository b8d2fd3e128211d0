// What this host supports: program and map types through libbpf's probes, helpers, and
// attach types through real small loads and attachments (load + attach + close), since a
// type the kernel can verify may still be refused at attach time (fentry: EPERM here).
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <linux/perf_event.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <string>

#include "errors.h"
#include "module.h"

namespace smoothtask {
namespace {

struct Result {
  bool supported = false;
  std::string reason;
};

const bpf_insn kRet0[] = {
    {BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 0},
    {BPF_JMP | BPF_EXIT, 0, 0, 0, 0},
};

std::string Errno(int err) {
  if (err < 0) err = -err;
  return std::string(std::strerror(err)) + " (errno " + std::to_string(err) + ")";
}

int LoadProg(bpf_prog_type type, bpf_attach_type attach, uint32_t btfId, std::string* why) {
  LIBBPF_OPTS(bpf_prog_load_opts, opts);
  opts.expected_attach_type = attach;
  opts.attach_btf_id = btfId;
  int fd = bpf_prog_load(type, "st_probe", "GPL", kRet0, 2, &opts);
  if (fd < 0) *why = "program load failed: " + Errno(errno);
  return fd;
}

long PerfEventOpen(perf_event_attr* attr, int pid, int cpu) {
  return syscall(__NR_perf_event_open, attr, pid, cpu, -1, PERF_FLAG_FD_CLOEXEC);
}

int ReadInt(const std::string& path) {
  std::ifstream f(path);
  int v = -1;
  if (!(f >> v)) return -1;
  return v;
}

int VmlinuxId(const struct btf* vmlinux, const char* name, int kind) {
  if (!vmlinux) return -1;
  int id = btf__find_by_name_kind(vmlinux, name, kind);
  return id;
}

Result ProbeTracepoint() {
  Result r;
  int id = ReadInt("/sys/kernel/tracing/events/syscalls/sys_enter_getpid/id");
  if (id < 0) id = ReadInt("/sys/kernel/debug/tracing/events/syscalls/sys_enter_getpid/id");
  if (id < 0) return {false, "tracefs events not readable (mount tracefs at /sys/kernel/tracing)"};
  int fd = LoadProg(BPF_PROG_TYPE_TRACEPOINT, static_cast<bpf_attach_type>(0), 0, &r.reason);
  if (fd < 0) return r;
  perf_event_attr attr;
  std::memset(&attr, 0, sizeof(attr));
  attr.type = PERF_TYPE_TRACEPOINT;
  attr.size = sizeof(attr);
  attr.config = id;
  attr.sample_period = 1;
  attr.wakeup_events = 1;
  long pfd = PerfEventOpen(&attr, -1, 0);
  if (pfd < 0) {
    r.reason = "perf_event_open(tracepoint) failed: " + Errno(errno);
  } else {
    if (ioctl(pfd, PERF_EVENT_IOC_SET_BPF, fd) == 0) {
      r.supported = true;
      r.reason = "attached to syscalls/sys_enter_getpid";
    } else {
      r.reason = "PERF_EVENT_IOC_SET_BPF failed: " + Errno(errno);
    }
    close(pfd);
  }
  close(fd);
  return r;
}

Result ProbeRawTp() {
  Result r;
  int fd = LoadProg(BPF_PROG_TYPE_RAW_TRACEPOINT, static_cast<bpf_attach_type>(0), 0, &r.reason);
  if (fd < 0) return r;
  int l = bpf_raw_tracepoint_open("sys_enter", fd);
  if (l >= 0) {
    r = {true, "attached to raw tracepoint sys_enter"};
    close(l);
  } else {
    r.reason = "raw tracepoint attach failed: " + Errno(errno);
  }
  close(fd);
  return r;
}

// Loads a BPF_PROG_TYPE_TRACING program for `attach` against BTF type `target` and attaches it.
Result ProbeTracing(const struct btf* vmlinux, bpf_attach_type attach, const char* target, int kind, const char* feature) {
  Result r;
  if (!vmlinux) return {false, "no kernel BTF (/sys/kernel/btf/vmlinux)"};
  int id = VmlinuxId(vmlinux, target, kind);
  if (id <= 0) return {false, std::string("kernel BTF has no ") + target};
  int fd = LoadProg(BPF_PROG_TYPE_TRACING, attach, static_cast<uint32_t>(id), &r.reason);
  if (fd < 0) {
    if (errno == EPERM || errno == EACCES)
      r.reason = std::string(feature) + " programs are refused by this kernel (" + r.reason +
                 "), although the probe runs with the process's capabilities: BPF trampolines are unavailable";
    return r;
  }
  int l;
  if (attach == BPF_TRACE_ITER) {
    l = bpf_link_create(fd, 0, BPF_TRACE_ITER, nullptr);
  } else {
    l = bpf_raw_tracepoint_open(nullptr, fd);
  }
  if (l >= 0) {
    r = {true, std::string("attached to ") + target};
    close(l);
  } else {
    r.reason = std::string(feature) + " attach to " + target + " failed: " + Errno(errno);
  }
  close(fd);
  return r;
}

int PmuType(const char* pmu) { return ReadInt(std::string("/sys/bus/event_source/devices/") + pmu + "/type"); }

Result ProbeKprobe() {
  Result r;
  int type = PmuType("kprobe");
  bool legacy = access("/sys/kernel/tracing/kprobe_events", F_OK) == 0;
  if (type < 0 && !legacy) return {false, "the kernel has no kprobe PMU and no kprobe_events (built without CONFIG_KPROBE_EVENTS)"};
  int fd = LoadProg(BPF_PROG_TYPE_KPROBE, static_cast<bpf_attach_type>(0), 0, &r.reason);
  if (fd < 0) return r;
  if (type < 0) {
    close(fd);
    return {true, "kprobe_events present (legacy attach); not attached by the probe"};
  }
  perf_event_attr attr;
  std::memset(&attr, 0, sizeof(attr));
  attr.type = type;
  attr.size = sizeof(attr);
  const char* fn = "do_nanosleep";
  attr.config1 = reinterpret_cast<uint64_t>(fn);
  long pfd = PerfEventOpen(&attr, -1, 0);
  if (pfd < 0) {
    r.reason = "perf_event_open(kprobe do_nanosleep) failed: " + Errno(errno);
  } else {
    r = ioctl(pfd, PERF_EVENT_IOC_SET_BPF, fd) == 0 ? Result{true, "attached to do_nanosleep"}
                                                     : Result{false, "PERF_EVENT_IOC_SET_BPF failed: " + Errno(errno)};
    close(pfd);
  }
  close(fd);
  return r;
}

Result ProbeUprobe() {
  Result r;
  int type = PmuType("uprobe");
  if (type < 0) return {false, "the kernel has no uprobe PMU (CONFIG_UPROBE_EVENTS)"};
  int fd = LoadProg(BPF_PROG_TYPE_KPROBE, static_cast<bpf_attach_type>(0), 0, &r.reason);
  if (fd < 0) return r;
  close(fd);
  return {true, "uprobe PMU present and kprobe-type programs load"};
}

Result ProbePerfEvent() {
  Result r;
  int fd = LoadProg(BPF_PROG_TYPE_PERF_EVENT, static_cast<bpf_attach_type>(0), 0, &r.reason);
  if (fd < 0) return r;
  perf_event_attr attr;
  std::memset(&attr, 0, sizeof(attr));
  attr.type = PERF_TYPE_SOFTWARE;
  attr.size = sizeof(attr);
  attr.config = PERF_COUNT_SW_CPU_CLOCK;
  attr.sample_freq = 1;
  attr.freq = 1;
  long pfd = PerfEventOpen(&attr, -1, 0);
  if (pfd < 0) {
    r.reason = "perf_event_open(cpu-clock) failed: " + Errno(errno);
  } else {
    r = ioctl(pfd, PERF_EVENT_IOC_SET_BPF, fd) == 0 ? Result{true, "attached to software cpu-clock"}
                                                     : Result{false, "PERF_EVENT_IOC_SET_BPF failed: " + Errno(errno)};
    close(pfd);
  }
  close(fd);
  return r;
}

Result ProbeBatch() {
  int fd = bpf_map_create(BPF_MAP_TYPE_HASH, "st_probe", 4, 4, 4, nullptr);
  if (fd < 0) return {false, "map create failed: " + Errno(errno)};
  uint32_t keys[4], vals[4], count = 4, out = 0;
  LIBBPF_OPTS(bpf_map_batch_opts, opts);
  int r = bpf_map_lookup_batch(fd, nullptr, &out, keys, vals, &count, &opts);
  int err = errno;
  close(fd);
  if (r == 0 || err == ENOENT) return {true, "BPF_MAP_LOOKUP_BATCH works on hash maps"};
  return {false, "BPF_MAP_LOOKUP_BATCH failed: " + Errno(err)};
}

struct NamedProg {
  const char* name;
  bpf_prog_type type;
};
struct NamedMap {
  const char* name;
  bpf_map_type type;
};
struct NamedHelper {
  const char* name;
  bpf_func_id id;
};

Napi::Value Probe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);

  static const NamedProg progs[] = {
      {"socket_filter", BPF_PROG_TYPE_SOCKET_FILTER}, {"kprobe", BPF_PROG_TYPE_KPROBE},
      {"tracepoint", BPF_PROG_TYPE_TRACEPOINT},       {"raw_tracepoint", BPF_PROG_TYPE_RAW_TRACEPOINT},
      {"perf_event", BPF_PROG_TYPE_PERF_EVENT},       {"cgroup_skb", BPF_PROG_TYPE_CGROUP_SKB},
      {"xdp", BPF_PROG_TYPE_XDP},                     {"sched_cls", BPF_PROG_TYPE_SCHED_CLS},
      {"cgroup_sock", BPF_PROG_TYPE_CGROUP_SOCK},     {"syscall", BPF_PROG_TYPE_SYSCALL},
  };
  Napi::Object pt = Napi::Object::New(env);
  for (const auto& p : progs) pt.Set(p.name, libbpf_probe_bpf_prog_type(p.type, nullptr) == 1);
  out.Set("progTypes", pt);

  static const NamedMap maps[] = {
      {"hash", BPF_MAP_TYPE_HASH},
      {"array", BPF_MAP_TYPE_ARRAY},
      {"percpu_hash", BPF_MAP_TYPE_PERCPU_HASH},
      {"percpu_array", BPF_MAP_TYPE_PERCPU_ARRAY},
      {"lru_hash", BPF_MAP_TYPE_LRU_HASH},
      {"lru_percpu_hash", BPF_MAP_TYPE_LRU_PERCPU_HASH},
      {"ringbuf", BPF_MAP_TYPE_RINGBUF},
      {"perf_event_array", BPF_MAP_TYPE_PERF_EVENT_ARRAY},
      {"stack_trace", BPF_MAP_TYPE_STACK_TRACE},
      {"lpm_trie", BPF_MAP_TYPE_LPM_TRIE},
      {"bloom_filter", BPF_MAP_TYPE_BLOOM_FILTER},
      {"task_storage", BPF_MAP_TYPE_TASK_STORAGE},
      {"cgroup_array", BPF_MAP_TYPE_CGROUP_ARRAY},
  };
  Napi::Object mt = Napi::Object::New(env);
  for (const auto& m : maps) mt.Set(m.name, libbpf_probe_bpf_map_type(m.type, nullptr) == 1);
  out.Set("mapTypes", mt);

  static const NamedHelper helpers[] = {
      {"bpf_ringbuf_reserve", BPF_FUNC_ringbuf_reserve},
      {"bpf_get_current_task_btf", BPF_FUNC_get_current_task_btf},
      {"bpf_probe_read_kernel", BPF_FUNC_probe_read_kernel},
      {"bpf_probe_read_user", BPF_FUNC_probe_read_user},
      {"bpf_get_current_cgroup_id", BPF_FUNC_get_current_cgroup_id},
      {"bpf_ktime_get_boot_ns", BPF_FUNC_ktime_get_boot_ns},
      {"bpf_loop", BPF_FUNC_loop},
      {"bpf_get_stackid", BPF_FUNC_get_stackid},
  };
  Napi::Object hp = Napi::Object::New(env);
  for (const auto& h : helpers) hp.Set(h.name, libbpf_probe_bpf_helper(BPF_PROG_TYPE_TRACEPOINT, h.id, nullptr) == 1);
  out.Set("helpers", hp);

  auto t0 = std::chrono::steady_clock::now();
  struct btf* vmlinux = btf__load_vmlinux_btf();
  double parseMs = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  if (libbpf_get_error(vmlinux)) vmlinux = nullptr;
  Napi::Object btf = Napi::Object::New(env);
  btf.Set("vmlinux", vmlinux != nullptr);
  btf.Set("types", vmlinux ? btf__type_cnt(vmlinux) : 0);
  btf.Set("parseMs", parseMs);
  out.Set("btf", btf);

  Napi::Object at = Napi::Object::New(env);
  auto set = [&](const char* name, const Result& r) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("supported", r.supported);
    o.Set("reason", r.reason);
    at.Set(name, o);
  };
  set("tracepoint", ProbeTracepoint());
  set("raw_tp", ProbeRawTp());
  set("tp_btf", ProbeTracing(vmlinux, BPF_TRACE_RAW_TP, "btf_trace_sched_switch", BTF_KIND_TYPEDEF, "tp_btf"));
  set("fentry", ProbeTracing(vmlinux, BPF_TRACE_FENTRY, "do_nanosleep", BTF_KIND_FUNC, "fentry"));
  set("fexit", ProbeTracing(vmlinux, BPF_TRACE_FEXIT, "do_nanosleep", BTF_KIND_FUNC, "fexit"));
  set("iterator", ProbeTracing(vmlinux, BPF_TRACE_ITER, "bpf_iter_task", BTF_KIND_FUNC, "iterator"));
  set("kprobe", ProbeKprobe());
  set("uprobe", ProbeUprobe());
  set("perf_event", ProbePerfEvent());
  out.Set("attach", at);
  Result b = ProbeBatch();
  Napi::Object bo = Napi::Object::New(env);
  bo.Set("supported", b.supported);
  bo.Set("reason", b.reason);
  out.Set("batchOps", bo);
  if (vmlinux) btf__free(vmlinux);
  return out;
}

void Init(Napi::Env env, Napi::Object exports) {
  Napi::Object l = exports.Has("loader") ? exports.Get("loader").As<Napi::Object>() : Napi::Object::New(env);
  l.Set("probe", Napi::Function::New(env, Probe, "probe"));
  exports.Set("loader", l);
}

}  // namespace
}  // namespace smoothtask

SMOOTHTASK_MODULE(probe, smoothtask::Init);
