// The timeout of a load. The verifier returns -EAGAIN when a signal is pending, but libbpf
// retries BPF_PROG_LOAD on EAGAIN, so one signal only restarts the work: a watchdog thread
// therefore signals the loading thread every ~0.5 ms from its deadline until bpf_object__load
// returns. The signal is the addon's own: the first free real-time signal from SIGRTMAX-5 down
// (a handler of the host is never replaced), with an empty handler installed without
// SA_RESTART.
#pragma once

#include <pthread.h>

#include <condition_variable>
#include <mutex>
#include <vector>

#include "load_clock.h"

namespace smoothtask::load {

// The loader's signal: 0 before InstallSignal, -1 when every real-time signal is taken (timed
// loads then fail with ERR_BPF_SYSTEM; untimed ones work).
int LoaderSignal();

// Chooses and installs the loader's signal (once); returns LoaderSignal().
int InstallSignal();

// A loading thread, as the watchdog sees it.
struct Slot {
  pthread_t tid{};
  bool inLoad = false;
  Clock::time_point deadline{};
  bool hasDeadline = false;
  bool fired = false;
};

class Watchdog {
 public:
  // The one watchdog (its thread starts on first use; never destroyed: threads outlive static destructors).
  static Watchdog& Get();
  // The slot's thread starts a load (signalled from its deadline on, when it has one).
  void Enter(Slot* s);
  // The load returned; whether the slot was signalled.
  bool Leave(Slot* s);

 private:
  Watchdog();
  void Run();
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Slot*> slots_;
};

}  // namespace smoothtask::load
