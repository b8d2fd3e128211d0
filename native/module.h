// Registration of the addon's parts. Each native/*.cc registers its exports with
// SMOOTHTASK_MODULE so no shared file has to list them (helpers own their files).
#pragma once
#include <napi.h>

namespace smoothtask {

using InitFn = void (*)(Napi::Env env, Napi::Object exports);

struct ModuleRegistrar {
  ModuleRegistrar(const char* name, InitFn fn);
};

}  // namespace smoothtask

#define SMOOTHTASK_MODULE(name, fn) \
  static ::smoothtask::ModuleRegistrar smoothtask_module_registrar_##name(#name, fn)
