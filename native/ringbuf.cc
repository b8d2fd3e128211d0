// Ring buffer consumer: one dedicated std::thread per consumer (never libuv's pool, which
// loads and fs work share) polls the ring with libbpf, copies records into bounded batches and
// hands each batch to JS through a ThreadSafeFunction.
//
// Bounded work: ring_buffer__consume/poll in libbpf 1.1 keep reading while producers keep
// writing; our sample callback returns kBatchFull after N records (libbpf consumes that record,
// stores the consumer position and returns), so every poll is bounded.
// Backpressure: `pending_` counts records handed to JS and not yet acknowledged (ack()). At the
// high-water mark the thread stops reading; the kernel ring fills and BPF-side reserves fail
// (the program counts those drops), memory stays bounded.
// Shutdown: close() / finalizer / env cleanup hook / atexit all stop the thread: a stop flag,
// an eventfd registered in libbpf's epoll set (wakes a blocked poll at once) and the condition
// variable (wakes a paused thread), then join.
#include <bpf/libbpf.h>
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
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

constexpr int kBatchFull = -1000001;  // returned by the sample callback; never a real -errno

using Batch = RecordBatch;

class RingConsumer;
std::mutex g_liveMu;
std::set<RingConsumer*> g_live;
std::atomic<bool> g_exiting{false};
std::once_flag g_atexitOnce;
void StopAllAtExit();

class RingConsumer : public Napi::ObjectWrap<RingConsumer> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "RingBufferConsumer",
                       {InstanceMethod("ack", &RingConsumer::Ack), InstanceMethod("stats", &RingConsumer::Stats),
                        InstanceMethod("ref", &RingConsumer::Ref_), InstanceMethod("unref", &RingConsumer::Unref_),
                        InstanceMethod("close", &RingConsumer::Close)});
  }

  // (mapFd, { batchSize, highWaterMark, batchBytes }, onBatch(data, offsets, count))
  explicit RingConsumer(const Napi::CallbackInfo& info) : Napi::ObjectWrap<RingConsumer>(info), env_(info.Env()) {
    Napi::Env env = info.Env();
    if (info.Length() < 3 || !info[0].IsNumber() || !info[1].IsObject() || !info[2].IsFunction())
      throw Napi::TypeError::New(env, "RingBufferConsumer(mapFd, opts, onBatch)");
    Napi::Object o = info[1].As<Napi::Object>();
    batchSize_ = std::max<uint32_t>(1, o.Get("batchSize").As<Napi::Number>().Uint32Value());
    hwm_ = std::max<int64_t>(batchSize_, o.Get("highWaterMark").As<Napi::Number>().Int64Value());
    batchBytes_ = std::max<uint32_t>(4096, o.Get("batchBytes").As<Napi::Number>().Uint32Value());

    int fd = DupFdCloexec(info[0].As<Napi::Number>().Int32Value());
    if (fd < 0) Throw(env, ErrnoError(fd, "ring buffer: dup map fd"));
    mapFd_.reset(fd);
    rb_ = ring_buffer__new(mapFd_.get(), &RingConsumer::OnSample, this, nullptr);
    if (!rb_) Throw(env, ErrnoError(errno, "ring_buffer__new", "CAP_BPF", "ringbuf"));
    int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (efd < 0) {
      ring_buffer__free(rb_);
      rb_ = nullptr;
      Throw(env, ErrnoError(errno, "eventfd"));
    }
    wake_.reset(efd);
    // data.u32 = 0 makes libbpf treat a wake-up as "ring 0 may have data": harmless.
    struct epoll_event ev;
    std::memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN;
    ev.data.u32 = 0;
    if (epoll_ctl(ring_buffer__epoll_fd(rb_), EPOLL_CTL_ADD, wake_.get(), &ev) < 0) {
      ring_buffer__free(rb_);
      rb_ = nullptr;
      Throw(env, ErrnoError(errno, "epoll_ctl(ring buffer wake fd)"));
    }

    napi_add_env_cleanup_hook(env, &RingConsumer::EnvCleanup, this);
    hookInstalled_ = true;
    tsfn_ = Napi::ThreadSafeFunction::New(env, info[2].As<Napi::Function>(), "smoothtask-ringbuf", 0, 1);
    {
      std::lock_guard<std::mutex> lk(g_liveMu);
      g_live.insert(this);
      g_consumerRegistered++;
    }
    std::call_once(g_atexitOnce, [] { std::atexit(StopAllAtExit); });
    if (g_consumerFaultThread.exchange(0)) throw std::system_error(EAGAIN, std::generic_category(), "pthread_create");
    thread_ = std::thread(&RingConsumer::Run, this);
  }

  ~RingConsumer() override {
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
    auto* self = static_cast<RingConsumer*>(arg);
    self->hookInstalled_ = false;  // node removes a hook as it runs it
    self->StopThread();
    self->Free();
  }

  void RemoveHook() {
    if (hookInstalled_) {
      napi_remove_env_cleanup_hook(env_, &RingConsumer::EnvCleanup, this);
      hookInstalled_ = false;
    }
  }

  void Free() {
    if (rb_) {
      ring_buffer__free(rb_);
      rb_ = nullptr;
    }
    wake_.reset();
    mapFd_.reset();
  }

  static int OnSample(void* ctx, void* data, size_t size) {
    auto* self = static_cast<RingConsumer*>(ctx);
    Batch* b = self->cur_.get();
    b->offsets.push_back(static_cast<uint32_t>(b->data.size()));
    const auto* p = static_cast<const uint8_t*>(data);
    b->data.insert(b->data.end(), p, p + size);
    b->count++;
    if (b->count >= self->limit_ || b->data.size() >= self->batchBytes_) return kBatchFull;
    return 0;
  }

  void Run() {
    // Signals belong to other threads (the loader interrupts its own threads with one).
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, nullptr);
    for (;;) {
      {
        std::unique_lock<std::mutex> lk(mu_);
        if (stop_) break;
        if (pending_ >= hwm_) {
          pauses_++;
          cv_.wait(lk, [&] { return stop_ || pending_ < hwm_; });
          if (stop_) break;
        }
        limit_ = static_cast<uint32_t>(std::min<int64_t>(batchSize_, hwm_ - pending_));
      }
      cur_ = std::make_unique<Batch>();
      cur_->data.reserve(std::min<size_t>(batchBytes_ + 256, size_t(limit_) * 64));
      cur_->offsets.reserve(limit_ + 1);
      if (g_consumerFaultPoll.exchange(0)) { int nf = open("/dev/null", O_RDONLY | O_CLOEXEC); dup3(nf, ring_buffer__epoll_fd(rb_), O_CLOEXEC); ::close(nf); }
      int r = ring_buffer__poll(rb_, 500);
      if (cur_->count > 0 && !Flush()) break;
      if (r < 0 && r != kBatchFull && r != -EINTR) {
        std::lock_guard<std::mutex> lk(mu_);
        error_ = -r;
        break;
      }
      // Drain the wake-up eventfd so a spurious wake does not spin.
      uint64_t v;
      while (read(wake_.get(), &v, sizeof(v)) > 0) {
      }
    }
    cur_.reset();
    if (!g_exiting.load()) tsfn_.Release();
  }

  bool Flush() {
    std::unique_ptr<Batch> b = std::move(cur_);
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
  ring_buffer* rb_ = nullptr;
  Napi::ThreadSafeFunction tsfn_;
  std::thread thread_;
  std::mutex joinMu_;
  bool hookInstalled_ = false;
  bool closed_ = false;

  uint32_t batchSize_ = 4096;
  uint32_t batchBytes_ = 1 << 20;
  int64_t hwm_ = 65536;
  uint32_t limit_ = 4096;  // records in the batch being filled (thread only)
  std::unique_ptr<Batch> cur_;

  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  int64_t pending_ = 0;
  uint64_t pauses_ = 0;
  int error_ = 0;
  std::atomic<uint64_t> delivered_{0}, bytes_{0}, batches_{0};
};

// process.exit() does not run env cleanup hooks: stop every consumer thread before static
// destructors run, so no thread touches a destroyed object while the process ends.
void StopAllAtExit() {
  g_exiting = true;
  std::vector<RingConsumer*> live;
  {
    std::lock_guard<std::mutex> lk(g_liveMu);
    live.assign(g_live.begin(), g_live.end());
  }
  for (auto* c : live) c->StopThread();
}

void Init(Napi::Env env, Napi::Object exports) {
  Napi::Object dp = DpExports(env, exports);
  dp.Set("RingBufferConsumer", RingConsumer::Define(env));
  dp.Set("consumerTestFault", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
    std::string k = info[0].As<Napi::String>();
    (k == "thread" ? g_consumerFaultThread : g_consumerFaultPoll) = 1;
  }));
  dp.Set("consumerRegistrations", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), g_consumerRegistered.load());
  }));
}

}  // namespace
}  // namespace smoothtask

SMOOTHTASK_MODULE(ringbuf, smoothtask::Init);
