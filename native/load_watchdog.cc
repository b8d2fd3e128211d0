#include "load_watchdog.h"

#include <signal.h>

#include <atomic>
#include <cstring>
#include <thread>

namespace smoothtask::load {
namespace {

// The real-time signal that interrupts a timed-out load: chosen once, on first use, as the
// first one (SIGRTMAX-5 down to SIGRTMIN, then SIGRTMAX-4 up to SIGRTMAX) whose disposition is
// still SIG_DFL. A signal the host process handles or ignores is never replaced.
std::atomic<int> g_loaderSignal{0};

void EmptyHandler(int) {}

// Whether `sig` has its default disposition (no handler, not ignored): only then is it ours.
bool SignalIsFree(int sig) {
  struct sigaction cur;
  std::memset(&cur, 0, sizeof(cur));
  if (sigaction(sig, nullptr, &cur) != 0) return false;
  return !(cur.sa_flags & SA_SIGINFO) && cur.sa_handler == SIG_DFL;
}

}  // namespace

int LoaderSignal() { return g_loaderSignal.load(std::memory_order_acquire); }

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

Watchdog& Watchdog::Get() {
  static Watchdog* w = new Watchdog();  // leaked on purpose: threads outlive static destructors
  return *w;
}

void Watchdog::Enter(Slot* s) {
  std::lock_guard<std::mutex> lock(mu_);
  s->inLoad = true;
  s->fired = false;
  slots_.push_back(s);
  cv_.notify_all();
}

bool Watchdog::Leave(Slot* s) {
  std::lock_guard<std::mutex> lock(mu_);
  s->inLoad = false;
  for (size_t i = 0; i < slots_.size(); i++)
    if (slots_[i] == s) {
      slots_.erase(slots_.begin() + i);
      break;
    }
  return s->fired;
}

Watchdog::Watchdog() {
  std::thread([this] { Run(); }).detach();
}

void Watchdog::Run() {
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

}  // namespace smoothtask::load
