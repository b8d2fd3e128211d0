#include "batch_pool.h"

#include <mutex>
#include <new>
#include <utility>
#include <vector>

namespace smoothtask::batchpool {
namespace {

constexpr size_t kMaxPooledBytes = 64u << 20;

struct Pool {
  std::mutex mu;
  std::vector<std::pair<uint8_t*, size_t>> free;  // most recently given last (warmest)
  size_t bytes = 0;
};

Pool& Get() {
  static Pool* pool = new Pool();  // never destroyed: finalizers may give blocks back at exit
  return *pool;
}

}  // namespace

uint8_t* Take(size_t bytes, size_t* cap) {
  if (bytes == 0) bytes = 1;
  Pool& p = Get();
  {
    std::lock_guard<std::mutex> lock(p.mu);
    // the warmest block that fits without wasting more than half of it
    for (size_t i = p.free.size(); i-- > 0;) {
      auto [ptr, size] = p.free[i];
      if (size >= bytes && size / 2 <= bytes) {
        p.free.erase(p.free.begin() + static_cast<std::ptrdiff_t>(i));
        p.bytes -= size;
        *cap = size;
        return ptr;
      }
    }
  }
  *cap = bytes;
  return new uint8_t[bytes];
}

void Give(uint8_t* ptr, size_t cap) {
  if (!ptr) return;
  Pool& p = Get();
  {
    std::lock_guard<std::mutex> lock(p.mu);
    if (p.bytes + cap <= kMaxPooledBytes) {
      try {
        p.free.emplace_back(ptr, cap);
        p.bytes += cap;
        return;
      } catch (const std::bad_alloc&) {
      }
    }
  }
  delete[] ptr;
}

size_t PooledBytes() {
  Pool& p = Get();
  std::lock_guard<std::mutex> lock(p.mu);
  return p.bytes;
}

}  // namespace smoothtask::batchpool
