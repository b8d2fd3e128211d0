// The loader's own thread pool (never libuv's: a load can take seconds and would starve fs and
// DNS work). Its threads block every signal but the loader's (a host application's profiler
// signals cannot disturb a load); idle threads leave after 30 s.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>

namespace smoothtask::load {

class Pool {
 public:
  // The one pool (never destroyed: its threads are detached).
  static Pool& Get();
  // Runs `fn` on a pool thread. Throws std::system_error when no thread can be started and none
  // exists to run it.
  void Submit(std::function<void()> fn);
  // At most `n` threads (at least 1); extra ones leave when idle.
  void Resize(unsigned n);
  unsigned size();
  unsigned threads();
  unsigned queued();

 private:
  Pool();
  void Spawn();  // mu_ held
  void Run();
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> q_;
  unsigned size_ = 2, threads_ = 0, idle_ = 0;
};

}  // namespace smoothtask::load
