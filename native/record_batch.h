// A batch of variable-size records handed from a consumer thread to JS in one call
// (ring buffers and perf buffers): the bytes, the start offset of each record, and the count.
#pragma once
#include <napi.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

namespace smoothtask {

struct RecordBatch {
  std::vector<uint8_t> data;
  std::vector<uint32_t> offsets;  // count + 1 entries: start of each record, then the end
  uint32_t count = 0;
};

// ThreadSafeFunction callback: calls onBatch(data, offsets, count) and frees the batch.
inline void DeliverRecordBatch(Napi::Env env, Napi::Function fn, RecordBatch* b) {
  std::unique_ptr<RecordBatch> own(b);
  if (env == nullptr || fn.IsEmpty()) return;
  Napi::Buffer<uint8_t> data;
  Napi::Uint32Array offs;
  try {
    data = Napi::Buffer<uint8_t>::Copy(env, b->data.data(), b->data.size());
    Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(env, b->offsets.size() * sizeof(uint32_t));
    std::memcpy(ab.Data(), b->offsets.data(), b->offsets.size() * sizeof(uint32_t));
    offs = Napi::Uint32Array::New(env, b->offsets.size(), ab, 0);
  } catch (const Napi::Error&) {
    // The environment is being torn down (a batch still queued as node exits): drop it
    // rather than let the exception reach std::terminate.
    return;
  }
  try {
    fn.Call({data, offs, Napi::Number::New(env, b->count)});
  } catch (const Napi::Error& e) {
    // An exception from the JS handler must not unwind into libuv: report it like node does.
    napi_fatal_exception(env, e.Value());
  }
}

}  // namespace smoothtask
