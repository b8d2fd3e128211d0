#include "load_pool.h"

#include <pthread.h>
#include <signal.h>

#include <chrono>
#include <thread>
#include <utility>

#include "load_watchdog.h"

namespace smoothtask::load {

Pool& Pool::Get() {
  static Pool* p = new Pool();  // leaked on purpose (detached threads)
  return *p;
}

void Pool::Submit(std::function<void()> fn) {
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

void Pool::Resize(unsigned n) {
  std::lock_guard<std::mutex> lock(mu_);
  size_ = n < 1 ? 1 : n;
  cv_.notify_all();  // extra threads exit when idle
}

unsigned Pool::size() {
  std::lock_guard<std::mutex> lock(mu_);
  return size_;
}

unsigned Pool::threads() {
  std::lock_guard<std::mutex> lock(mu_);
  return threads_;
}

unsigned Pool::queued() {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<unsigned>(q_.size());
}

Pool::Pool() {
  unsigned hw = std::thread::hardware_concurrency();
  size_ = hw ? hw : 2;
}

void Pool::Spawn() {
  std::thread t([this] { Run(); });  // may throw: count the thread only once it exists
  threads_++;
  t.detach();
}

void Pool::Run() {
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, nullptr);
  // The timeout signal is chosen (once) before the first thread leaves it unblocked, whatever
  // job started the thread (a pre-check job needs no signal, a later load on this thread does).
  InstallSignal();
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

}  // namespace smoothtask::load
