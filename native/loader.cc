// Loading BPF objects off the main thread, on the addon's own thread pool (load_pool.h), with
// a timeout that really stops the verifier (load_watchdog.h); libbpf's messages routed to the
// load that caused them (load_print.h); bytes not seen before opened first in a forked child
// (load_precheck.h). This file holds the load job itself and the N-API functions.
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <dlfcn.h>
#include <bpf/libbpf.h>
#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <system_error>
#include <utility>
#include <vector>

#include "errors.h"
#include "load_clock.h"
#include "load_pool.h"
#include "load_precheck.h"
#include "load_print.h"
#include "load_watchdog.h"
#include "module.h"
#include "object.h"

namespace smoothtask {
namespace {

using load::Clock;
using load::CheckOpen;
using load::InstallSignal;
using load::LoaderSignal;
using load::MsSince;
using load::Pool;
using load::PreCheck;
using load::PrintRoute;
using load::PrintScope;
using load::PrintSink;
using load::Slot;
using load::Watchdog;

// strerror that also knows libbpf's own error numbers (LIBBPF_ERRNO__*, 4000+)
std::string ErrText(int err) {
  if (err < 0) err = -err;
  char buf[256];
  if (libbpf_strerror(err, buf, sizeof(buf)) == 0) return buf;
  return std::strerror(err);
}

// ---------------------------------------------------------------------------- load job

struct Constant {
  std::string name;
  bool isBytes = false;
  std::vector<uint8_t> bytes;
  uint64_t value = 0;
};

// Whether the environment that started a load still exists. Node frees a thread-safe
// function when its environment (a worker thread) is torn down, even while our thread holds
// it, so the loading thread checks this, under the lock, before touching the TSFN. The hook
// that sets `dead` is added after the TSFN is created, so it runs before the TSFN's own
// teardown (cleanup hooks run in reverse order).
// A job handed to the TSFN but not yet delivered is recorded in `queued`: if the environment
// is torn down first, Node drops the TSFN's queue without calling back (Node 20), so the hook
// frees it (found by the sanitizer job's leak check, scripts/sanitize.sh).
struct LoadJob;
struct EnvLink {
  std::mutex mu;
  bool dead = false;
  LoadJob* queued = nullptr;
};
using CleanupFn = std::function<void()>;

// The facts of a failed open or load, for lib/ebpf/classify.ts (see RecordFailure).
struct LoadFailure {
  struct Program {
    std::string name, type, attachType, section;
  };
  struct Map {
    std::string name, realName, type;
    uint32_t maxEntries = 0;
  };
  bool set = false;
  std::string stage;  // "open" | "load"
  int err = 0;
  std::string warnings, log;
  uint64_t capEff = 0;
  std::vector<Program> programs;  // autoloaded ones
  std::vector<Map> maps;

  void AddTo(Napi::Env env, Napi::Object o) const {
    Napi::Object f = Napi::Object::New(env);
    f.Set("stage", stage);
    f.Set("errno", err);
    f.Set("warnings", warnings);
    f.Set("log", log);
    char hex[32];
    std::snprintf(hex, sizeof(hex), "%llx", static_cast<unsigned long long>(capEff));
    f.Set("capEff", std::string(hex));
    Napi::Array ps = Napi::Array::New(env, programs.size());
    for (size_t i = 0; i < programs.size(); i++) {
      Napi::Object p = Napi::Object::New(env);
      p.Set("name", programs[i].name);
      p.Set("type", programs[i].type);
      p.Set("attachType", programs[i].attachType);
      p.Set("section", programs[i].section);
      ps.Set(static_cast<uint32_t>(i), p);
    }
    f.Set("programs", ps);
    Napi::Array ms = Napi::Array::New(env, maps.size());
    for (size_t i = 0; i < maps.size(); i++) {
      Napi::Object m = Napi::Object::New(env);
      m.Set("name", maps[i].name);
      m.Set("realName", maps[i].realName);
      m.Set("type", maps[i].type);
      m.Set("maxEntries", maps[i].maxEntries);
      ms.Set(static_cast<uint32_t>(i), m);
    }
    f.Set("maps", ms);
    o.Set("failure", f);
  }
};

struct LoadJob {
  // inputs (copied on the main thread)
  std::vector<uint8_t> elf;
  std::string name;
  bool selectPrograms = false;
  std::vector<std::string> programs;
  std::vector<Constant> constants;
  std::vector<std::pair<std::string, uint32_t>> mapSizes;
  uint32_t logLevel = 0;
  double timeoutMs = 0;
  double spentMs = 0;  // spent on this load before the call (its pre-check): counts against the timeout
  bool trusted = false;  // bytes already opened safely in this process: skip the pre-check
  bool precheckOnly = false;  // precheck(): the pre-check alone, no open, no load
  std::string btfCustomPath;
  Clock::time_point submitted;
  // outputs
  std::unique_ptr<ObjectState> state;
  NativeError error;
  LoadFailure failure;
  std::string configError;
  bool prechecked = false;  // precheck(): the bytes may be opened in this process
  // plumbing
  Napi::Promise::Deferred deferred;
  std::shared_ptr<EnvLink> link = std::make_shared<EnvLink>();
  Napi::Env::CleanupHook<CleanupFn> hook;
  explicit LoadJob(Napi::Env env) : deferred(Napi::Promise::Deferred::New(env)) {}
};

uint64_t CapEff() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("CapEff:", 0) == 0) return std::strtoull(line.c_str() + 7, nullptr, 16);
  return 0;
}

// Writes load-time constants into .rodata/.data/.bss initial values, located by BTF DATASEC.
std::string ApplyConstants(bpf_object* obj, const std::vector<Constant>& constants) {
  if (constants.empty()) return "";
  const struct btf* btf = bpf_object__btf(obj);
  if (!btf) return "the object has no BTF: constants cannot be located";
  std::vector<std::string> known;
  for (const Constant& c : constants) {
    bool found = false;
    uint32_t n = btf__type_cnt(btf);
    for (uint32_t id = 1; id < n && !found; id++) {
      const btf_type* t = btf__type_by_id(btf, id);
      if (!t || !btf_is_datasec(t)) continue;
      const char* sec = btf__name_by_offset(btf, t->name_off);
      if (!sec || (std::strncmp(sec, ".rodata", 7) != 0 && std::strncmp(sec, ".data", 5) != 0 && std::strcmp(sec, ".bss") != 0))
        continue;
      const btf_var_secinfo* vsi = btf_var_secinfos(t);
      for (uint32_t i = 0; i < btf_vlen(t); i++, vsi++) {
        const btf_type* var = btf__type_by_id(btf, vsi->type);
        if (!var) continue;
        const char* vname = btf__name_by_offset(btf, var->name_off);
        if (!vname) continue;
        if (known.size() < 64 && std::strcmp(sec, ".bss") != 0) known.push_back(vname);
        if (c.name != vname) continue;
        bpf_map* map = nullptr;
        bpf_map* m;
        bpf_object__for_each_map(m, obj) {
          if (bpf_map__is_internal(m) && MapRealName(obj, m) == sec) map = m;
        }
        if (!map) return std::string("section ") + sec + " of constant '" + c.name + "' has no map";
        size_t size = 0;
        const void* init = bpf_map__initial_value(map, &size);
        if (!init || vsi->offset + vsi->size > size) return "constant '" + c.name + "' lies outside its section";
        std::vector<uint8_t> data(static_cast<const uint8_t*>(init), static_cast<const uint8_t*>(init) + size);
        if (c.isBytes) {
          if (c.bytes.size() != vsi->size)
            return "constant '" + c.name + "' is " + std::to_string(vsi->size) + " bytes, got " + std::to_string(c.bytes.size());
          std::memcpy(data.data() + vsi->offset, c.bytes.data(), vsi->size);
        } else {
          if (vsi->size != 1 && vsi->size != 2 && vsi->size != 4 && vsi->size != 8)
            return "constant '" + c.name + "' is " + std::to_string(vsi->size) + " bytes: pass a Uint8Array";
          for (uint32_t b = 0; b < vsi->size; b++) data[vsi->offset + b] = static_cast<uint8_t>(c.value >> (8 * b));  // LE
        }
        if (bpf_map__set_initial_value(map, data.data(), data.size()) != 0) return "cannot set constant '" + c.name + "'";
        found = true;
        break;
      }
    }
    if (!found) {
      std::string list;
      for (auto& k : known) list += (list.empty() ? "" : ", ") + k;
      return "unknown constant '" + c.name + "'" + (list.empty() ? " (the object has no global variables)" : "; the object has: " + list);
    }
  }
  return "";
}

// Records the facts of a failed open or load (stage, errno, libbpf's WARN lines, the programs
// and maps involved); lib/ebpf/classify.ts turns them into the typed error, so the class does
// not depend on the log level. Called with the object still open.
void RecordFailure(LoadJob& job, const char* stage, int err, const PrintSink& sink, bpf_object* obj) {
  LoadFailure& f = job.failure;
  f.set = true;
  f.stage = stage;
  f.err = err < 0 ? -err : err;
  f.warnings = sink.warn;
  f.log = sink.text;
  f.capEff = CapEff();
  if (!obj) return;
  bpf_program* p;
  bpf_object__for_each_program(p, obj) {
    if (!bpf_program__autoload(p)) continue;
    const char* t = libbpf_bpf_prog_type_str(bpf_program__type(p));
    const char* a = libbpf_bpf_attach_type_str(bpf_program__expected_attach_type(p));
    const char* sec = bpf_program__section_name(p);
    f.programs.push_back({bpf_program__name(p), t ? t : "", a ? a : "", sec ? sec : ""});
  }
  bpf_map* m;
  bpf_object__for_each_map(m, obj) {
    const char* t = libbpf_bpf_map_type_str(bpf_map__type(m));
    f.maps.push_back({bpf_map__name(m), MapRealName(obj, m), t ? t : "", bpf_map__max_entries(m)});
  }
}


void RunLoad(LoadJob& job, Slot& slot) {
  Clock::time_point start = Clock::now();
  PrintSink sink;
  sink.debug = job.logLevel > 0;
  PrintScope scope(&sink);
  auto state = std::make_unique<ObjectState>();  // every early return frees it
  state->name = job.name;

  if (job.timeoutMs > 0 && !job.precheckOnly && LoaderSignal() <= 0) {
    job.error.code = kErrSystem;
    job.error.message = "cannot load '" + job.name + "' with a timeout: every real-time signal (SIGRTMIN..SIGRTMAX) has a handler "
                        "of the host process, and the loader never replaces one; load without timeoutMs";
    return;
  }

  if (job.timeoutMs > 0 && MsSince(job.submitted) >= job.timeoutMs) {
    job.error.code = kErrTimeout;
    job.error.timeoutMs = job.timeoutMs;
    job.error.elapsedMs = MsSince(job.submitted);
    job.error.message = "loading '" + job.name + "' timed out while waiting for a loader thread";
    return;
  }
  if (!job.trusted || job.precheckOnly) {
    int sig = 0;
    double left = job.timeoutMs > 0 ? job.timeoutMs - MsSince(job.submitted) : 0;
    PreCheck pc = CheckOpen(job.elf, job.timeoutMs > 0 ? std::max(left, 1.0) : 0, &sig);
    if (pc == PreCheck::kCrashed || pc == PreCheck::kTimedOut) {
      job.error.code = pc == PreCheck::kTimedOut && job.timeoutMs > 0 ? kErrTimeout : kErrInvalid;
      job.error.timeoutMs = job.timeoutMs;
      job.error.elapsedMs = MsSince(job.submitted);
      job.error.message = pc == PreCheck::kCrashed
                              ? "'" + job.name + "' is not a usable BPF object: parsing it crashed libbpf (signal " +
                                    std::to_string(sig) + ") in an isolated process; the ELF is malformed"
                              : "'" + job.name + "': parsing the ELF did not finish in time (10 s of CPU time in an isolated process)";
      return;
    }
    // kRejected: the open below fails the same way and reports why
  }
  if (job.precheckOnly) {
    job.prechecked = true;
    return;
  }

  LIBBPF_OPTS(bpf_object_open_opts, opts);
  opts.object_name = job.name.c_str();
  opts.kernel_log_level = job.logLevel;
  if (!job.btfCustomPath.empty()) opts.btf_custom_path = job.btfCustomPath.c_str();
  errno = 0;
  bpf_object* obj = bpf_object__open_mem(job.elf.data(), job.elf.size(), &opts);
  long operr = libbpf_get_error(obj);
  state->openMs = MsSince(start);
  if (!obj || operr) {
    int err = operr ? static_cast<int>(-operr) : (errno ? errno : EINVAL);
    job.error.code = kErrInvalid;
    job.error.err = err;
    job.error.message = "'" + job.name + "' is not a usable BPF object: " + ErrText(err);
    RecordFailure(job, "open", err, sink, nullptr);
    return;
  }
  state->obj.reset(obj);

  // selective loading
  if (job.selectPrograms) {
    std::vector<std::string> missing = job.programs;
    bpf_program* prog;
    std::string all;
    bpf_object__for_each_program(prog, obj) {
      std::string n = bpf_program__name(prog);
      all += (all.empty() ? "" : ", ") + n;
      bool want = false;
      for (auto it = missing.begin(); it != missing.end(); ++it)
        if (*it == n) {
          want = true;
          missing.erase(it);
          break;
        }
      bool dup = false;
      for (auto& p : job.programs) dup = dup || p == n;
      bpf_program__set_autoload(prog, want || dup);
    }
    if (!missing.empty()) {
      job.configError = "unknown program '" + missing.front() + "' in '" + job.name + "'; it has: " + all;
      return;
    }
  }
  for (auto& [mapName, size] : job.mapSizes) {
    bpf_map* m = nullptr;
    {
      bpf_map* it;
      bpf_object__for_each_map(it, obj) {
        if (MapRealName(obj, it) == mapName) m = it;
      }
    }
    if (!m) {
      std::string all;
      bpf_map* it;
      bpf_object__for_each_map(it, obj) { all += (all.empty() ? "" : ", ") + MapRealName(obj, it); }
      job.configError = "unknown map '" + mapName + "' in mapSizes of '" + job.name + "'; it has: " + all;
      return;
    }
    if (bpf_map__set_max_entries(m, size) != 0) {
      job.configError = "cannot set max_entries of map '" + mapName + "'";
      return;
    }
  }
  std::string cerr = ApplyConstants(obj, job.constants);
  if (!cerr.empty()) {
    job.configError = cerr + " ('" + job.name + "')";
    return;
  }

  Clock::time_point loadStart = Clock::now();
  slot.hasDeadline = job.timeoutMs > 0;
  if (slot.hasDeadline)
    slot.deadline = job.submitted + std::chrono::microseconds(static_cast<int64_t>(job.timeoutMs * 1000.0));
  Watchdog::Get().Enter(&slot);
  errno = 0;
  int ret = bpf_object__load(obj);
  int savedErrno = errno;
  bool fired = Watchdog::Get().Leave(&slot);
  state->loadMs = MsSince(loadStart);
  if (ret != 0) {
    int err = ret < 0 ? -ret : (ret ? ret : savedErrno);
    job.error.err = err;
    if (fired) {
      job.error.code = kErrTimeout;
      job.error.timeoutMs = job.timeoutMs;
      job.error.elapsedMs = MsSince(job.submitted);
      job.error.message = "loading '" + job.name + "' timed out after " + std::to_string(static_cast<long>(job.timeoutMs)) +
                          " ms; the verifier was interrupted";
    } else {
      job.error.code = kErrInvalid;  // replaced in JS by the class classify.ts finds
      job.error.message = "loading '" + job.name + "' failed: " + ErrText(err);
      RecordFailure(job, "load", err, sink, obj);
    }
    // `state` (and with it the object and every fd libbpf opened) is freed on return
    return;
  }
  state->log = sink.text;
  state->Describe();
  job.state = std::move(state);
}

void Settle(Napi::Env env, Napi::Function, std::nullptr_t*, LoadJob* job);
using LoadTsfn = Napi::TypedThreadSafeFunction<std::nullptr_t, LoadJob, Settle>;

// Runs on the main thread outside any JS call: nothing may escape it. Rejecting can itself
// fail when the environment is terminating; then there is no one left to tell.
void Settle(Napi::Env env, Napi::Function, std::nullptr_t*, LoadJob* raw) {
  // Environment torn down: its cleanup hook (which runs before the TSFN's teardown) already
  // freed every queued job, so `raw` must not be touched.
  if (env == nullptr) return;
  std::unique_ptr<LoadJob> job(raw);
  {
    std::lock_guard<std::mutex> lock(job->link->mu);
    job->link->queued = nullptr;  // delivered: this call owns it
  }
  job->hook.Remove(env);
  try {
    Napi::HandleScope scope(env);
    if (!job->configError.empty()) {
      Napi::Error e = Napi::Error::New(env, job->configError);
      e.Value().Set("code", "ERR_CONFIG");
      job->deferred.Reject(e.Value());
    } else if (job->prechecked) {
      job->deferred.Resolve(env.Undefined());
    } else if (!job->state) {
      Napi::Error e = job->error.ToJs(env);
      if (job->failure.set) {
        job->failure.AddTo(env, e.Value());
        e.Value().Set("object", job->name);
      }
      job->deferred.Reject(e.Value());
    } else {
      job->deferred.Resolve(NewNativeObject(env, std::move(job->state)));
    }
  } catch (const Napi::Error& e) {
    try {
      job->deferred.Reject(e.Value());
    } catch (...) {
    }
  } catch (const std::exception& e) {
    try {
      NativeError ne;
      ne.message = std::string("load failed: ") + e.what();
      job->deferred.Reject(ne.ToJs(env).Value());
    } catch (...) {
    }
  }
}

Napi::Value Submit(Napi::Env env, LoadJob* job);

// A job for (elf: Uint8Array, options: object): the bytes, `name` and `timeoutMs`.
std::unique_ptr<LoadJob> NewJob(const Napi::CallbackInfo& info, const char* usage) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsTypedArray() || !info[1].IsObject()) throw Napi::TypeError::New(env, usage);
  auto job = std::make_unique<LoadJob>(env);
  Napi::Uint8Array elf = info[0].As<Napi::Uint8Array>();
  job->elf.assign(elf.Data(), elf.Data() + elf.ByteLength());
  Napi::Object o = info[1].As<Napi::Object>();
  job->name = o.Has("name") && o.Get("name").IsString() ? o.Get("name").As<Napi::String>().Utf8Value() : "object";
  if (o.Has("timeoutMs") && o.Get("timeoutMs").IsNumber()) job->timeoutMs = o.Get("timeoutMs").As<Napi::Number>().DoubleValue();
  return job;
}

// load(elf: Uint8Array, opts): Promise<NativeObject>
Napi::Value Load(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  InstallSignal();
  std::unique_ptr<LoadJob> job = NewJob(info, "load(elf: Uint8Array, options: object)");
  {
    Napi::Object o = info[1].As<Napi::Object>();
    if (o.Has("programs") && o.Get("programs").IsArray()) {
      job->selectPrograms = true;
      Napi::Array a = o.Get("programs").As<Napi::Array>();
      for (uint32_t i = 0; i < a.Length(); i++) job->programs.push_back(a.Get(i).ToString().Utf8Value());
    }
    if (o.Has("logLevel") && o.Get("logLevel").IsNumber()) job->logLevel = o.Get("logLevel").As<Napi::Number>().Uint32Value();
    if (o.Has("spentMs") && o.Get("spentMs").IsNumber())
      job->spentMs = std::max(0.0, o.Get("spentMs").As<Napi::Number>().DoubleValue());
    if (o.Has("trusted") && o.Get("trusted").IsBoolean()) job->trusted = o.Get("trusted").As<Napi::Boolean>().Value();
    if (o.Has("btfCustomPath") && o.Get("btfCustomPath").IsString())
      job->btfCustomPath = o.Get("btfCustomPath").As<Napi::String>().Utf8Value();
    if (o.Has("mapSizes") && o.Get("mapSizes").IsObject()) {
      Napi::Object ms = o.Get("mapSizes").As<Napi::Object>();
      Napi::Array keys = ms.GetPropertyNames();
      for (uint32_t i = 0; i < keys.Length(); i++) {
        std::string k = keys.Get(i).ToString().Utf8Value();
        job->mapSizes.emplace_back(k, ms.Get(k).As<Napi::Number>().Uint32Value());
      }
    }
    if (o.Has("constants") && o.Get("constants").IsObject()) {
      Napi::Object cs = o.Get("constants").As<Napi::Object>();
      Napi::Array keys = cs.GetPropertyNames();
      for (uint32_t i = 0; i < keys.Length(); i++) {
        Constant c;
        c.name = keys.Get(i).ToString().Utf8Value();
        Napi::Value v = cs.Get(c.name);
        if (v.IsTypedArray()) {
          Napi::Uint8Array b = v.As<Napi::Uint8Array>();
          c.isBytes = true;
          c.bytes.assign(b.Data(), b.Data() + b.ByteLength());
        } else if (v.IsBigInt()) {
          bool lossless;
          c.value = v.As<Napi::BigInt>().Uint64Value(&lossless);
        } else if (v.IsBoolean()) {
          c.value = v.As<Napi::Boolean>().Value() ? 1 : 0;
        } else {
          c.value = static_cast<uint64_t>(v.As<Napi::Number>().Int64Value());
        }
        job->constants.push_back(std::move(c));
      }
    }
  }
  return Submit(env, job.release());
}

// Runs `job` on a loader thread; its promise settles on the main thread (Settle).
Napi::Value Submit(Napi::Env env, LoadJob* job) {
  Napi::Promise promise = job->deferred.Promise();
  job->submitted = Clock::now() - std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double, std::milli>(job->spentMs));
  LoadTsfn tsfn = LoadTsfn::New(env, "smoothtask.load", 0, 1);
  std::shared_ptr<EnvLink> link = job->link;
  job->hook = env.AddCleanupHook(CleanupFn([link]() {
    LoadJob* orphan = nullptr;
    {
      std::lock_guard<std::mutex> lock(link->mu);
      link->dead = true;
      orphan = std::exchange(link->queued, nullptr);
    }
    delete orphan;  // queued on a TSFN that will never deliver it
  }));
  auto task = [job, tsfn, link]() mutable {
    static thread_local Slot slot;
    slot.tid = pthread_self();
    try {
      RunLoad(*job, slot);
    } catch (const std::exception& ex) {
      job->error.code = kErrSystem;
      job->error.message = std::string("load failed: ") + ex.what();
    } catch (...) {
      job->error.code = kErrSystem;
      job->error.message = "load failed";
    }
    std::lock_guard<std::mutex> lock(link->mu);
    if (link->dead) {  // its environment is gone (the TSFN with it): free the result here
      delete job;
      return;
    }
    if (tsfn.BlockingCall(job) != napi_ok)
      delete job;
    else
      link->queued = job;  // still under link->mu: Settle or the cleanup hook takes it
    tsfn.Release();
  };
  try {
    Pool::Get().Submit(std::move(task));
  } catch (const std::system_error& e) {  // no loader thread could be started
    job->hook.Remove(env);
    tsfn.Release();
    delete job;
    Throw(env, ErrnoError(e.code().value() ? e.code().value() : EAGAIN, "start a loader thread"));
  }
  return promise;
}

// precheck(elf: Uint8Array, opts: { name?, timeoutMs? }): Promise<void>. The pre-check alone
// (load_precheck.h), so JS can run it beside its own validator: resolves when the bytes may be
// opened in this process (libbpf opened or refused them without harm, or no pre-check process
// could judge them), rejects as a load would when parsing crashed libbpf or ran out of time.
Napi::Value Precheck(const Napi::CallbackInfo& info) {
  std::unique_ptr<LoadJob> job = NewJob(info, "precheck(elf: Uint8Array, options: object)");
  job->precheckOnly = true;
  return Submit(info.Env(), job.release());
}

// configure({ threads }): size of the loader pool.
Napi::Value Configure(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() > 0 && info[0].IsObject()) {
    Napi::Object o = info[0].As<Napi::Object>();
    if (o.Has("threads") && o.Get("threads").IsNumber()) Pool::Get().Resize(o.Get("threads").As<Napi::Number>().Uint32Value());
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("threads", Pool::Get().size());
  out.Set("running", Pool::Get().threads());
  out.Set("queued", Pool::Get().queued());
  out.Set("signal", std::max(InstallSignal(), 0));
  return out;
}

// progStats(fd): run time and count from bpf_prog_info (needs bpf_stats enabled).
Napi::Value ProgStats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  bpf_prog_info pi;
  std::memset(&pi, 0, sizeof(pi));
  uint32_t len = sizeof(pi);
  if (bpf_obj_get_info_by_fd(fd, &pi, &len) != 0) Throw(env, ErrnoError(errno, "bpf_obj_get_info_by_fd"));
  Napi::Object o = Napi::Object::New(env);
  o.Set("runTimeNs", static_cast<double>(pi.run_time_ns));
  o.Set("runCount", static_cast<double>(pi.run_cnt));
  o.Set("verifiedInsns", pi.verified_insns);
  return o;
}

// enableStats(): fd that keeps BPF_STATS_RUN_TIME on while open.
Napi::Value EnableStats(const Napi::CallbackInfo& info) {
  int fd = bpf_enable_stats(BPF_STATS_RUN_TIME);
  if (fd < 0) Throw(info.Env(), ErrnoError(errno, "bpf_enable_stats", "CAP_SYS_ADMIN", "bpf_stats"));
  return Napi::Number::New(info.Env(), fd);
}

Napi::Value CloseFd(const Napi::CallbackInfo& info) {
  int fd = info[0].As<Napi::Number>().Int32Value();
  if (fd >= 0) ::close(fd);
  return info.Env().Undefined();
}

// kernelBtfCostMs(): time to parse the kernel's BTF once (what every bpf_object__load pays).
Napi::Value KernelBtfCost(const Napi::CallbackInfo& info) {
  Clock::time_point t = Clock::now();
  struct btf* b = btf__load_vmlinux_btf();
  double ms = MsSince(t);
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("ms", ms);
  o.Set("types", b && !libbpf_get_error(b) ? btf__type_cnt(b) : 0);
  if (b && !libbpf_get_error(b)) btf__free(b);
  return o;
}

// The loader's threads are detached and outlive any one environment. Node unloads an addon
// when the last worker environment that loaded it exits; with a load still running that
// would unmap the code under the thread. Re-opening ourselves with RTLD_NODELETE keeps the
// library mapped for the life of the process.
void PinLibrary() {
  Dl_info info;
  if (dladdr(reinterpret_cast<void*>(&PinLibrary), &info) && info.dli_fname)
    dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
}

void Init(Napi::Env env, Napi::Object exports) {
  static std::once_flag once;
  std::call_once(once, [] {
    libbpf_set_print(PrintRoute);
    PinLibrary();
  });
  Napi::Object l = exports.Has("loader") ? exports.Get("loader").As<Napi::Object>() : Napi::Object::New(env);
  l.Set("load", Napi::Function::New(env, Load, "load"));
  l.Set("precheck", Napi::Function::New(env, Precheck, "precheck"));
  l.Set("configure", Napi::Function::New(env, Configure, "configure"));
  l.Set("progStats", Napi::Function::New(env, ProgStats, "progStats"));
  l.Set("enableStats", Napi::Function::New(env, EnableStats, "enableStats"));
  l.Set("closeFd", Napi::Function::New(env, CloseFd, "closeFd"));
  l.Set("kernelBtfCost", Napi::Function::New(env, KernelBtfCost, "kernelBtfCost"));
  exports.Set("loader", l);
}

}  // namespace
}  // namespace smoothtask

SMOOTHTASK_MODULE(loader, smoothtask::Init);
