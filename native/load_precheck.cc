#include "load_precheck.h"

#include <bpf/libbpf.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

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

}  // namespace smoothtask::load
