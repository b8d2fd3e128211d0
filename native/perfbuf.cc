// Perf buffer consumer (BPF_MAP_TYPE_PERF_EVENT_ARRAY), the fallback of ring buffers for
// kernels without ringbuf: the poll step of the shared record consumer (consumer.h /
// consumer.cc, which own the thread, batching, backpressure and shutdown). Batches have the
// same (data, offsets, count) format as ring buffers.
//
// Differences forced by libbpf 1.1's perf buffer API:
// - The sample callback returns void, so it cannot end a poll early. Each read of a per-CPU
//   buffer stops at the head it saw on entry, so one poll step is bounded by the buffers' size;
//   batches are bounded by flushing from inside the callback once full (Consumer::Rotate),
//   which also waits there at the high-water mark.
// - Backpressure: while the thread waits, the per-CPU buffers fill and the kernel counts the
//   samples it could not write; libbpf reports them through the lost callback
//   (PERF_RECORD_LOST), summed in stats().lost.
// - libbpf's epoll set stores per-CPU buffer pointers in epoll data, so a foreign fd must not
//   be added to it, and nesting it in another epoll set loses wake-ups (perf's poll clears the
//   pending flag when the outer set checks the inner one). The step waits on its own epoll set
//   holding every per-CPU buffer fd (perf_buffer__buffer_fd) and the consumer's wake eventfd,
//   and reads a ready buffer with perf_buffer__consume_buffer.
#include <bpf/libbpf.h>
#include <sys/epoll.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "consumer.h"
#include "errors.h"
#include "fd.h"
#include "module.h"

namespace smoothtask {
namespace {

constexpr uint32_t kWakeTag = UINT32_MAX;  // epoll data of the wake eventfd; buffers use their index

struct PerfBufferFree {
  void operator()(perf_buffer* pb) const { perf_buffer__free(pb); }
};

class PerfSource : public PollSource {
 public:
  PerfSource(Napi::Env env, Consumer& c, int mapFd, uint32_t pages) {
    pb_.reset(perf_buffer__new(mapFd, pages, &PerfSource::OnSample, &PerfSource::OnLost, &c, nullptr));
    if (!pb_) Throw(env, ErrnoError(errno, "perf_buffer__new", "CAP_PERFMON", "perf buffer"));
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) Throw(env, ErrnoError(errno, "epoll_create1(perf buffer)"));
    epoll_.reset(ep);
    struct epoll_event ev;
    std::memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN;
    ev.data.u32 = kWakeTag;
    if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, c.WakeFd(), &ev) < 0) Throw(env, ErrnoError(errno, "epoll_ctl(perf buffer)"));
    size_t n = perf_buffer__buffer_cnt(pb_.get());
    for (size_t i = 0; i < n; i++) {
      ev.data.u32 = static_cast<uint32_t>(i);
      if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, perf_buffer__buffer_fd(pb_.get(), i), &ev) < 0)
        Throw(env, ErrnoError(errno, "epoll_ctl(perf buffer)"));
    }
    evs_.resize(n + 1);
  }

  int Poll(Consumer& c, int timeoutMs) override {
    int n = epoll_wait(epoll_.get(), evs_.data(), static_cast<int>(evs_.size()), timeoutMs);
    if (n < 0) {
      if (errno == EINTR) return 0;
      failed = "epoll_wait(perf buffer)";
      return -errno;
    }
    int r = 0;
    if (n == 0) r = perf_buffer__consume(pb_.get());  // safety net: a quiet interval reads every buffer once
    for (int i = 0; i < n && r >= 0; i++) {
      uint32_t tag = evs_[i].data.u32;
      if (tag == kWakeTag)
        c.DrainWake();
      else
        r = perf_buffer__consume_buffer(pb_.get(), tag);
    }
    if (r >= 0 || r == -EINTR) return 0;
    failed = n == 0 ? "perf_buffer__consume" : "perf_buffer__consume_buffer";
    return r;
  }

  int EpollFd() const override { return epoll_.get(); }

 private:
  static void OnSample(void* ctx, int /*cpu*/, void* data, __u32 size) {
    auto* c = static_cast<Consumer*>(ctx);
    if (c->Append(data, size)) c->Rotate();
  }
  static void OnLost(void* ctx, int /*cpu*/, __u64 cnt) { static_cast<Consumer*>(ctx)->AddLost(cnt); }

  std::unique_ptr<perf_buffer, PerfBufferFree> pb_;
  UniqueFd epoll_;
  std::vector<struct epoll_event> evs_;
};

std::unique_ptr<PollSource> OpenPerf(Napi::Env env, Consumer& c, int mapFd, Napi::Object opts) {
  uint32_t pages = opts.Get("pageCount").As<Napi::Number>().Uint32Value();
  if (pages == 0 || (pages & (pages - 1)) != 0) throw Napi::RangeError::New(env, "perf buffer pageCount must be a power of two");
  return std::make_unique<PerfSource>(env, c, mapFd, pages);
}

const ConsumerKind kPerfKind{"PerfBufferConsumer", "smoothtask-perfbuf", "perf buffer", true, &OpenPerf};

void Init(Napi::Env env, Napi::Object exports) {
  DpExports(env, exports).Set("PerfBufferConsumer", Consumer::Define(env, kPerfKind));
}

}  // namespace
}  // namespace smoothtask

SMOOTHTASK_MODULE(perfbuf, smoothtask::Init);
