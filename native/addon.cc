// Entry point of smoothtask.node: runs every part's Init registered with SMOOTHTASK_MODULE.
#include <utility>
#include <vector>

#include "module.h"

namespace smoothtask {
namespace {
std::vector<std::pair<const char*, InitFn>>& Registry() {
  static std::vector<std::pair<const char*, InitFn>> registry;
  return registry;
}
}  // namespace

ModuleRegistrar::ModuleRegistrar(const char* name, InitFn fn) { Registry().emplace_back(name, fn); }

Napi::Object InitAll(Napi::Env env, Napi::Object exports) {
  Napi::Array parts = Napi::Array::New(env);
  uint32_t i = 0;
  for (auto& [name, fn] : Registry()) {
    fn(env, exports);
    parts.Set(i++, Napi::String::New(env, name));
  }
  exports.Set("parts", parts);
  exports.Set("napiVersion", Napi::Number::New(env, NAPI_VERSION));
  return exports;
}

}  // namespace smoothtask

static Napi::Object SmoothtaskInit(Napi::Env env, Napi::Object exports) { return smoothtask::InitAll(env, exports); }

NODE_API_MODULE(smoothtask, SmoothtaskInit)
