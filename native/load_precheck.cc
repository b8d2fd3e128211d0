#include "load_precheck.h"

#include <bpf/libbpf.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <string>
#include <vector>

#include "load_clock.h"

namespace smoothtask::load {
namespace {

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

// How a pre-check process is judged while it works: only by its own work (see the header).
class Judge {
 public:
  // `cpuBaseMs`: CPU time the process had used before this check (a helper's earlier checks).
  Judge(pid_t pid, double timeoutMs, double cpuBaseMs) : pid_(pid), timeoutMs_(timeoutMs), lastCpu_(-1), cpuBase_(cpuBaseMs) {}
  // kOk while the process may go on working; otherwise the verdict (the caller kills it).
  PreCheck Now() {
    const double kCpuLimitMs = 10000, kWallLimitMs = 120000, kSleepingLimitMs = 2000;
    double now = MsSince(start_);
    if (timeoutMs_ > 0 && now > timeoutMs_) return PreCheck::kTimedOut;  // the caller's deadline
    if (now > kWallLimitMs) return PreCheck::kStalled;
    if (now - lastSample_ < 50 || now < 500) return PreCheck::kOk;
    lastSample_ = now;
    char state = 0;
    double cpu = 0;
    if (!ChildCpu(pid_, &state, &cpu)) return PreCheck::kOk;
    cpu -= cpuBase_;
    PreCheck verdict = PreCheck::kOk;
    if (cpu >= kCpuLimitMs) verdict = PreCheck::kTimedOut;  // parsing, and not finishing
    bool sleeping = (state == 'S' || state == 'D') && cpu == lastCpu_;
    if (!sleeping) sleepingSince_ = -1;
    else if (sleepingSince_ < 0) sleepingSince_ = now;
    else if (now - sleepingSince_ >= kSleepingLimitMs) verdict = PreCheck::kStalled;
    if (kSpinIsStalledMs > 0 && cpu >= kSpinIsStalledMs) verdict = PreCheck::kStalled;
    lastCpu_ = cpu;
    return verdict;
  }
  // Milliseconds the caller may sleep before the next Now() (the next sample or the deadline).
  int SleepMs() const {
    double now = MsSince(start_);
    double next = now < 500 ? 500 - now : 50;
    if (timeoutMs_ > 0) next = std::min(next, timeoutMs_ - now + 1);
    return static_cast<int>(std::max(1.0, std::min(next, 50.0)));
  }

 private:
  pid_t pid_;
  double timeoutMs_, lastCpu_, cpuBase_;
  double lastSample_ = 0, sleepingSince_ = -1;
  Clock::time_point start_ = Clock::now();
};

// Waits for `pid` to end; its wait status.
int Reap(pid_t pid) {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return status;
}

void KillAndReap(pid_t pid) {
  kill(pid, SIGKILL);
  Reap(pid);
}

// ------------------------------------------------------------------ the helper process

struct Helper {
  pid_t pid = -1;
  int fd = -1;  // our end of its socket (non-blocking, close-on-exec)
};

std::mutex gHelpersMu;
std::vector<Helper> gIdle;  // helpers between checks
constexpr size_t kMaxIdle = 4;

// smoothtask-precheck beside the loaded smoothtask.node ("" when it is not there).
const std::string& HelperPath() {
  static const std::string path = [] {
    Dl_info info{};
    if (!dladdr(reinterpret_cast<void*>(&CheckOpen), &info) || !info.dli_fname) return std::string();
    std::string p = info.dli_fname;
    size_t slash = p.rfind('/');
    p = (slash == std::string::npos ? std::string(".") : p.substr(0, slash)) + "/smoothtask-precheck";
    return access(p.c_str(), X_OK) == 0 ? p : std::string();
  }();
  return path;
}

bool SpawnHelper(Helper* h) {
  const std::string& path = HelperPath();
  if (path.empty()) return false;
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return false;
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&fa);
  posix_spawnattr_init(&attr);
  posix_spawn_file_actions_adddup2(&fa, sv[1], 0);  // the dup is not close-on-exec
  // The loader's threads block signals and Node ignores SIGPIPE: the helper starts clean.
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  char name[] = "smoothtask-precheck";
  char* argv[] = {name, nullptr};
  char* envp[] = {nullptr};  // nothing of the host's environment (an LD_PRELOAD, for one)
  pid_t pid = -1;
  int rc = posix_spawn(&pid, path.c_str(), &fa, &attr, argv, envp);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  close(sv[1]);
  if (rc != 0) {
    close(sv[0]);
    return false;
  }
  fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
  h->pid = pid;
  h->fd = sv[0];
  return true;
}

void Discard(Helper& h) {
  KillAndReap(h.pid);
  close(h.fd);
}

void Release(Helper& h) {
  std::lock_guard<std::mutex> lock(gHelpersMu);
  if (gIdle.size() < kMaxIdle) {
    gIdle.push_back(h);
    return;
  }
  close(h.fd);  // it sees the end of its socket and exits
  Reap(h.pid);
}

uint32_t TestHook() {
  const char* hook = getenv("SMOOTHTASK_TEST_PRECHECK");
  if (hook && strcmp(hook, "stall") == 0) return 1;
  if (hook && strcmp(hook, "spin") == 0) return 2;
  if (hook && strcmp(hook, "crash") == 0) return 3;
  return 0;
}

// One check in a helper. kUnavailable: no helper could take it (none there, spawn failed, or
// it ended without a signal before answering).
PreCheck HelperCheckOpen(const std::vector<uint8_t>& elf, double timeoutMs, int* signalOut) {
  Helper h;
  {
    std::lock_guard<std::mutex> lock(gHelpersMu);
    if (!gIdle.empty()) {
      h = gIdle.back();
      gIdle.pop_back();
    }
  }
  if (h.pid < 0 && !SpawnHelper(&h)) return PreCheck::kUnavailable;
  char state = 0;
  double cpuBase = 0;
  ChildCpu(h.pid, &state, &cpuBase);
  Judge judge(h.pid, timeoutMs, cpuBase);
  // header and bytes, sent as the helper reads them
  uint8_t header[12];
  uint64_t size = elf.size();
  uint32_t hook = TestHook();
  memcpy(header, &size, 8);
  memcpy(header + 8, &hook, 4);
  size_t sent = 0, total = sizeof(header) + elf.size();
  for (;;) {
    while (sent < total) {
      const uint8_t* from = sent < sizeof(header) ? header + sent : elf.data() + (sent - sizeof(header));
      size_t n = sent < sizeof(header) ? sizeof(header) - sent : total - sent;
      ssize_t w = send(h.fd, from, n, MSG_NOSIGNAL);
      if (w > 0) sent += static_cast<size_t>(w);
      else if (w < 0 && errno == EINTR) continue;
      else break;  // EAGAIN: wait below; EPIPE etc.: the reply read below sees the end
    }
    pollfd p{h.fd, static_cast<short>(POLLIN | (sent < total ? POLLOUT : 0)), 0};
    int r = poll(&p, 1, judge.SleepMs());
    if (r < 0 && errno != EINTR) {
      Discard(h);
      return PreCheck::kUnavailable;
    }
    if (r > 0 && (p.revents & (POLLIN | POLLHUP | POLLERR))) {
      uint8_t verdict = 0;
      ssize_t got = recv(h.fd, &verdict, 1, 0);
      if (got == 1 && sent == total) {
        Release(h);
        return verdict == 0 ? PreCheck::kOk : PreCheck::kRejected;
      }
      if (got < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (got == 1) {  // an answer before the whole request: not the helper we speak to
        Discard(h);
        return PreCheck::kUnavailable;
      }
      // the helper ended: how?
      close(h.fd);
      int status = Reap(h.pid);
      if (WIFSIGNALED(status)) {
        *signalOut = WTERMSIG(status);
        return PreCheck::kCrashed;
      }
      return PreCheck::kUnavailable;
    }
    PreCheck verdict = judge.Now();
    if (verdict != PreCheck::kOk) {
      Discard(h);
      return verdict;
    }
  }
}

}  // namespace

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
    uint32_t hook = TestHook();
    if (hook == 1)
      for (;;) pause();
    if (hook == 2)  // as if spinning on an inherited spin lock
      for (;;) syscall(SYS_sched_yield);
    if (hook == 3) {  // as libbpf does on some malformed ELF (past any handler of the host)
      signal(SIGSEGV, SIG_DFL);
      sigset_t segv;  // a loader thread blocks signals; a real fault is delivered regardless
      sigemptyset(&segv);
      sigaddset(&segv, SIGSEGV);
      pthread_sigmask(SIG_UNBLOCK, &segv, nullptr);
      raise(SIGSEGV);
    }
    libbpf_set_print(nullptr);
    LIBBPF_OPTS(bpf_object_open_opts, opts);
    opts.object_name = "precheck";
    bpf_object* obj = bpf_object__open_mem(elf.data(), elf.size(), &opts);
    _exit(obj && !libbpf_get_error(obj) ? 0 : 1);
  }
  Judge judge(pid, timeoutMs, 0);
  Clock::time_point start = Clock::now();
  for (;;) {
    int status = 0;
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) {
      if (WIFEXITED(status)) return WEXITSTATUS(status) == 0 ? PreCheck::kOk : PreCheck::kRejected;
      if (WIFSIGNALED(status)) *signalOut = WTERMSIG(status);
      return PreCheck::kCrashed;
    }
    if (r < 0 && errno != EINTR) return PreCheck::kUnavailable;
    PreCheck verdict = judge.Now();
    if (verdict != PreCheck::kOk) {
      KillAndReap(pid);
      return verdict;
    }
    usleep(MsSince(start) < 100 ? 100 : 1000);
  }
}

PreCheck CheckOpen(const std::vector<uint8_t>& elf, double timeoutMs, int* signalOut, bool* inHelper) {
  const char* mode = getenv("SMOOTHTASK_PRECHECK");
  if (!mode || strcmp(mode, "fork") != 0) {
    PreCheck pc = HelperCheckOpen(elf, timeoutMs, signalOut);
    if (pc != PreCheck::kUnavailable) {
      if (inHelper) *inHelper = true;
      return pc;
    }
  }
  if (inHelper) *inHelper = false;
  return ForkCheckOpen(elf, timeoutMs, signalOut);
}

}  // namespace smoothtask::load
