// Loading BPF objects off the main thread, on the addon's own thread pool (never libuv's:
// a load can take seconds and would starve fs and DNS work), with a timeout that really
// stops the verifier.
//
// Timeout: the verifier returns -EAGAIN when a signal is pending, but libbpf retries
// BPF_PROG_LOAD on EAGAIN, so one signal only restarts the work. A watchdog thread
// therefore signals the loading thread every ~0.5 ms from the deadline until
// bpf_object__load returns. The signal is the addon's own (the first free real-time signal from
// SIGRTMAX-5 down; a handler of the host is never replaced; empty handler,
// installed without SA_RESTART); loader threads block every other signal so a host
// application's profiler signals cannot disturb a load.
//
// libbpf_set_print is global and not thread-safe in libbpf 1.1: it is set once and routes
// messages to the load running on the calling thread through a thread_local.
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <dlfcn.h>
#include <bpf/libbpf.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdarg>
#include <cstring>
#include <deque>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "errors.h"
#include "module.h"
#include "object.h"

namespace smoothtask {
namespace {

using Clock = std::chrono::steady_clock;

// strerror that also knows libbpf's own error numbers (LIBBPF_ERRNO__*, 4000+)
std::string ErrText(int err) {
  if (err < 0) err = -err;
  char buf[256];
  if (libbpf_strerror(err, buf, sizeof(buf)) == 0) return buf;
  return std::strerror(err);
}

double MsSince(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

// The real-time signal that interrupts a timed-out load: chosen once, on first use, as the
// first one (SIGRTMAX-5 down to SIGRTMIN, then SIGRTMAX-4 up to SIGRTMAX) whose disposition is
// still SIG_DFL. A signal the host process handles or ignores is never replaced. 0: not chosen
// yet; -1: none is free (timed loads then fail with ERR_BPF_SYSTEM, untimed ones work).
std::atomic<int> g_loaderSignal{0};
int LoaderSignal() { return g_loaderSignal.load(std::memory_order_acquire); }

// ---------------------------------------------------------------------------- libbpf print

struct PrintSink {
  std::string text;  // everything routed (debug lines too when logLevel > 0)
  std::string warn;  // WARN and INFO lines only: the same whatever the log level (classification)
  bool debug = false;
};
thread_local PrintSink* t_sink = nullptr;

int PrintRoute(enum libbpf_print_level level, const char* fmt, va_list ap) {
  PrintSink* sink = t_sink;
  if (!sink) return 0;  // not a load of ours (or a probe): drop
  if (level == LIBBPF_DEBUG && !sink->debug) return 0;
  va_list cp;
  va_copy(cp, ap);
  char small[512];
  int n = std::vsnprintf(small, sizeof(small), fmt, cp);
  va_end(cp);
  if (n < 0) return 0;
  if (static_cast<size_t>(n) < sizeof(small)) {
    sink->text.append(small, n);
    if (level != LIBBPF_DEBUG) sink->warn.append(small, n);
  } else {
    std::string big(static_cast<size_t>(n) + 1, '\0');
    std::vsnprintf(&big[0], big.size(), fmt, ap);
    big.resize(n);
    sink->text += big;
    if (level != LIBBPF_DEBUG) sink->warn += big;
  }
  return n;
}

struct PrintScope {
  explicit PrintScope(PrintSink* s) { t_sink = s; }
  ~PrintScope() { t_sink = nullptr; }
};

// ---------------------------------------------------------------------------- watchdog

struct Slot {
  pthread_t tid{};
  bool inLoad = false;
  Clock::time_point deadline{};
  bool hasDeadline = false;
  bool fired = false;
};

class Watchdog {
 public:
  static Watchdog& Get() {
    static Watchdog* w = new Watchdog();  // leaked on purpose: threads outlive static destructors
    return *w;
  }
  void Enter(Slot* s) {
    std::lock_guard<std::mutex> lock(mu_);
    s->inLoad = true;
    s->fired = false;
    slots_.push_back(s);
    cv_.notify_all();
  }
  // Returns whether the slot was signalled.
  bool Leave(Slot* s) {
    std::lock_guard<std::mutex> lock(mu_);
    s->inLoad = false;
    for (size_t i = 0; i < slots_.size(); i++)
      if (slots_[i] == s) {
        slots_.erase(slots_.begin() + i);
        break;
      }
    return s->fired;
  }

 private:
  Watchdog() {
    std::thread([this] { Run(); }).detach();
  }
  void Run() {
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, nullptr);
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      bool any = false;
      Clock::time_point earliest = Clock::time_point::max();
      for (Slot* s : slots_)
        if (s->inLoad && s->hasDeadline) {
          any = true;
          if (s->deadline < earliest) earliest = s->deadline;
        }
      if (!any) {
        cv_.wait(lock);
        continue;
      }
      Clock::time_point now = Clock::now();
      if (now < earliest) {
        cv_.wait_until(lock, earliest);
        continue;
      }
      for (Slot* s : slots_)
        if (s->inLoad && s->hasDeadline && s->deadline <= now && LoaderSignal() > 0) {
          s->fired = true;
          pthread_kill(s->tid, LoaderSignal());
        }
      // keep signalling: libbpf retries BPF_PROG_LOAD on EAGAIN
      cv_.wait_for(lock, std::chrono::microseconds(500));
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Slot*> slots_;
};

void EmptyHandler(int) {}

// Whether `sig` has its default disposition (no handler, not ignored): only then is it ours.
bool SignalIsFree(int sig) {
  struct sigaction cur;
  std::memset(&cur, 0, sizeof(cur));
  if (sigaction(sig, nullptr, &cur) != 0) return false;
  return !(cur.sa_flags & SA_SIGINFO) && cur.sa_handler == SIG_DFL;
}

// Returns the loader's signal, or -1 when every real-time signal is taken.
int InstallSignal() {
  static std::once_flag once;
  std::call_once(once, [] {
    std::vector<int> candidates;
    for (int s = SIGRTMAX - 5; s >= SIGRTMIN; s--) candidates.push_back(s);
    for (int s = SIGRTMAX - 4; s <= SIGRTMAX; s++) candidates.push_back(s);
    int chosen = -1;
    for (int s : candidates) {
      if (!SignalIsFree(s)) continue;
      struct sigaction sa;
      std::memset(&sa, 0, sizeof(sa));
      sa.sa_handler = EmptyHandler;
      sigemptyset(&sa.sa_mask);
      sa.sa_flags = 0;  // no SA_RESTART: the verifier must see the signal and return
      if (sigaction(s, &sa, nullptr) == 0) {
        chosen = s;
        break;
      }
    }
    g_loaderSignal.store(chosen, std::memory_order_release);
  });
  return LoaderSignal();
}

// ---------------------------------------------------------------------------- pool

class Pool {
 public:
  static Pool& Get() {
    static Pool* p = new Pool();  // leaked on purpose (detached threads)
    return *p;
  }
  // Throws std::system_error when no thread can be started and none exists to run `fn`.
  void Submit(std::function<void()> fn) {
    std::lock_guard<std::mutex> lock(mu_);
    q_.push_back(std::move(fn));
    if (q_.size() > idle_ && threads_ < size_) {
      try {
        Spawn();
      } catch (...) {  // EAGAIN (thread limit): a running thread takes the job later, else refuse it
        if (threads_ == 0) {
          q_.pop_back();
          throw;
        }
      }
    }
    cv_.notify_one();
  }
  void Resize(unsigned n) {
    std::lock_guard<std::mutex> lock(mu_);
    size_ = n < 1 ? 1 : n;
    cv_.notify_all();  // extra threads exit when idle
  }
  unsigned size() {
    std::lock_guard<std::mutex> lock(mu_);
    return size_;
  }
  unsigned threads() {
    std::lock_guard<std::mutex> lock(mu_);
    return threads_;
  }
  unsigned queued() {
    std::lock_guard<std::mutex> lock(mu_);
    return static_cast<unsigned>(q_.size());
  }

 private:
  Pool() {
    unsigned hw = std::thread::hardware_concurrency();
    size_ = hw ? hw : 2;
  }
  void Spawn() {  // mu_ held
    std::thread t([this] { Run(); });  // may throw: count the thread only once it exists
    threads_++;
    t.detach();
  }
  void Run() {
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, nullptr);
    if (LoaderSignal() > 0) {
      sigset_t own;
      sigemptyset(&own);
      sigaddset(&own, LoaderSignal());
      pthread_sigmask(SIG_UNBLOCK, &own, nullptr);
    }
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      if (threads_ > size_) break;
      if (q_.empty()) {
        idle_++;
        // idle threads go away after a while so a quiet process holds no loader threads
        bool woke = cv_.wait_for(lock, std::chrono::seconds(30), [this] { return !q_.empty() || threads_ > size_; });
        idle_--;
        if (!woke) break;
        continue;
      }
      auto fn = std::move(q_.front());
      q_.pop_front();
      lock.unlock();
      fn();
      lock.lock();
    }
    threads_--;
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> q_;
  unsigned size_ = 2, threads_ = 0, idle_ = 0;
};

// ---------------------------------------------------------------------------- ELF pre-check

// libbpf 1.1 crashes on some malformed ELF files while opening them (found by the fuzz
// tests: out-of-range section and symbol indexes). So bytes not seen before are first opened
// in a forked child: a crash there costs a child, not the Node process. glibc's fork keeps
// malloc usable in the child; the child calls only libbpf/libelf and _exit.
//
// Only the object's own work may fail it. The child parses memory and does no I/O, so a child
// that sleeps (state S/D) with its CPU time standing still is stuck on a lock it inherited from
// another thread at fork() (a sanitizer runtime's allocator lock is one), not parsing: that is
// `kStalled`, and the load goes on without the pre-check (the in-process validator already ran)
// as when fork() fails. In the sanitizer build a child can also spin on such a lock (see
// kSpinIsStalledMs). Without a caller's timeout, a slow child on a loaded host is waited
// for: the object is judged hung only after 10 s of the child's own CPU time (`kTimedOut`),
// and a child that neither finishes nor burns CPU within 120 s of wall time is `kStalled`.
enum class PreCheck { kOk, kRejected, kCrashed, kTimedOut, kStalled, kUnavailable };

// State letter and CPU time (user + system, ms) of a child, from /proc/<pid>/stat.
bool ChildCpu(pid_t pid, char* state, double* cpuMs) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(f, line)) return false;
  size_t close = line.rfind(')');
  if (close == std::string::npos || close + 2 >= line.size()) return false;
  const char* p = line.c_str() + close + 2;  // field 3, the state
  *state = *p;
  unsigned long long ticks[2] = {0, 0};
  for (int field = 3; field <= 15 && *p; field++) {
    if (field == 14 || field == 15) ticks[field - 14] = strtoull(p, nullptr, 10);
    while (*p && *p != ' ') p++;
    while (*p == ' ') p++;
  }
  long hz = sysconf(_SC_CLK_TCK);
  *cpuMs = static_cast<double>(ticks[0] + ticks[1]) * 1000.0 / static_cast<double>(hz > 0 ? hz : 100);
  return true;
}

#if defined(__SANITIZE_ADDRESS__)
// The sanitizer build only: GCC 12's libasan has no fork handler for its allocator, so a child
// forked while another thread holds the allocator's spin lock spins on it forever (sched_yield
// between attempts), burning CPU. Under ASan, 2 s of child CPU without an ending is taken as
// that (kStalled: the load goes on in-process), not as parsing. glibc's malloc is fork-safe.
constexpr double kSpinIsStalledMs = 2000;
#else
constexpr double kSpinIsStalledMs = 0;  // never: CPU is parsing, judged by kCpuLimitMs
#endif

PreCheck ForkCheckOpen(const std::vector<uint8_t>& elf, double timeoutMs, int* signalOut) {
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) return PreCheck::kUnavailable;
  if (pid == 0) {
    // The child never outlives the process that waits for it (a killed Node process once left a
    // child spinning on an inherited sanitizer lock for an hour).
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(1);
    // Test hook (test/ebpf/precheck.test.ts): a child stuck as if on an inherited lock.
    const char* hook = getenv("SMOOTHTASK_TEST_PRECHECK");
    if (hook && strcmp(hook, "stall") == 0)
      for (;;) pause();
    if (hook && strcmp(hook, "spin") == 0)  // as if spinning on an inherited spin lock
      for (;;) syscall(SYS_sched_yield);
    libbpf_set_print(nullptr);
    LIBBPF_OPTS(bpf_object_open_opts, opts);
    opts.object_name = "precheck";
    bpf_object* obj = bpf_object__open_mem(elf.data(), elf.size(), &opts);
    _exit(obj && !libbpf_get_error(obj) ? 0 : 1);
  }
  const double kCpuLimitMs = 10000, kWallLimitMs = 120000, kSleepingLimitMs = 2000;
  Clock::time_point start = Clock::now();
  double lastSample = 0, lastCpu = -1, sleepingSince = -1;
  PreCheck verdict = PreCheck::kOk;
  for (;;) {
    int status = 0;
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) {
      if (WIFEXITED(status)) return WEXITSTATUS(status) == 0 ? PreCheck::kOk : PreCheck::kRejected;
      if (WIFSIGNALED(status)) *signalOut = WTERMSIG(status);
      return PreCheck::kCrashed;
    }
    if (r < 0 && errno != EINTR) return PreCheck::kUnavailable;
    double now = MsSince(start);
    if (timeoutMs > 0 && now > timeoutMs) {
      verdict = PreCheck::kTimedOut;  // the caller's deadline
    } else if (now > kWallLimitMs) {
      verdict = PreCheck::kStalled;
    } else if (now - lastSample >= 50 && now >= 500) {
      lastSample = now;
      char state = 0;
      double cpu = 0;
      if (ChildCpu(pid, &state, &cpu)) {
        if (cpu >= kCpuLimitMs) verdict = PreCheck::kTimedOut;  // parsing, and not finishing
        bool sleeping = (state == 'S' || state == 'D') && cpu == lastCpu;
        if (!sleeping) sleepingSince = -1;
        else if (sleepingSince < 0) sleepingSince = now;
        else if (now - sleepingSince >= kSleepingLimitMs) verdict = PreCheck::kStalled;
        if (kSpinIsStalledMs > 0 && cpu >= kSpinIsStalledMs) verdict = PreCheck::kStalled;
        lastCpu = cpu;
      }
    }
    if (verdict != PreCheck::kOk) {
      kill(pid, SIGKILL);
      while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      return verdict;
    }
    usleep(now < 100 ? 100 : 1000);
  }
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
  bool trusted = false;  // bytes already opened safely in this process: skip the fork check
  std::string btfCustomPath;
  Clock::time_point submitted;
  // outputs
  std::unique_ptr<ObjectState> state;
  NativeError error;
  LoadFailure failure;
  std::string configError;
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

  if (job.timeoutMs > 0 && MsSince(job.submitted) >= job.timeoutMs) {
    job.error.code = kErrTimeout;
    job.error.timeoutMs = job.timeoutMs;
    job.error.elapsedMs = MsSince(job.submitted);
    job.error.message = "loading '" + job.name + "' timed out while waiting for a loader thread";
    return;
  }
  if (job.timeoutMs > 0 && LoaderSignal() <= 0) {
    job.error.code = kErrSystem;
    job.error.message = "cannot load '" + job.name + "' with a timeout: every real-time signal (SIGRTMIN..SIGRTMAX) has a handler "
                        "of the host process, and the loader never replaces one; load without timeoutMs";
    return;
  }

  if (!job.trusted) {
    int sig = 0;
    double left = job.timeoutMs > 0 ? job.timeoutMs - MsSince(job.submitted) : 0;
    PreCheck pc = ForkCheckOpen(job.elf, job.timeoutMs > 0 ? std::max(left, 1.0) : 0, &sig);
    if (pc == PreCheck::kCrashed || pc == PreCheck::kTimedOut) {
      job.error.code = pc == PreCheck::kTimedOut && job.timeoutMs > 0 ? kErrTimeout : kErrInvalid;
      job.error.timeoutMs = job.timeoutMs;
      job.error.elapsedMs = MsSince(job.submitted);
      job.error.message = pc == PreCheck::kCrashed
                              ? "'" + job.name + "' is not a usable BPF object: parsing it crashed libbpf (signal " +
                                    std::to_string(sig) + ") in an isolated child; the ELF is malformed"
                              : "'" + job.name + "': parsing the ELF did not finish in time (10 s of CPU time in an isolated child)";
      return;
    }
    // kRejected: the open below fails the same way and reports why
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

// load(elf: Uint8Array, opts): Promise<NativeObject>
Napi::Value Load(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsTypedArray() || !info[1].IsObject())
    throw Napi::TypeError::New(env, "load(elf: Uint8Array, options: object)");
  InstallSignal();
  auto* job = new LoadJob(env);
  Napi::Promise promise = job->deferred.Promise();
  try {
    Napi::Uint8Array elf = info[0].As<Napi::Uint8Array>();
    job->elf.assign(elf.Data(), elf.Data() + elf.ByteLength());
    Napi::Object o = info[1].As<Napi::Object>();
    job->name = o.Has("name") && o.Get("name").IsString() ? o.Get("name").As<Napi::String>().Utf8Value() : "object";
    if (o.Has("programs") && o.Get("programs").IsArray()) {
      job->selectPrograms = true;
      Napi::Array a = o.Get("programs").As<Napi::Array>();
      for (uint32_t i = 0; i < a.Length(); i++) job->programs.push_back(a.Get(i).ToString().Utf8Value());
    }
    if (o.Has("logLevel") && o.Get("logLevel").IsNumber()) job->logLevel = o.Get("logLevel").As<Napi::Number>().Uint32Value();
    if (o.Has("timeoutMs") && o.Get("timeoutMs").IsNumber()) job->timeoutMs = o.Get("timeoutMs").As<Napi::Number>().DoubleValue();
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
  } catch (...) {
    delete job;
    throw;
  }
  job->submitted = Clock::now();
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
