// Attaching programs from their fd (never from libbpf's bpf_program*, because pinned and cached
// programs may have no bpf_object): perf-event based attachments (tracepoint, uprobe, kprobe,
// perf_event) through bpf_link_create(BPF_PERF_EVENT) with the PERF_EVENT_IOC_SET_BPF fallback;
// raw_tp / tp_btf / fentry through bpf_raw_tracepoint_open; iterators and cgroups through
// bpf_link_create. Every function returns the fds the JS Link then owns.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <linux/bpf.h>
#include <linux/perf_event.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "errors.h"
#include "fd.h"
#include "module.h"

namespace smoothtask {
namespace {

int PerfEventOpen(struct perf_event_attr* attr, int pid, int cpu) {
  int r = static_cast<int>(syscall(__NR_perf_event_open, attr, pid, cpu, -1, PERF_FLAG_FD_CLOEXEC));
  return r < 0 ? -errno : r;
}

bool ReadSmallFile(const std::string& path, std::string& out) {
  std::ifstream f(path);
  if (!f) return false;
  std::getline(f, out, '\0');
  return true;
}

// A decimal number at the start of `s` (sysfs/tracefs files), or -1 when there is none. Never
// throws (std::stoi would, on a file that is not what we expect).
long long ParseDecimal(const std::string& s) {
  errno = 0;
  char* end = nullptr;
  long long v = std::strtoll(s.c_str(), &end, 10);
  if (end == s.c_str() || errno != 0 || v < 0) return -1;
  return v;
}

// PMU type of a dynamic PMU (uprobe, kprobe), or -ENOENT when the kernel lacks it.
int PmuType(const std::string& pmu) {
  std::string s;
  if (pmu.find('/') != std::string::npos || pmu.find("..") != std::string::npos) return -ENOENT;
  if (!ReadSmallFile("/sys/bus/event_source/devices/" + pmu + "/type", s)) return -ENOENT;
  long long v = ParseDecimal(s);
  return v < 0 || v > INT32_MAX ? -ENOENT : static_cast<int>(v);
}

// Bit number of the retprobe flag in config ("config:0").
int RetprobeBit(const std::string& pmu) {
  std::string s;
  if (!ReadSmallFile("/sys/bus/event_source/devices/" + pmu + "/format/retprobe", s)) return 0;
  auto p = s.find(':');
  long long v = p == std::string::npos ? 0 : ParseDecimal(s.substr(p + 1));
  return v < 0 || v > 63 ? 0 : static_cast<int>(v);
}

// A tracefs path component from JS: a name, never a path ("../x" would read any file).
bool TracefsName(const std::string& s) {
  return !s.empty() && s != "." && s != ".." && s.find('/') == std::string::npos && s.find('\0') == std::string::npos;
}

// Links the program to a perf event fd. Returns the bpf link fd, or -1 when the kernel only
// supports the ioctl attachment (the perf fd then carries the attachment), or -errno.
int LinkPerfEvent(int progFd, int pfd) {
  LIBBPF_OPTS(bpf_link_create_opts, opts);
  int r = bpf_link_create(progFd, pfd, BPF_PERF_EVENT, &opts);
  if (r >= 0) return r;
  int e = errno;
  if (e != EINVAL && e != EOPNOTSUPP && e != 524) return -e;
  if (ioctl(pfd, PERF_EVENT_IOC_SET_BPF, progFd) < 0) return -errno;
  if (ioctl(pfd, PERF_EVENT_IOC_ENABLE, 0) < 0) return -errno;
  return -1;
}

// Returns [linkFd?, perfFd] tracked in the env; throws on failure.
Napi::Value FinishPerf(Napi::Env env, int progFd, int pfd, const std::string& what, const std::string& feature) {
  int link = LinkPerfEvent(progFd, pfd);
  if (link < -1) {
    ::close(pfd);
    Throw(env, ErrnoError(link, what + ": attach", "CAP_PERFMON", feature));
  }
  Napi::Array out = Napi::Array::New(env);
  uint32_t i = 0;
  if (link >= 0) out.Set(i++, TrackFd(env, link));
  out.Set(i++, TrackFd(env, pfd));
  return out;
}

int ArgInt(const Napi::CallbackInfo& info, size_t i, int def = 0) {
  if (info.Length() <= i || !info[i].IsNumber()) return def;
  return info[i].As<Napi::Number>().Int32Value();
}

std::string ArgStr(const Napi::CallbackInfo& info, size_t i) {
  if (info.Length() <= i || !info[i].IsString()) return "";
  return info[i].As<Napi::String>().Utf8Value();
}

Napi::Value ProgInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  struct bpf_prog_info pi;
  std::memset(&pi, 0, sizeof(pi));
  __u32 len = sizeof(pi);
  if (bpf_obj_get_info_by_fd(ArgInt(info, 0, -1), &pi, &len) < 0) Throw(env, ErrnoError(errno, "bpf_obj_get_info_by_fd(prog)"));
  Napi::Object o = Napi::Object::New(env);
  const char* tn = libbpf_bpf_prog_type_str(static_cast<enum bpf_prog_type>(pi.type));
  o.Set("type", tn ? tn : std::to_string(pi.type));
  o.Set("id", pi.id);
  o.Set("name", pi.name);
  char tag[2 * BPF_TAG_SIZE + 1];
  for (int i = 0; i < BPF_TAG_SIZE; i++) snprintf(tag + 2 * i, 3, "%02x", pi.tag[i]);
  o.Set("tag", std::string(tag, 2 * BPF_TAG_SIZE));
  o.Set("attachBtfId", pi.attach_btf_id);
  return o;
}

// section -> { type, attachType } as libbpf's section table says ('' when unknown).
Napi::Value SectionTypes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string sec = ArgStr(info, 0);
  enum bpf_prog_type pt;
  enum bpf_attach_type at;
  Napi::Object o = Napi::Object::New(env);
  if (libbpf_prog_type_by_name(sec.c_str(), &pt, &at) == 0) {
    const char* p = libbpf_bpf_prog_type_str(pt);
    const char* a = libbpf_bpf_attach_type_str(at);
    o.Set("type", p ? p : "");
    o.Set("attachType", a ? a : "");
  } else {
    o.Set("type", "");
    o.Set("attachType", "");
  }
  return o;
}

int AttachTypeByName(const std::string& name) {
  for (int t = 0; t < 128; t++) {
    const char* s = libbpf_bpf_attach_type_str(static_cast<enum bpf_attach_type>(t));
    if (s && name == s) return t;
  }
  return -1;
}

// (progFd, category, name) -> fds
Napi::Value AttachTracepoint(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int progFd = ArgInt(info, 0, -1);
  std::string cat = ArgStr(info, 1), name = ArgStr(info, 2);
  if (!TracefsName(cat) || !TracefsName(name))
    Throw(env, ArgumentError("tracepoint category and name must be plain names, got '" + cat + "/" + name + "'"));
  std::string idStr;
  if (!ReadSmallFile("/sys/kernel/tracing/events/" + cat + "/" + name + "/id", idStr) &&
      !ReadSmallFile("/sys/kernel/debug/tracing/events/" + cat + "/" + name + "/id", idStr)) {
    NativeError e;
    e.code = kErrUnsupported;
    e.err = ENOENT;
    e.feature = "tracepoint " + cat + "/" + name;
    e.message = "tracepoint " + cat + "/" + name + " does not exist on this kernel (no tracefs events/" + cat + "/" + name + "/id)";
    Throw(env, e);
  }
  struct perf_event_attr attr;
  std::memset(&attr, 0, sizeof(attr));
  attr.type = PERF_TYPE_TRACEPOINT;
  attr.size = sizeof(attr);
  long long id = ParseDecimal(idStr);
  if (id < 0) {
    NativeError e;
    e.code = kErrUnsupported;
    e.err = EINVAL;
    e.feature = "tracepoint " + cat + "/" + name;
    e.message = "tracefs gives tracepoint " + cat + "/" + name + " no numeric id";
    Throw(env, e);
  }
  attr.config = static_cast<uint64_t>(id);
  int pfd = PerfEventOpen(&attr, -1, 0);
  if (pfd < 0) Throw(env, ErrnoError(pfd, "perf_event_open(tracepoint " + cat + "/" + name + ")", "CAP_PERFMON"));
  return FinishPerf(env, progFd, pfd, "tracepoint " + cat + "/" + name, "tracepoint");
}

// (progFd, name|'') -> fds. Also attaches tp_btf / fentry / fexit / fmod_ret / lsm (name '').
Napi::Value AttachRawTracepoint(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int progFd = ArgInt(info, 0, -1);
  std::string name = ArgStr(info, 1);
  std::string feature = ArgStr(info, 2);
  int r = bpf_raw_tracepoint_open(name.empty() ? nullptr : name.c_str(), progFd);
  if (r < 0) {
    int e = errno;
    std::string what = name.empty() ? feature + " attach" : "raw tracepoint " + name;
    NativeError err = ErrnoError(e, what, "CAP_BPF", feature);
    // As root, EPERM from a tracing attach means the kernel refuses the feature (lockdown,
    // missing trampoline support), not a missing capability.
    if ((e == EPERM || e == 524 || e == EOPNOTSUPP) && name.empty() && geteuid() == 0) {
      err.code = kErrUnsupported;
      err.feature = feature;
      err.message = feature + " attach is not available on this kernel (" + std::strerror(e) + ")";
    }
    Throw(env, err);
  }
  Napi::Array out = Napi::Array::New(env);
  out.Set(0u, TrackFd(env, r));
  return out;
}

// Resolves `symbol` in an ELF file to a file offset usable as a uprobe offset: the symbol's
// virtual address translated through its section (st_value - sh_addr + sh_offset).
long SymbolOffset(const std::string& path, const std::string& symbol, std::string& err) {
  if (elf_version(EV_CURRENT) == EV_NONE) {
    err = "libelf init failed";
    return -1;
  }
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    err = "cannot open " + path + ": " + std::strerror(errno);
    return -1;
  }
  UniqueFd guard(fd);
  Elf* elf = elf_begin(fd, ELF_C_READ, nullptr);
  if (!elf) {
    err = path + " is not an ELF file";
    return -1;
  }
  long found = -1;
  for (int pass = 0; pass < 2 && found < 0; pass++) {
    Elf_Scn* scn = nullptr;
    while ((scn = elf_nextscn(elf, scn)) != nullptr && found < 0) {
      GElf_Shdr sh;
      if (!gelf_getshdr(scn, &sh)) continue;
      if (sh.sh_type != (pass == 0 ? SHT_SYMTAB : SHT_DYNSYM)) continue;
      Elf_Data* data = elf_getdata(scn, nullptr);
      if (!data || sh.sh_entsize == 0) continue;
      size_t n = sh.sh_size / sh.sh_entsize;
      for (size_t i = 0; i < n; i++) {
        GElf_Sym sym;
        if (!gelf_getsym(data, static_cast<int>(i), &sym)) continue;
        if (GELF_ST_TYPE(sym.st_info) != STT_FUNC || sym.st_shndx == SHN_UNDEF) continue;
        const char* nm = elf_strptr(elf, sh.sh_link, sym.st_name);
        if (!nm || symbol != nm) continue;
        GElf_Shdr ts;
        Elf_Scn* text = elf_getscn(elf, sym.st_shndx);
        if (!text || !gelf_getshdr(text, &ts)) continue;
        found = static_cast<long>(sym.st_value - ts.sh_addr + ts.sh_offset);
        break;
      }
    }
  }
  elf_end(elf);
  if (found < 0) err = "symbol " + symbol + " not found in " + path;
  return found;
}

// (binary, symbol) -> file offset
Napi::Value ResolveSymbol(const Napi::CallbackInfo& info) {
  std::string err;
  long off = SymbolOffset(ArgStr(info, 0), ArgStr(info, 1), err);
  if (off < 0) {
    NativeError e;
    e.err = ENOENT;
    e.message = err;
    Throw(info.Env(), e);
  }
  return Napi::Number::New(info.Env(), static_cast<double>(off));
}

// (progFd, pmu 'uprobe'|'kprobe', target (path|function), offset, pid, retprobe) -> fds
Napi::Value AttachProbe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int progFd = ArgInt(info, 0, -1);
  std::string pmu = ArgStr(info, 1), target = ArgStr(info, 2);
  uint64_t offset = info[3].IsNumber() ? static_cast<uint64_t>(info[3].As<Napi::Number>().Int64Value()) : 0;
  int pid = ArgInt(info, 4, -1);
  bool ret = info.Length() > 5 && info[5].ToBoolean().Value();
  int type = PmuType(pmu);
  if (type < 0) {
    NativeError e;
    e.code = kErrUnsupported;
    e.err = ENOENT;
    e.feature = pmu;
    e.message = pmu + "s are not available on this kernel (no /sys/bus/event_source/devices/" + pmu +
                (pmu == "kprobe" ? "; CONFIG_KPROBE_EVENTS is off)" : "; CONFIG_UPROBE_EVENTS is off)");
    Throw(env, e);
  }
  struct perf_event_attr attr;
  std::memset(&attr, 0, sizeof(attr));
  attr.size = sizeof(attr);
  attr.type = type;
  if (ret) attr.config |= 1ull << RetprobeBit(pmu);
  if (pmu == "uprobe")
    attr.uprobe_path = reinterpret_cast<uint64_t>(target.c_str());
  else
    attr.kprobe_func = reinterpret_cast<uint64_t>(target.c_str());
  attr.probe_offset = offset;
  int pfd = PerfEventOpen(&attr, pid < 0 ? -1 : pid, pid < 0 ? 0 : -1);
  if (pfd < 0) Throw(env, ErrnoError(pfd, "perf_event_open(" + pmu + " " + target + ")", "CAP_PERFMON"));
  return FinishPerf(env, progFd, pfd, pmu + " " + target, pmu);
}

// (progFd, type, config, useFreq, sampleValue, cpus[], pid) -> fds (one link per CPU)
Napi::Value AttachPerfEvent(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int progFd = ArgInt(info, 0, -1);
  struct perf_event_attr attr;
  std::memset(&attr, 0, sizeof(attr));
  attr.size = sizeof(attr);
  attr.type = info[1].As<Napi::Number>().Uint32Value();
  attr.config = static_cast<uint64_t>(info[2].As<Napi::Number>().Int64Value());
  attr.freq = info[3].ToBoolean().Value() ? 1 : 0;
  attr.sample_period = static_cast<uint64_t>(info[4].As<Napi::Number>().Int64Value());  // union with sample_freq
  Napi::Array cpus = info[5].As<Napi::Array>();
  int pid = ArgInt(info, 6, -1);
  std::vector<int> fds;
  auto fail = [&](int err, const std::string& what) {
    for (int fd : fds) ::close(fd);
    std::string feature = attr.type == PERF_TYPE_HARDWARE ? "hardware perf events" : "perf_event";
    Throw(env, ErrnoError(err, what, "CAP_PERFMON", feature));
  };
  for (uint32_t i = 0; i < cpus.Length(); i++) {
    int cpu = cpus.Get(i).As<Napi::Number>().Int32Value();
    int pfd = PerfEventOpen(&attr, pid, cpu);
    if (pfd < 0) {
      // A VM without a PMU has no hardware events: ENOENT / EOPNOTSUPP from perf_event_open.
      if (attr.type == PERF_TYPE_HARDWARE && (pfd == -ENOENT || pfd == -EOPNOTSUPP)) fail(EOPNOTSUPP, "perf_event_open(hardware event, cpu " + std::to_string(cpu) + ")");
      fail(-pfd, "perf_event_open(cpu " + std::to_string(cpu) + ")");
    }
    fds.push_back(pfd);
    int link = LinkPerfEvent(progFd, pfd);
    if (link < -1) fail(-link, "perf_event attach (cpu " + std::to_string(cpu) + ")");
    if (link >= 0) fds.push_back(link);
  }
  Napi::Array out = Napi::Array::New(env);
  for (uint32_t i = 0; i < fds.size(); i++) out.Set(i, TrackFd(env, fds[i]));
  return out;
}

// (progFd, targetFd, attachTypeName) -> fds. Cgroup attachments (target = cgroup dir fd).
Napi::Value AttachCgroup(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int progFd = ArgInt(info, 0, -1);
  std::string path = ArgStr(info, 1), atName = ArgStr(info, 2);
  int at = AttachTypeByName(atName);
  if (at < 0) {
    NativeError e;
    e.message = "unknown attach type '" + atName + "'";
    e.err = EINVAL;
    Throw(env, e);
  }
  int cg = open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (cg < 0) Throw(env, ErrnoError(errno, "open cgroup " + path));
  UniqueFd guard(cg);
  LIBBPF_OPTS(bpf_link_create_opts, opts);
  int r = bpf_link_create(progFd, cg, static_cast<enum bpf_attach_type>(at), &opts);
  if (r < 0) Throw(env, ErrnoError(errno, "cgroup attach (" + atName + ") to " + path, "CAP_NET_ADMIN", "cgroup " + atName));
  Napi::Array out = Napi::Array::New(env);
  out.Set(0u, TrackFd(env, r));
  return out;
}

// (progFd, mapFd, pid) -> [linkFd]
Napi::Value AttachIter(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int progFd = ArgInt(info, 0, -1);
  int mapFd = ArgInt(info, 1, -1);
  int pid = ArgInt(info, 2, 0);
  union bpf_iter_link_info linfo;
  std::memset(&linfo, 0, sizeof(linfo));
  LIBBPF_OPTS(bpf_link_create_opts, opts);
  if (mapFd >= 0) {
    linfo.map.map_fd = mapFd;
    opts.iter_info = &linfo;
    opts.iter_info_len = sizeof(linfo);
  } else if (pid > 0) {
    linfo.task.pid = pid;
    opts.iter_info = &linfo;
    opts.iter_info_len = sizeof(linfo);
  }
  int r = bpf_link_create(progFd, 0, BPF_TRACE_ITER, &opts);
  if (r < 0) Throw(env, ErrnoError(errno, "iterator attach", "CAP_BPF", "bpf iterator"));
  Napi::Array out = Napi::Array::New(env);
  out.Set(0u, TrackFd(env, r));
  return out;
}

// Runs the iterator of link `linkFd` (not taken over) once and appends what it wrote to `out`.
// Used on a libuv worker (IterRead, on its own dup of the link) and on the calling thread
// (IterReadSync, for a caller that knows the walk is short: a thread hop costs more than a walk
// of a few hundred tasks; the link cannot close under it there, so no dup).
static NativeError RunIter(int linkFd, std::vector<char>& out) {
  int it = bpf_iter_create(linkFd);
  if (it < 0) return ErrnoError(errno, "bpf_iter_create");
  UniqueFd iter(it);
  char buf[65536];
  for (;;) {
    ssize_t n = read(iter.get(), buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      // EAGAIN: the iterator's seq_file asked to restart; give up rather than loop forever.
      return ErrnoError(errno, "read iterator");
    }
    if (n == 0) break;
    out.insert(out.end(), buf, buf + n);
  }
  return NativeError();
}

// Runs an iterator to the end on a libuv worker (an iterator read is short and bounded by
// what it walks; it does not block the pool the way a multi-second load would).
class IterReadWorker : public Napi::AsyncWorker {
 public:
  IterReadWorker(Napi::Env env, int linkFd) : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)) {
    // Our own dup: the JS link may close while we read.
    linkFd_ = DupFdCloexec(linkFd);
  }
  Napi::Promise Promise() { return deferred_.Promise(); }
  void Execute() override {
    if (linkFd_ < 0) {
      err_ = ErrnoError(linkFd_, "iterator read: dup link fd");
      return;
    }
    UniqueFd link(linkFd_);
    err_ = RunIter(link.get(), data_);
  }
  void OnOK() override {
    Napi::Env env = Env();
    if (!err_.ok()) {
      deferred_.Reject(err_.ToJs(env).Value());
      return;
    }
    deferred_.Resolve(Napi::Buffer<char>::Copy(env, data_.data(), data_.size()));
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  int linkFd_ = -1;
  NativeError err_;
  std::vector<char> data_;
};

Napi::Value IterRead(const Napi::CallbackInfo& info) {
  auto* w = new IterReadWorker(info.Env(), ArgInt(info, 0, -1));
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

// (linkFd) -> Buffer: the same read on the calling thread.
Napi::Value IterReadSync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::vector<char> data;
  NativeError err = RunIter(ArgInt(info, 0, -1), data);
  if (!err.ok()) Throw(env, err);
  return Napi::Buffer<char>::Copy(env, data.data(), data.size());
}

// (linkFd, path)
Napi::Value LinkPin(const Napi::CallbackInfo& info) {
  std::string path = ArgStr(info, 1);
  if (bpf_obj_pin(ArgInt(info, 0, -1), path.c_str()) < 0) Throw(info.Env(), ErrnoError(errno, "pin link at " + path));
  return info.Env().Undefined();
}

// Runs a program with BPF_PROG_TEST_RUN off the main thread: (progFd, repeat, cpu, ctx?) ->
// Promise<{ retval, durationNs }>. Used to produce ring buffer records on demand (raw_tp
// programs run with preemption disabled on the chosen CPU).
class TestRunWorker : public Napi::AsyncWorker {
 public:
  TestRunWorker(Napi::Env env, int progFd, int repeat, int cpu, std::vector<uint8_t> ctx)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), repeat_(repeat), cpu_(cpu), ctx_(std::move(ctx)) {
    progFd_ = DupFdCloexec(progFd);
  }
  Napi::Promise Promise() { return deferred_.Promise(); }
  void Execute() override {
    if (progFd_ < 0) {
      err_ = ErrnoError(progFd_, "test run: dup prog fd");
      return;
    }
    UniqueFd prog(progFd_);
    LIBBPF_OPTS(bpf_test_run_opts, opts);
    if (!ctx_.empty()) {
      opts.ctx_in = ctx_.data();
      opts.ctx_size_in = static_cast<__u32>(ctx_.size());
    }
    if (repeat_ > 1) opts.repeat = repeat_;  // raw_tp test runs reject any repeat (EINVAL)
    if (cpu_ >= 0) {
      opts.flags = BPF_F_TEST_RUN_ON_CPU;
      opts.cpu = cpu_;
    }
    if (bpf_prog_test_run_opts(prog.get(), &opts) < 0) {
      err_ = ErrnoError(errno, "bpf_prog_test_run", "CAP_BPF", "BPF_PROG_TEST_RUN for this program type");
      return;
    }
    retval_ = opts.retval;
    duration_ = opts.duration;
  }
  void OnOK() override {
    Napi::Env env = Env();
    if (!err_.ok()) {
      deferred_.Reject(err_.ToJs(env).Value());
      return;
    }
    Napi::Object o = Napi::Object::New(env);
    o.Set("retval", retval_);
    o.Set("durationNs", duration_);
    deferred_.Resolve(o);
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  int progFd_ = -1;
  int repeat_;
  int cpu_;
  std::vector<uint8_t> ctx_;
  NativeError err_;
  uint32_t retval_ = 0, duration_ = 0;
};

Napi::Value TestRun(const Napi::CallbackInfo& info) {
  std::vector<uint8_t> ctx;
  if (info.Length() > 3 && info[3].IsBuffer()) {
    auto b = info[3].As<Napi::Buffer<uint8_t>>();
    ctx.assign(b.Data(), b.Data() + b.Length());
  }
  auto* w = new TestRunWorker(info.Env(), ArgInt(info, 0, -1), ArgInt(info, 1, 1), ArgInt(info, 2, -1), std::move(ctx));
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

// Which attach PMUs and files this kernel has: { uprobe, kprobe, tracefs }.
Napi::Value AttachFeatures(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("uprobe", PmuType("uprobe") >= 0);
  o.Set("kprobe", PmuType("kprobe") >= 0);
  o.Set("tracefs", access("/sys/kernel/tracing/events", R_OK) == 0 || access("/sys/kernel/debug/tracing/events", R_OK) == 0);
  return o;
}

void Init(Napi::Env env, Napi::Object exports) {
  Napi::Object dp = DpExports(env, exports);
  dp.Set("progInfo", Napi::Function::New(env, ProgInfo));
  dp.Set("sectionTypes", Napi::Function::New(env, SectionTypes));
  dp.Set("attachTracepoint", Napi::Function::New(env, AttachTracepoint));
  dp.Set("attachRawTracepoint", Napi::Function::New(env, AttachRawTracepoint));
  dp.Set("resolveSymbol", Napi::Function::New(env, ResolveSymbol));
  dp.Set("attachProbe", Napi::Function::New(env, AttachProbe));
  dp.Set("attachPerfEvent", Napi::Function::New(env, AttachPerfEvent));
  dp.Set("attachCgroup", Napi::Function::New(env, AttachCgroup));
  dp.Set("attachIter", Napi::Function::New(env, AttachIter));
  dp.Set("iterRead", Napi::Function::New(env, IterRead));
  dp.Set("iterReadSync", Napi::Function::New(env, IterReadSync));
  dp.Set("linkPin", Napi::Function::New(env, LinkPin));
  dp.Set("testRun", Napi::Function::New(env, TestRun));
  dp.Set("attachFeatures", Napi::Function::New(env, AttachFeatures));
}

}  // namespace
}  // namespace smoothtask

SMOOTHTASK_MODULE(attach, smoothtask::Init);
