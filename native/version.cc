// libbpf version, so the JS side can report what the addon was built against.
#include <bpf/libbpf.h>

#include "module.h"

namespace {
void Init(Napi::Env env, Napi::Object exports) {
  Napi::Object v = Napi::Object::New(env);
  v.Set("libbpfMajor", Napi::Number::New(env, libbpf_major_version()));
  v.Set("libbpfMinor", Napi::Number::New(env, libbpf_minor_version()));
  exports.Set("versions", v);
}
}  // namespace

SMOOTHTASK_MODULE(version, Init);
