// Perf buffer consumer (BPF_MAP_TYPE_PERF_EVENT_ARRAY): the fallback of native/ringbuf.cc for
// kernels without ringbuf, built the same way: one dedicated std::thread per consumer, bounded
// batches, one ThreadSafeFunction call per batch with the same (data, offsets, count) format.
//
// Differences forced by libbpf 1.1's perf buffer API:
// - The sample callback returns void, so it cannot end a poll early. perf_buffer__poll reads
//   each ready per-CPU ring only up to the head it saw on entry, so one poll is bounded by the
//   rings' size; batches are bounded by flushing from inside the callback once full.
// - Backpressure: at the high-water mark the callback itself waits (the thread stops reading),
//   the per-CPU rings fill and the kernel counts the samples it could not write; libbpf reports
//   them through the lost callback (PERF_RECORD_LOST), summed in `lost`.
// - libbpf's epoll set stores per-CPU buffer pointers in epoll data, so a foreign fd must not
//   be added to it, and nesting it in another epoll set loses wake-ups (perf's poll clears the
//   pending flag when the outer set checks the inner one). The thread waits on its own epoll
//   set holding every per-CPU buffer fd (perf_buffer__buffer_fd) and the close eventfd, and
//   reads a ready buffer with perf_buffer__consume_buffer (each read stops at the head it saw).
// Shutdown as for ring buffers: stop flag + eventfd + condition variable, join; from close(),
// the destructor (finalizer), the env cleanup hook and atexit.
#include <bpf/libbpf.h>
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "errors.h"
#include "fd.h"
#include "module.h"
#include "record_batch.h"
#include "consumer.h"
#include <fcntl.h>
#include <system_error>

namespace smoothtask {
namespace {

using Batch = RecordBatch;

constexpr uint32_t kWakeTag = UINT32_MAX;  // epoll data of the close eventfd; buffers use their index

class PerfConsumer;
std::mutex g_liveMu;
std::set<PerfConsumer*> g_live;
std::atomic<bool> g_exiting{false};
std::once_flag g_atexitOnce;
void StopAllAtExit();

class PerfConsumer : public Napi::ObjectWrap<PerfConsumer> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "PerfBufferConsumer",
                       {InstanceMethod("ack", &PerfConsumer::Ack), InstanceMethod("stats", &PerfConsumer::Stats),
                        InstanceMethod("ref", &PerfConsumer::Ref_), InstanceMethod("unref", &PerfConsumer::Unref_),
                        InstanceMethod("close", &PerfConsumer::Close)});
  }

  // (mapFd, { batchSize, highWaterMark, batchBytes, pageCount }, onBatch(data, offsets, count))
  explicit PerfConsumer(const Napi::CallbackInfo& info) : Napi::ObjectWrap<PerfConsumer>(info), env_(info.Env()) {
    Napi::Env env = info.Env();
    if (info.Length() < 3 || !info[0].IsNumber() || !info[1].IsObject() || !info[2].IsFunction())
      throw Napi::TypeError::New(env, "PerfBufferConsumer(mapFd, opts, onBatch)");
    Napi::Object o = info[1].As<Napi::Object>();
    batchSize_ = std::max<uint32_t>(1, o.Get("batchSize").As<Napi::Number>().Uint32Value());
    hwm_ = std::max<int64_t>(batchSize_, o.Get("highWaterMark").As<Napi::Number>().Int64Value());
    batchBytes_ = std::max<uint32_t>(4096, o.Get("batchBytes").As<Napi::Number>().Uint32Value());
    uint32_t pages = o.Get("pageCount").As<Napi::Number>().Uint32Value();
    if (pages == 0 || (pages & (pages - 1)) != 0)
      throw Napi::RangeError::New(env, "perf buffer pageCount must be a power of two");

    int fd = DupFdCloexec(info[0].As<Napi::Number>().Int32Value());
    if (fd < 0) Throw(env, ErrnoError(fd, "perf buffer: dup map fd"));
    mapFd_.reset(fd);
    pb_ = perf_buffer__new(mapFd_.get(), pages, &PerfConsumer::OnSample, &PerfConsumer::OnLost, this, nullptr);
    if (!pb_) Throw(env, ErrnoError(errno, "perf_buffer__new", "CAP_PERFMON", "perf buffer"));
    int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    int ep = efd < 0 ? -1 : epoll_create1(EPOLL_CLOEXEC);
    if (efd < 0 || ep < 0) {
      int e = errno;
      if (efd >= 0) ::close(efd);
      Free();
      Throw(env, ErrnoError(e, "eventfd/epoll_create1"));
    }
    wake_.reset(efd);
    epoll_.reset(ep);
    struct epoll_event ev;
    std::memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN;
    ev.data.u32 = kWakeTag;
    int r = epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, wake_.get(), &ev);
    nbufs_ = perf_buffer__buffer_cnt(pb_);
    for (size_t i = 0; r == 0 && i < nbufs_; i++) {
      ev.data.u32 = static_cast<uint32_t>(i);
      r = epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, perf_buffer__buffer_fd(pb_, i), &ev);
    }
    if (r < 0) {
      int e = errno;
      Free();
      Throw(env, ErrnoError(e, "epoll_ctl(perf buffer)"));
    }

    napi_add_env_cleanup_hook(env, &PerfConsumer::EnvCleanup, this);
    hookInstalled_ = true;
    tsfn_ = Napi::ThreadSafeFunction::New(env, info[2].As<Napi::Function>(), "smoothtask-perfbuf", 0, 1);
    {
      std::lock_guard<std::mutex> lk(g_liveMu);
      g_live.insert(this);
      g_consumerRegistered++;
    }
    std::call_once(g_atexitOnce, [] { std::atexit(StopAllAtExit); });
    if (g_consumerFaultThread.exchange(0)) throw std::system_error(EAGAIN, std::generic_category(), "pthread_create");
    thread_ = std::thread(&PerfConsumer::Run, this);
  }

  ~PerfConsumer() override {
    StopThread();
    RemoveHook();
    Free();
  }

  // Stops and joins the thread. No N-API calls: safe from atexit and cleanup hooks.
  void StopThread() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (wake_) {
      uint64_t one = 1;
      ssize_t w = write(wake_.get(), &one, sizeof(one));
      (void)w;
    }
    std::lock_guard<std::mutex> jl(joinMu_);
    if (thread_.joinable()) thread_.join();
    std::lock_guard<std::mutex> lk(g_liveMu);
    if (g_live.erase(this)) g_consumerRegistered--;
  }

 private:
  static void EnvCleanup(void* arg) {
    auto* self = static_cast<PerfConsumer*>(arg);
    self->hookInstalled_ = false;  // node removes a hook as it runs it
    self->StopThread();
    self->Free();
  }

  void RemoveHook() {
    if (hookInstalled_) {
      napi_remove_env_cleanup_hook(env_, &PerfConsumer::EnvCleanup, this);
      hookInstalled_ = false;
    }
  }

  void Free() {
    if (pb_) {
      perf_buffer__free(pb_);
      pb_ = nullptr;
    }
    epoll_.reset();
    wake_.reset();
    mapFd_.reset();
  }

  static void OnLost(void* ctx, int /*cpu*/, __u64 cnt) {
    static_cast<PerfConsumer*>(ctx)->lost_ += cnt;
  }

  static void OnSample(void* ctx, int /*cpu*/, void* data, __u32 size) {
    auto* self = static_cast<PerfConsumer*>(ctx);
    if (self->dropping_) return;  // stopping, or JS went away: the rest of this poll is discarded
    Batch* b = self->cur_.get();
    b->offsets.push_back(static_cast<uint32_t>(b->data.size()));
    const auto* p = static_cast<const uint8_t*>(data);
    b->data.insert(b->data.end(), p, p + size);
    b->count++;
    if (b->count >= self->limit_ || b->data.size() >= self->batchBytes_) {
      if (!self->Flush() || !self->NextBatch()) self->dropping_ = true;
    }
  }

  // Waits while JS is at the high-water mark, then starts a new batch. False when stopping.
  bool NextBatch() {
    {
      std::unique_lock<std::mutex> lk(mu_);
      if (stop_) return false;
      if (pending_ >= hwm_) {
        pauses_++;
        cv_.wait(lk, [&] { return stop_ || pending_ < hwm_; });
        if (stop_) return false;
      }
      limit_ = static_cast<uint32_t>(std::min<int64_t>(batchSize_, hwm_ - pending_));
    }
    cur_ = std::make_unique<Batch>();
    cur_->data.reserve(std::min<size_t>(batchBytes_ + 256, size_t(limit_) * 64));
    cur_->offsets.reserve(limit_ + 1);
    return true;
  }

  void Run() {
    // Signals belong to other threads (the loader interrupts its own threads with one).
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, nullptr);
    std::vector<struct epoll_event> evs(nbufs_ + 1);
    while (NextBatch()) {
      if (g_consumerFaultPoll.exchange(0)) { int nf = open("/dev/null", O_RDONLY | O_CLOEXEC); dup3(nf, epoll_.get(), O_CLOEXEC); ::close(nf); }
      int n = epoll_wait(epoll_.get(), evs.data(), static_cast<int>(evs.size()), 500);
      if (n < 0 && errno != EINTR) {
        std::lock_guard<std::mutex> lk(mu_);
        error_ = errno;
        break;
      }
      int r = 0;
      if (n == 0) {
        r = perf_buffer__consume(pb_);  // safety net: a quiet interval reads every buffer once
      }
      for (int i = 0; i < n && r >= 0 && !dropping_; i++) {
        uint32_t tag = evs[i].data.u32;
        if (tag == kWakeTag) {
          uint64_t v;
          while (read(wake_.get(), &v, sizeof(v)) > 0) {
          }
        } else {
          r = perf_buffer__consume_buffer(pb_, tag);
        }
      }
      if (dropping_) break;
      if (cur_->count > 0 && !Flush()) break;
      if (r < 0 && r != -EINTR) {
        std::lock_guard<std::mutex> lk(mu_);
        error_ = -r;
        break;
      }
    }
    cur_.reset();
    if (!g_exiting.load()) tsfn_.Release();
  }

  bool Flush() {
    std::unique_ptr<Batch> b = std::move(cur_);
    cur_ = std::make_unique<Batch>();  // never null while the thread runs
    b->offsets.push_back(static_cast<uint32_t>(b->data.size()));
    uint32_t n = b->count;
    size_t bytes = b->data.size();
    {
      std::lock_guard<std::mutex> lk(mu_);
      pending_ += n;
    }
    delivered_ += n;
    bytes_ += bytes;
    batches_++;
    Batch* raw = b.release();
    napi_status st = tsfn_.NonBlockingCall(raw, &DeliverRecordBatch);
    if (st != napi_ok) {  // closing: JS is going away
      delete raw;
      return false;
    }
    return true;
  }

  Napi::Value Ack(const Napi::CallbackInfo& info) {
    int64_t n = info[0].As<Napi::Number>().Int64Value();
    {
      std::lock_guard<std::mutex> lk(mu_);
      pending_ = std::max<int64_t>(0, pending_ - n);
    }
    cv_.notify_all();
    return info.Env().Undefined();
  }

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    o.Set("delivered", static_cast<double>(delivered_.load()));
    o.Set("bytes", static_cast<double>(bytes_.load()));
    o.Set("batches", static_cast<double>(batches_.load()));
    o.Set("lost", static_cast<double>(lost_.load()));
    std::lock_guard<std::mutex> lk(mu_);
    o.Set("pauses", static_cast<double>(pauses_));
    o.Set("pending", static_cast<double>(pending_));
    if (error_) o.Set("errno", error_);
    return o;
  }

  Napi::Value Ref_(const Napi::CallbackInfo& info) {
    if (!closed_) tsfn_.Ref(info.Env());
    return info.Env().Undefined();
  }

  Napi::Value Unref_(const Napi::CallbackInfo& info) {
    if (!closed_) tsfn_.Unref(info.Env());
    return info.Env().Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (!closed_) {
      closed_ = true;
      StopThread();
      RemoveHook();
      Free();
    }
    return info.Env().Undefined();
  }

  friend void StopAllAtExit();

  Napi::Env env_;
  UniqueFd mapFd_;
  UniqueFd wake_;
  UniqueFd epoll_;
  perf_buffer* pb_ = nullptr;
  size_t nbufs_ = 0;
  Napi::ThreadSafeFunction tsfn_;
  std::thread thread_;
  std::mutex joinMu_;
  bool hookInstalled_ = false;
  bool closed_ = false;

  uint32_t batchSize_ = 4096;
  uint32_t batchBytes_ = 1 << 20;
  int64_t hwm_ = 65536;
  uint32_t limit_ = 4096;      // records in the batch being filled (thread only)
  bool dropping_ = false;      // thread only
  std::unique_ptr<Batch> cur_;  // thread only

  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  int64_t pending_ = 0;
  uint64_t pauses_ = 0;
  int error_ = 0;
  std::atomic<uint64_t> delivered_{0}, bytes_{0}, batches_{0}, lost_{0};
};

// process.exit() does not run env cleanup hooks: stop every consumer thread before static
// destructors run, so no thread touches a destroyed object while the process ends.
void StopAllAtExit() {
  g_exiting = true;
  std::vector<PerfConsumer*> live;
  {
    std::lock_guard<std::mutex> lk(g_liveMu);
    live.assign(g_live.begin(), g_live.end());
  }
  for (auto* c : live) c->StopThread();
}

void Init(Napi::Env env, Napi::Object exports) {
  Napi::Object dp = DpExports(env, exports);
  dp.Set("PerfBufferConsumer", PerfConsumer::Define(env));
}

}  // namespace
}  // namespace smoothtask

SMOOTHTASK_MODULE(perfbuf, smoothtask::Init);
