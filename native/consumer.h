// The record consumer shared by ring buffers (ringbuf.cc) and perf buffers (perfbuf.cc).
//
// One dedicated std::thread per consumer (never libuv's pool, which loads and fs work share)
// runs poll steps, copies records into bounded batches and hands each batch to JS through a
// ThreadSafeFunction as onBatch(data, offsets, count). Everything but the poll step lives here:
// batching, backpressure (ack / high-water mark), stats, ref/unref, close, the env cleanup hook,
// the at-exit list and the failure paths. The poll step (ring_buffer__poll vs the perf buffer's
// epoll set, and their setup) is a PollSource, the only part a consumer kind provides.
//
// Ownership (RAII, so a constructor that throws half way unwinds cleanly):
//   mapFd_, wake_      UniqueFd
//   source_            unique_ptr<PollSource> (frees the libbpf object)
//   tsfn_              OwnedTsfn: owned by the JS thread, released once by Shutdown() after
//                      the consumer thread is joined; the consumer thread never releases it,
//                      so ref()/unref() stay valid whatever the thread did
//   reg_               Registration: the env cleanup hook and the at-exit list entry, added
//                      and removed together
//   thread_            started last: nothing after it can throw
// Failure: a poll step that fails stops the thread; it sends the error (a NativeError with the
// errno) through the ThreadSafeFunction as onBatch(null, null, 0, error) and ends. JS then
// closes the consumer (lib/ebpf/ringbuf.ts).
#pragma once
#include <napi.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "batch_pool.h"
#include "errors.h"
#include "fd.h"

namespace smoothtask {

// Heap memory of a batch: plain (new[], JS frees it at GC) or from the batch pool (reused).
class BatchBlock {
 public:
  BatchBlock() = default;
  BatchBlock(const BatchBlock&) = delete;
  BatchBlock& operator=(const BatchBlock&) = delete;
  ~BatchBlock() { Free(release(), cap_, pooled_); }
  // Room for `bytes` bytes (uninitialised). Throws bad_alloc.
  void Allocate(size_t bytes, bool pooled) {
    Free(release(), cap_, pooled_);
    pooled_ = pooled;
    if (pooled) {
      p_ = batchpool::Take(bytes, &cap_);
    } else {
      p_ = new uint8_t[bytes > 0 ? bytes : 1];
      cap_ = bytes;
    }
  }
  // Room for `bytes` bytes, keeping the first `used`. Throws bad_alloc.
  void Grow(size_t bytes, size_t used) {
    size_t cap = bytes;
    uint8_t* q = pooled_ ? batchpool::Take(bytes, &cap) : new uint8_t[bytes > 0 ? bytes : 1];
    if (used) std::memcpy(q, p_, used);
    Free(p_, cap_, pooled_);
    p_ = q;
    cap_ = cap;
  }
  uint8_t* get() const { return p_; }
  size_t cap() const { return cap_; }
  bool pooled() const { return pooled_; }
  // Hands the memory over: the new owner frees it with Free(p, cap(), pooled()).
  uint8_t* release() {
    uint8_t* p = p_;
    p_ = nullptr;
    return p;
  }
  static void Free(uint8_t* p, size_t cap, bool pooled) {
    if (!p) return;
    if (pooled) batchpool::Give(p, cap);
    else delete[] p;
  }

 private:
  uint8_t* p_ = nullptr;
  size_t cap_ = 0;
  bool pooled_ = false;
};

// A batch of variable-size records handed from a consumer thread to JS in one call: the
// bytes, the start offset of each record, and the count. Or, with `error` set, the error
// that stopped the thread (no records). JS gets the two arrays as they are (external
// buffers): one copy, from the kernel's ring into `data`, between the ring and JS. Plain
// arrays are freed by their finalizers (on GC); pooled ones (a reusing consumer) go back to
// the batch pool as soon as JS has consumed the batch (see Consumer's releaseBatch).
struct RecordBatch {
  BatchBlock data;
  size_t size = 0;  // bytes used in data
  BatchBlock offs;  // count + 1 uint32 entries once flushed: start of each record, then the end
  uint32_t count = 0;
  std::unique_ptr<NativeError> error;

  uint32_t* offsets() const { return reinterpret_cast<uint32_t*>(offs.get()); }
  // Allocates room for `bytes` bytes and `records` records (uninitialised). Throws bad_alloc.
  void Reserve(size_t bytes, uint32_t records, bool pooled) {
    data.Allocate(bytes, pooled);
    offs.Allocate((size_t(records) + 1) * sizeof(uint32_t), pooled);
  }
  // Appends one record (room for the end offset kept). Throws bad_alloc.
  void Add(const uint8_t* p, size_t n) {
    if ((size_t(count) + 2) * sizeof(uint32_t) > offs.cap()) offs.Grow((size_t(count) * 2 + 4) * sizeof(uint32_t), size_t(count) * sizeof(uint32_t));
    if (size + n > data.cap()) {
      size_t want = data.cap() * 2 > size + n ? data.cap() * 2 : size + n;
      data.Grow(want, size);
    }
    offsets()[count++] = static_cast<uint32_t>(size);
    if (n) std::memcpy(data.get() + size, p, n);
    size += n;
  }
};

class Consumer;

// The poll step of one consumer kind. Created on the JS thread by the kind's factory, used by
// the consumer thread only, destroyed on the JS thread after the thread is joined.
class PollSource {
 public:
  virtual ~PollSource() = default;
  // One bounded poll step: waits up to timeoutMs for records or for the consumer's wake fd,
  // adds what it reads with Consumer::Append (and Rotate when it cannot stop early). Returns 0,
  // or -errno when the consumer must stop; then `failed` names the call that failed.
  virtual int Poll(Consumer& c, int timeoutMs) = 0;
  // The epoll set the step waits on (the poll test fault replaces it, see consumer.cc).
  virtual int EpollFd() const = 0;
  const char* failed = "poll";
};

// A consumer kind: the JS class name, what it needs to open the source, how errors name it.
struct ConsumerKind {
  const char* className;   // "RingBufferConsumer"
  const char* tsfnName;    // async resource name
  const char* what;        // "ring buffer": error messages
  bool reportsLost;        // stats().lost (perf buffers)
  // Opens the source on the consumer's map fd (a dup owned by the consumer) and registers
  // c.WakeFd() in its epoll set. Throws a Napi::Error (typed, via Throw) on failure.
  std::unique_ptr<PollSource> (*open)(Napi::Env env, Consumer& c, int mapFd, Napi::Object opts);
};

// The ThreadSafeFunction of a consumer, owned by the JS thread: created once, released once.
class OwnedTsfn {
 public:
  OwnedTsfn() = default;
  OwnedTsfn(const OwnedTsfn&) = delete;
  OwnedTsfn& operator=(const OwnedTsfn&) = delete;
  ~OwnedTsfn() { Release(); }
  void Create(Napi::Env env, Napi::Function fn, const char* name) {
    fn_ = Napi::ThreadSafeFunction::New(env, fn, name, 0, 1);
    held_ = true;
  }
  void Release() {
    if (held_) {
      held_ = false;
      fn_.Release();
    }
  }
  void Ref(Napi::Env env) {
    if (held_) fn_.Ref(env);
  }
  void Unref(Napi::Env env) {
    if (held_) fn_.Unref(env);
  }
  // Consumer thread, only while held (the JS thread releases it after joining the thread).
  // Takes the batch: it is delivered, or freed when the function is closing.
  bool Send(std::unique_ptr<RecordBatch> b);

 private:
  Napi::ThreadSafeFunction fn_;
  bool held_ = false;
};

// A consumer's env cleanup hook and its entry in the at-exit list, added and removed together.
class Registration {
 public:
  Registration() = default;
  Registration(const Registration&) = delete;
  Registration& operator=(const Registration&) = delete;
  ~Registration() { Remove(); }
  void Add(napi_env env, Consumer* c);  // all or nothing
  void Remove();                         // idempotent
  void HookRan() { hooked_ = false; }    // node removes a hook as it runs it

 private:
  napi_env env_ = nullptr;
  Consumer* c_ = nullptr;
  bool hooked_ = false;
  bool listed_ = false;
};

class Consumer : public Napi::ObjectWrap<Consumer> {
 public:
  // Defines the JS class of one kind (data: the kind).
  static Napi::Function Define(Napi::Env env, const ConsumerKind& kind);

  // (mapFd, { batchSize, highWaterMark, batchBytes, reuse, ...kind options },
  //  onBatch(data, offsets, count, error?, lease?))
  explicit Consumer(const Napi::CallbackInfo& info);
  ~Consumer() override;

  // --- for poll sources (consumer thread) ---
  int WakeFd() const { return wake_.get(); }
  // Drains the wake eventfd so a spurious wake does not spin.
  void DrainWake();
  // Appends one record to the batch being filled. True when the batch is full (or the rest of
  // this poll is being dropped): stop reading, or call Rotate.
  // Runs inside libbpf's callbacks: nothing may be thrown through libbpf's C frames.
  bool Append(const void* data, size_t size) noexcept {
    if (dropping_) return true;
    try {
      RecordBatch* b = cur_.get();
      b->Add(static_cast<const uint8_t*>(data), size);
      return b->count >= limit_ || b->size >= batchBytes_;
    } catch (...) {
      dropping_ = outOfMemory_ = true;
      return true;
    }
  }
  // Sends the full batch and starts the next one, waiting at the high-water mark (for sources
  // whose callback cannot end a poll early). When stopping, or when JS went away, the rest of
  // this poll is dropped.
  void Rotate() noexcept {
    if (dropping_) return;
    try {
      if (!Flush() || !NextBatch()) dropping_ = true;
    } catch (...) {
      dropping_ = outOfMemory_ = true;
    }
  }
  // Records the kernel reported lost (perf buffers).
  void AddLost(uint64_t n) { lost_ += n; }

  // Stops and joins the thread. No N-API calls: safe from atexit.
  void StopThread();
  // The env cleanup hook (Registration adds and removes it).
  static void EnvCleanup(void* arg);

 private:
  // Stops the thread and frees everything, once (close(), finalizer, env cleanup hook).
  void Shutdown();
  void Run();
  bool NextBatch();
  bool Flush();
  void ReportError(int err);

  Napi::Value Ack(const Napi::CallbackInfo& info);
  Napi::Value Stats(const Napi::CallbackInfo& info);
  Napi::Value Ref_(const Napi::CallbackInfo& info);
  Napi::Value Unref_(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);

  const ConsumerKind* kind_;
  uint32_t batchSize_ = 4096;
  uint32_t batchBytes_ = 1 << 20;
  bool reuse_ = false;  // batches from the batch pool, released by JS once consumed
  int64_t hwm_ = 65536;
  bool shut_ = false;  // JS thread

  UniqueFd mapFd_;
  UniqueFd wake_;
  std::unique_ptr<PollSource> source_;
  OwnedTsfn tsfn_;
  Registration reg_;

  // Consumer thread only.
  uint32_t limit_ = 4096;  // records in the batch being filled
  bool dropping_ = false;     // the rest of this poll is discarded; the thread stops after it
  bool outOfMemory_ = false;  // a batch could not grow: the thread stops with ENOMEM
  std::unique_ptr<RecordBatch> cur_;

  std::mutex mu_;  // guards the fields below and the condition variable
  std::condition_variable cv_;
  bool stop_ = false;
  int64_t pending_ = 0;
  uint64_t pauses_ = 0;
  int error_ = 0;
  std::atomic<uint64_t> delivered_{0}, bytes_{0}, batches_{0}, lost_{0};

  std::mutex joinMu_;
  std::thread thread_;  // last: started when everything else is in place
};

}  // namespace smoothtask
