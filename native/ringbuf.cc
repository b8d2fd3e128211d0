// Ring buffer consumer (BPF_MAP_TYPE_RINGBUF): the poll step of the shared record consumer
// (consumer.h / consumer.cc, which own the thread, batching, backpressure and shutdown).
//
// Bounded work: ring_buffer__consume/poll in libbpf 1.1 keep reading while producers keep
// writing; the sample callback returns kBatchFull when the batch is full (libbpf consumes that
// record, stores the consumer position and returns), so every poll step reads one batch at most.
// The consumer's wake eventfd sits in libbpf's epoll set (data.u32 = 0 makes libbpf treat a
// wake-up as "ring 0 may have data": harmless), so close() wakes a blocked poll at once.
#include <bpf/libbpf.h>
#include <sys/epoll.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "consumer.h"
#include "errors.h"
#include "module.h"

namespace smoothtask {
namespace {

constexpr int kBatchFull = -1000001;  // returned by the sample callback; never a real -errno

struct RingBufferFree {
  void operator()(ring_buffer* rb) const { ring_buffer__free(rb); }
};

class RingSource : public PollSource {
 public:
  RingSource(Napi::Env env, Consumer& c, int mapFd) {
    rb_.reset(ring_buffer__new(mapFd, &RingSource::OnSample, &c, nullptr));
    if (!rb_) Throw(env, ErrnoError(errno, "ring_buffer__new", "CAP_BPF", "ringbuf"));
    struct epoll_event ev;
    std::memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN;
    ev.data.u32 = 0;
    if (epoll_ctl(ring_buffer__epoll_fd(rb_.get()), EPOLL_CTL_ADD, c.WakeFd(), &ev) < 0)
      Throw(env, ErrnoError(errno, "epoll_ctl(ring buffer wake fd)"));
  }

  int Poll(Consumer& c, int timeoutMs) override {
    int r = ring_buffer__poll(rb_.get(), timeoutMs);
    c.DrainWake();
    if (r >= 0 || r == kBatchFull || r == -EINTR) return 0;
    failed = "ring_buffer__poll";
    return r;
  }

  int EpollFd() const override { return ring_buffer__epoll_fd(rb_.get()); }

 private:
  static int OnSample(void* ctx, void* data, size_t size) {
    return static_cast<Consumer*>(ctx)->Append(data, size) ? kBatchFull : 0;
  }

  std::unique_ptr<ring_buffer, RingBufferFree> rb_;
};

std::unique_ptr<PollSource> OpenRing(Napi::Env env, Consumer& c, int mapFd, Napi::Object /*opts*/) {
  return std::make_unique<RingSource>(env, c, mapFd);
}

const ConsumerKind kRingKind{"RingBufferConsumer", "smoothtask-ringbuf", "ring buffer", false, &OpenRing};

void Init(Napi::Env env, Napi::Object exports) {
  DpExports(env, exports).Set("RingBufferConsumer", Consumer::Define(env, kRingKind));
}

}  // namespace
}  // namespace smoothtask

SMOOTHTASK_MODULE(ringbuf, smoothtask::Init);
