// The record consumer shared by ring and perf buffers: see consumer.h.
//
// Bounded work: each poll step reads at most one batch (ring buffers end the poll when the
// batch is full; perf buffers flush from the callback and stop at the head they saw).
// Backpressure: `pending_` counts records handed to JS and not yet acknowledged (ack()). At the
// high-water mark the thread stops reading; the kernel buffer fills (ring buffers: the BPF
// program's reserves fail and it counts them; perf buffers: the kernel counts lost samples).
// Shutdown: close() / finalizer / env cleanup hook / atexit all stop the thread: a stop flag,
// the wake eventfd (in the source's epoll set: wakes a blocked poll at once) and the condition
// variable (wakes a paused thread), then join.
//
// Test hooks (internal, named for what they do, reachable only as dp.consumerTestFault and
// dp.consumerRegistrations): 'poll' makes the next poll step of a consumer thread fail for
// real (the thread replaces its source's epoll fd with /dev/null, so epoll_wait inside the
// step fails with EINVAL); 'thread' makes the next consumer construction fail where it starts
// its thread, the way std::thread does when pthread_create fails (std::system_error, EAGAIN).
#include "consumer.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <set>
#include <string>
#include <system_error>
#include <unordered_map>

#include "module.h"

namespace smoothtask {
namespace {

constexpr int kPollTimeoutMs = 500;

std::mutex g_liveMu;              // guards g_live; held while atexit stops the threads
std::set<Consumer*> g_live;       // consumers whose thread atexit must stop
std::once_flag g_atexitOnce;

std::atomic<bool> g_faultPoll{false};
std::atomic<bool> g_faultThread{false};

// process.exit() does not run env cleanup hooks: stop every consumer thread before static
// destructors run, so no thread touches a destroyed object while the process ends. The lock
// is held throughout: a consumer being shut down on another thread (a worker) cannot free what
// this touches until it has left the list.
void StopAllAtExit() {
  std::lock_guard<std::mutex> lk(g_liveMu);
  for (Consumer* c : g_live) c->StopThread();
}

// The memory of a delivered pooled batch (a reusing consumer), between JS and the pool. It goes
// back to the pool when JS releases the batch (releaseBatch, which detaches its ArrayBuffers),
// or when both ArrayBuffers are collected without that. JS thread of its environment only,
// but the registry is shared by every environment (worker threads).
struct Lease {
  uint64_t id = 0;
  uint8_t* data = nullptr;
  size_t dataCap = 0, size = 0;
  uint8_t* offs = nullptr;
  size_t offsCap = 0;
  int refs = 0;           // live ArrayBuffers over it
  bool returned = false;  // released: the blocks are back in the pool
  void GiveBack() {
    returned = true;
    batchpool::Give(data, dataCap);
    batchpool::Give(offs, offsCap);
    data = offs = nullptr;
  }
};

std::mutex g_leaseMu;
std::unordered_map<uint64_t, Lease*> g_leases;  // delivered and not yet released
uint64_t g_nextLease = 1;

// One ArrayBuffer over a lease was collected.
void LeaseFinalize(Napi::Env, void*, Lease* l) {
  {
    std::lock_guard<std::mutex> lk(g_leaseMu);
    if (--l->refs > 0) return;
    if (!l->returned) g_leases.erase(l->id);
  }
  if (!l->returned) l->GiveBack();
  delete l;
}

// onBatch(data, offsets, count, undefined, lease) for a pooled batch: external ArrayBuffers over
// the pool's blocks, and the lease id that releaseBatch takes.
void DeliverPooled(Napi::Env env, RecordBatch* b, Napi::Value* args) {
  auto lease = std::make_unique<Lease>();
  lease->size = b->size;
  lease->dataCap = b->data.cap();
  lease->offsCap = b->offs.cap();
  size_t n = size_t(b->count) + 1;
  {
    std::lock_guard<std::mutex> lk(g_leaseMu);
    lease->id = g_nextLease++;
    g_leases.emplace(lease->id, lease.get());  // may throw bad_alloc: nothing handed over yet
  }
  lease->data = b->data.release();
  lease->offs = b->offs.release();
  Lease* l = lease.release();  // owned by the registry and the finalizers from here
  try {
    Napi::ArrayBuffer offs = Napi::ArrayBuffer::New(env, l->offs, n * sizeof(uint32_t), LeaseFinalize, l);
    l->refs++;
    args[1] = Napi::Uint32Array::New(env, n, offs, 0);
    if (l->size > 0) {
      args[0] = Napi::ArrayBuffer::New(env, l->data, l->size, LeaseFinalize, l);
      l->refs++;
    } else {
      args[0] = Napi::ArrayBuffer::New(env, 0);
    }
    args[2] = Napi::Number::New(env, b->count);
    args[3] = env.Undefined();
    args[4] = Napi::Number::New(env, static_cast<double>(l->id));
  } catch (...) {
    if (l->refs == 0) {  // no finalizer will run: give the blocks back here
      {
        std::lock_guard<std::mutex> lk(g_leaseMu);
        g_leases.erase(l->id);
      }
      l->GiveBack();
      delete l;
    }
    throw;
  }
}

// ThreadSafeFunction callback: onBatch(data, offsets, count) and frees the batch; or, for the
// error that stopped the thread, onBatch(null, null, 0, error). A pooled batch (a reusing
// consumer) comes as ArrayBuffers with a lease: onBatch(data, offsets, count, undefined, lease).
void Deliver(Napi::Env env, Napi::Function fn, RecordBatch* b) {
  std::unique_ptr<RecordBatch> own(b);
  if (env == nullptr || fn.IsEmpty()) return;
  Napi::Value args[5];
  try {
    args[4] = env.Undefined();
    if (b->error) {
      args[0] = env.Null();
      args[1] = env.Null();
      args[2] = Napi::Number::New(env, 0);
      args[3] = b->error->ToJs(env).Value();
    } else if (b->data.pooled()) {
      DeliverPooled(env, b, args);
    } else {
      // The batch's arrays become the JS buffers (no copy): each is owned by its JS object once
      // that exists, and freed by its finalizer (on GC, or when the environment goes away).
      if (b->size > 0) {
        args[0] = Napi::Buffer<uint8_t>::New(env, b->data.get(), b->size, [](Napi::Env, uint8_t* p) { delete[] p; });
        b->data.release();
      } else {
        args[0] = Napi::Buffer<uint8_t>::New(env, 0);
      }
      size_t n = size_t(b->count) + 1;
      Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(env, b->offsets(), n * sizeof(uint32_t), [](Napi::Env, void* p) { delete[] static_cast<uint8_t*>(p); });
      b->offs.release();
      args[1] = Napi::Uint32Array::New(env, n, ab, 0);
      args[2] = Napi::Number::New(env, b->count);
      args[3] = env.Undefined();
    }
  } catch (const Napi::Error&) {
    // The environment is being torn down (a batch still queued as node exits): drop it
    // rather than let the exception reach std::terminate.
    return;
  } catch (const std::bad_alloc&) {
    return;  // the batch is freed; its records are lost (as when JS goes away)
  }
  try {
    fn.Call({args[0], args[1], args[2], args[3], args[4]});
  } catch (const Napi::Error& e) {
    // An exception from the JS handler must not unwind into libuv: report it like node does.
    napi_fatal_exception(env, e.Value());
  }
}

// releaseBatch(lease, data, offsets): JS has consumed a pooled batch. Its ArrayBuffers are
// detached (every view into them reads as empty from now on) and its memory goes back to the
// pool for the next batch. A lease already released (or unknown) is a no-op; buffers that are
// not that lease's are a TypeError (and nothing is released).
Napi::Value ReleaseBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsNumber() || !info[1].IsArrayBuffer() || !info[2].IsArrayBuffer())
    throw Napi::TypeError::New(env, "releaseBatch(lease: number, data: ArrayBuffer, offsets: ArrayBuffer)");
  double idv = info[0].As<Napi::Number>().DoubleValue();
  if (!(idv >= 1 && idv < 9007199254740992.0)) return env.Undefined();
  uint64_t id = static_cast<uint64_t>(idv);
  Napi::ArrayBuffer data = info[1].As<Napi::ArrayBuffer>();
  Napi::ArrayBuffer offs = info[2].As<Napi::ArrayBuffer>();
  Lease* l = nullptr;
  {
    std::lock_guard<std::mutex> lk(g_leaseMu);
    auto it = g_leases.find(id);
    if (it == g_leases.end()) return env.Undefined();
    l = it->second;
    bool mine = offs.Data() == l->offs && (l->size == 0 || data.Data() == l->data);
    if (!mine) throw Napi::TypeError::New(env, "releaseBatch: these buffers are not the batch's");
    g_leases.erase(it);
  }
  if (l->size > 0) data.Detach();
  offs.Detach();
  l->GiveBack();  // the lease itself goes with its last ArrayBuffer's finalizer
  return env.Undefined();
}

// Makes the next poll step fail for real: the epoll set becomes /dev/null (test hook).
void BreakEpollForTest(int epfd) {
  int nf = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (nf < 0) return;
  if (dup3(nf, epfd, O_CLOEXEC) < 0) {
    // Leave the consumer as it was: the test sees no error and fails.
  }
  ::close(nf);
}

Napi::Value TestFault(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string kind = info.Length() > 0 && info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
  if (kind == "poll") {
    g_faultPoll = true;
  } else if (kind == "thread") {
    g_faultThread = true;
  } else {
    throw Napi::TypeError::New(env, "consumerTestFault('poll' | 'thread')");
  }
  return env.Undefined();
}

Napi::Value Registrations(const Napi::CallbackInfo& info) {
  std::lock_guard<std::mutex> lk(g_liveMu);
  return Napi::Number::New(info.Env(), static_cast<double>(g_live.size()));
}

void Init(Napi::Env env, Napi::Object exports) {
  Napi::Object dp = DpExports(env, exports);
  dp.Set("consumerTestFault", Napi::Function::New(env, TestFault, "consumerTestFault"));
  dp.Set("consumerRegistrations", Napi::Function::New(env, Registrations, "consumerRegistrations"));
  dp.Set("releaseBatch", Napi::Function::New(env, ReleaseBatch, "releaseBatch"));
  dp.Set("batchPoolBytes", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
    return Napi::Number::New(info.Env(), static_cast<double>(batchpool::PooledBytes()));
  }, "batchPoolBytes"));
}

}  // namespace

bool OwnedTsfn::Send(std::unique_ptr<RecordBatch> b) {
  if (fn_.NonBlockingCall(b.get(), &Deliver) != napi_ok) return false;  // closing: JS is going away
  b.release();
  return true;
}

void Registration::Add(napi_env env, Consumer* c) {
  std::call_once(g_atexitOnce, [] { std::atexit(StopAllAtExit); });
  {
    std::lock_guard<std::mutex> lk(g_liveMu);
    g_live.insert(c);  // may throw bad_alloc: nothing added yet
  }
  env_ = env;
  c_ = c;
  listed_ = true;
  napi_status st = napi_add_env_cleanup_hook(env, &Consumer::EnvCleanup, c);
  if (st != napi_ok) {
    Remove();
    NAPI_THROW_VOID(Napi::Error::New(Napi::Env(env), "napi_add_env_cleanup_hook failed"));
  }
  hooked_ = true;
}

void Registration::Remove() {
  if (hooked_) {
    hooked_ = false;
    napi_remove_env_cleanup_hook(env_, &Consumer::EnvCleanup, c_);
  }
  if (listed_) {
    listed_ = false;
    std::lock_guard<std::mutex> lk(g_liveMu);
    g_live.erase(c_);
  }
}

// ------------------------------------------------------------------------------- Consumer

Napi::Function Consumer::Define(Napi::Env env, const ConsumerKind& kind) {
  return DefineClass(env, kind.className,
                     {InstanceMethod("ack", &Consumer::Ack), InstanceMethod("stats", &Consumer::Stats),
                      InstanceMethod("ref", &Consumer::Ref_), InstanceMethod("unref", &Consumer::Unref_),
                      InstanceMethod("close", &Consumer::Close)},
                     const_cast<ConsumerKind*>(&kind));
}

Consumer::Consumer(const Napi::CallbackInfo& info)
    : Napi::ObjectWrap<Consumer>(info), kind_(static_cast<const ConsumerKind*>(info.Data())) {
  Napi::Env env = info.Env();
  const std::string usage = std::string(kind_->className) + "(mapFd, opts, onBatch)";
  if (info.Length() < 3 || !info[0].IsNumber() || !info[1].IsObject() || !info[2].IsFunction())
    throw Napi::TypeError::New(env, usage);
  Napi::Object o = info[1].As<Napi::Object>();
  batchSize_ = std::max<uint32_t>(1, o.Get("batchSize").As<Napi::Number>().Uint32Value());
  hwm_ = std::max<int64_t>(batchSize_, o.Get("highWaterMark").As<Napi::Number>().Int64Value());
  batchBytes_ = std::max<uint32_t>(4096, o.Get("batchBytes").As<Napi::Number>().Uint32Value());
  reuse_ = o.Has("reuse") && o.Get("reuse").ToBoolean().Value();
  // Every member owns what it holds: a throw below unwinds whatever was set up so far.
  try {
    int fd = DupFdCloexec(info[0].As<Napi::Number>().Int32Value());
    if (fd < 0) Throw(env, ErrnoError(fd, std::string(kind_->what) + ": dup map fd"));
    mapFd_.reset(fd);
    int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (efd < 0) Throw(env, ErrnoError(errno, std::string(kind_->what) + ": eventfd"));
    wake_.reset(efd);
    source_ = kind_->open(env, *this, mapFd_.get(), o);
    tsfn_.Create(env, info[2].As<Napi::Function>(), kind_->tsfnName);
    reg_.Add(env, this);
    if (g_faultThread.exchange(false)) throw std::system_error(EAGAIN, std::generic_category(), "pthread_create (test fault)");
    thread_ = std::thread(&Consumer::Run, this);
  } catch (const std::system_error& e) {
    Throw(env, ErrnoError(e.code().value(), std::string(kind_->what) + ": starting the consumer thread"));
  } catch (const std::bad_alloc&) {
    Throw(env, ErrnoError(ENOMEM, std::string(kind_->what) + ": creating the consumer"));
  }
}

Consumer::~Consumer() { Shutdown(); }

void Consumer::EnvCleanup(void* arg) {
  auto* self = static_cast<Consumer*>(arg);
  self->reg_.HookRan();
  self->Shutdown();
}

void Consumer::Shutdown() {
  if (shut_) return;
  shut_ = true;
  StopThread();
  tsfn_.Release();  // after the join: the thread never uses it again
  reg_.Remove();    // after the join and before freeing: atexit may still be stopping us
  source_.reset();
  wake_.reset();
  mapFd_.reset();
}

void Consumer::StopThread() {
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
}

void Consumer::DrainWake() {
  uint64_t v;
  while (read(wake_.get(), &v, sizeof(v)) > 0) {
  }
}

// Waits while JS is at the high-water mark, then starts a new batch. False when stopping.
bool Consumer::NextBatch() {
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
  cur_ = std::make_unique<RecordBatch>();
  cur_->Reserve(std::min<size_t>(batchBytes_ + 256, size_t(limit_) * 64), limit_, reuse_);
  return true;
}

void Consumer::Run() {
  // Signals belong to other threads (the loader interrupts its own threads with one).
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, nullptr);
  int err = 0;
  try {
    while (NextBatch()) {
      if (g_faultPoll.load(std::memory_order_relaxed) && g_faultPoll.exchange(false)) BreakEpollForTest(source_->EpollFd());
      int r = source_->Poll(*this, kPollTimeoutMs);
      if (outOfMemory_) throw std::bad_alloc();
      if (dropping_) break;
      if (cur_->count > 0 && !Flush()) break;
      if (r < 0) {
        err = -r;
        break;
      }
    }
  } catch (const std::bad_alloc&) {
    err = ENOMEM;  // a batch could not be allocated: stop, and say so
    source_->failed = "allocating a batch";
  }
  cur_.reset();
  if (err) ReportError(err);
}

bool Consumer::Flush() {
  std::unique_ptr<RecordBatch> b = std::move(cur_);
  b->offsets()[b->count] = static_cast<uint32_t>(b->size);  // Add keeps room for it
  uint32_t n = b->count;
  size_t bytes = b->size;
  {
    std::lock_guard<std::mutex> lk(mu_);
    pending_ += n;
  }
  delivered_ += n;
  bytes_ += bytes;
  batches_++;
  return tsfn_.Send(std::move(b));
}

// The thread stopped on an error: keep the errno for stats() and send it to JS.
void Consumer::ReportError(int err) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    error_ = err;
  }
  try {
    auto b = std::make_unique<RecordBatch>();
    b->error = std::make_unique<NativeError>(
        ErrnoError(err, std::string(kind_->what) + " consumer stopped: " + source_->failed));
    tsfn_.Send(std::move(b));
  } catch (const std::bad_alloc&) {
    // JS still sees the errno in stats().
  }
}

Napi::Value Consumer::Ack(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(info.Env(), "ack(records)");
  int64_t n = info[0].As<Napi::Number>().Int64Value();
  {
    std::lock_guard<std::mutex> lk(mu_);
    pending_ = std::max<int64_t>(0, pending_ - n);
  }
  cv_.notify_all();
  return info.Env().Undefined();
}

Napi::Value Consumer::Stats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("delivered", static_cast<double>(delivered_.load()));
  o.Set("bytes", static_cast<double>(bytes_.load()));
  o.Set("batches", static_cast<double>(batches_.load()));
  if (kind_->reportsLost) o.Set("lost", static_cast<double>(lost_.load()));
  std::lock_guard<std::mutex> lk(mu_);
  o.Set("pauses", static_cast<double>(pauses_));
  o.Set("pending", static_cast<double>(pending_));
  if (error_) o.Set("errno", error_);
  return o;
}

Napi::Value Consumer::Ref_(const Napi::CallbackInfo& info) {
  tsfn_.Ref(info.Env());
  return info.Env().Undefined();
}

Napi::Value Consumer::Unref_(const Napi::CallbackInfo& info) {
  tsfn_.Unref(info.Env());
  return info.Env().Undefined();
}

Napi::Value Consumer::Close(const Napi::CallbackInfo& info) {
  Shutdown();
  return info.Env().Undefined();
}

}  // namespace smoothtask

SMOOTHTASK_MODULE(consumer, smoothtask::Init);
