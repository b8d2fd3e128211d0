// NVML (libnvidia-ml.so.1) sampled through dlopen: nothing NVIDIA is needed to build or to load
// the addon. A host without the library gets `{ available: false, reason, devices: [] }`.
// Every sample runs on its own short-lived thread (nvmlInit can take a second on a host without
// the persistence daemon; it must not block the event loop or libuv's pool) and settles a promise
// through a ThreadSafeFunction. Calls are serialised: NVML's handles are process-wide.
#include <dlfcn.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "module.h"

namespace {

// ABI of nvml.h (stable since NVML 3xx; the _v2/_v3 entry points are the current ones).
using nvmlReturn_t = int;
using nvmlDevice_t = struct nvmlDevice_st*;
struct nvmlUtilization_t {
  unsigned int gpu;
  unsigned int memory;
};
struct nvmlMemory_t {
  unsigned long long total;
  unsigned long long free;
  unsigned long long used;
};
struct nvmlProcessInfo_t {  // _v2 and _v3 functions
  unsigned int pid;
  unsigned long long usedGpuMemory;
  unsigned int gpuInstanceId;
  unsigned int computeInstanceId;
};
struct nvmlProcessInfo_v1_t {  // unversioned function
  unsigned int pid;
  unsigned long long usedGpuMemory;
};
constexpr nvmlReturn_t kSuccess = 0;
constexpr nvmlReturn_t kInsufficientSize = 7;
constexpr unsigned long long kValueNotAvailable = ~0ull;
constexpr int kTemperatureGpu = 0;
constexpr int kClockGraphics = 0, kClockSm = 1, kClockMem = 2, kClockVideo = 3;

struct Api {
  void* handle = nullptr;
  bool initialised = false;
  nvmlReturn_t (*init)() = nullptr;
  nvmlReturn_t (*shutdown)() = nullptr;
  const char* (*errorString)(nvmlReturn_t) = nullptr;
  nvmlReturn_t (*driverVersion)(char*, unsigned int) = nullptr;
  nvmlReturn_t (*count)(unsigned int*) = nullptr;
  nvmlReturn_t (*byIndex)(unsigned int, nvmlDevice_t*) = nullptr;
  nvmlReturn_t (*name)(nvmlDevice_t, char*, unsigned int) = nullptr;
  nvmlReturn_t (*uuid)(nvmlDevice_t, char*, unsigned int) = nullptr;
  nvmlReturn_t (*utilization)(nvmlDevice_t, nvmlUtilization_t*) = nullptr;
  nvmlReturn_t (*memory)(nvmlDevice_t, nvmlMemory_t*) = nullptr;
  nvmlReturn_t (*temperature)(nvmlDevice_t, int, unsigned int*) = nullptr;
  nvmlReturn_t (*power)(nvmlDevice_t, unsigned int*) = nullptr;
  nvmlReturn_t (*powerLimit)(nvmlDevice_t, unsigned int*) = nullptr;
  nvmlReturn_t (*clock)(nvmlDevice_t, int, unsigned int*) = nullptr;
  nvmlReturn_t (*processes)(nvmlDevice_t, unsigned int*, nvmlProcessInfo_t*) = nullptr;
  nvmlReturn_t (*processesV1)(nvmlDevice_t, unsigned int*, nvmlProcessInfo_v1_t*) = nullptr;
};

struct Process {
  unsigned int pid;
  double usedMemoryBytes;  // < 0: not available
};

struct Device {
  unsigned int index = 0;
  std::string name, uuid;
  double utilizationGpu = -1, utilizationMemory = -1;
  double memoryTotal = -1, memoryUsed = -1, memoryFree = -1;
  double temperatureC = -1, powerMilliwatts = -1, powerLimitMilliwatts = -1;
  double clockGraphicsMHz = -1, clockSmMHz = -1, clockMemoryMHz = -1, clockVideoMHz = -1;
  bool processesSupported = false;
  std::vector<Process> processes;
};

struct Sample {
  bool available = false;
  std::string library;
  std::string reason;
  std::string driverVersion;
  std::vector<Device> devices;
};

std::mutex g_mutex;                     // guards g_apis and every NVML call
std::map<std::string, Api>* g_apis = new std::map<std::string, Api>();  // never freed: libs stay loaded

template <typename F>
void Sym(void* h, const char* name, F& out) {
  out = reinterpret_cast<F>(dlsym(h, name));
}

std::string ErrorText(const Api& api, nvmlReturn_t rc) {
  const char* s = api.errorString ? api.errorString(rc) : nullptr;
  return std::string(s ? s : "NVML error") + " (" + std::to_string(rc) + ")";
}

// Opens and initialises the library once per path. Returns nullptr and sets `reason` on failure.
Api* Open(const std::string& requested, Sample& out) {
  std::vector<std::string> names;
  if (!requested.empty()) names.push_back(requested);
  else names = {"libnvidia-ml.so.1", "libnvidia-ml.so"};
  std::string errors;
  for (const std::string& name : names) {
    auto it = g_apis->find(name);
    if (it != g_apis->end() && it->second.initialised) {
      out.library = name;
      return &it->second;
    }
    dlerror();
    void* h = it != g_apis->end() ? it->second.handle : dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!h) {
      const char* e = dlerror();
      errors += (errors.empty() ? "" : "; ") + std::string(e ? e : name + ": cannot open");
      continue;
    }
    Api& api = (*g_apis)[name];
    api.handle = h;
    Sym(h, "nvmlInit_v2", api.init);
    Sym(h, "nvmlShutdown", api.shutdown);
    Sym(h, "nvmlErrorString", api.errorString);
    Sym(h, "nvmlSystemGetDriverVersion", api.driverVersion);
    Sym(h, "nvmlDeviceGetCount_v2", api.count);
    Sym(h, "nvmlDeviceGetHandleByIndex_v2", api.byIndex);
    Sym(h, "nvmlDeviceGetName", api.name);
    Sym(h, "nvmlDeviceGetUUID", api.uuid);
    Sym(h, "nvmlDeviceGetUtilizationRates", api.utilization);
    Sym(h, "nvmlDeviceGetMemoryInfo", api.memory);
    Sym(h, "nvmlDeviceGetTemperature", api.temperature);
    Sym(h, "nvmlDeviceGetPowerUsage", api.power);
    Sym(h, "nvmlDeviceGetEnforcedPowerLimit", api.powerLimit);
    Sym(h, "nvmlDeviceGetClockInfo", api.clock);
    Sym(h, "nvmlDeviceGetComputeRunningProcesses_v3", api.processes);
    if (!api.processes) Sym(h, "nvmlDeviceGetComputeRunningProcesses_v2", api.processes);
    if (!api.processes) Sym(h, "nvmlDeviceGetComputeRunningProcesses", api.processesV1);
    out.library = name;
    if (!api.init || !api.count || !api.byIndex) {
      out.reason = name + " lacks nvmlInit_v2/nvmlDeviceGetCount_v2/nvmlDeviceGetHandleByIndex_v2";
      return nullptr;
    }
    nvmlReturn_t rc = api.init();
    if (rc != kSuccess) {
      out.reason = "nvmlInit_v2 failed: " + ErrorText(api, rc);
      return nullptr;
    }
    api.initialised = true;
    return &api;
  }
  out.reason = "NVML library not found: " + errors;
  return nullptr;
}

template <typename T>
double Num(nvmlReturn_t rc, T v) {
  return rc == kSuccess ? static_cast<double>(v) : -1;
}

// Reads the compute processes of `dev` into `d` (Info is the v1 or v2 process struct),
// growing the buffer when the list grew between the size query and the read.
template <typename Info, typename Fn>
void ReadProcesses(Fn fn, nvmlDevice_t dev, Device* d) {
  std::vector<Info> infos(16);
  for (int attempt = 0; attempt < 4; attempt++) {
    unsigned int n = static_cast<unsigned int>(infos.size());
    nvmlReturn_t rc = fn(dev, &n, infos.data());
    if (rc == kInsufficientSize) {
      infos.resize(n + 16);
      continue;
    }
    if (rc == kSuccess) {
      d->processesSupported = true;
      for (unsigned int i = 0; i < n && i < infos.size(); i++)
        d->processes.push_back({infos[i].pid, infos[i].usedGpuMemory == kValueNotAvailable
                                                  ? -1
                                                  : static_cast<double>(infos[i].usedGpuMemory)});
    }
    break;
  }
}

void ReadDevice(const Api& api, unsigned int index, nvmlDevice_t dev, Device& d) {
  d.index = index;
  char buf[256] = {0};
  if (api.name && api.name(dev, buf, sizeof buf) == kSuccess) d.name = buf;
  buf[0] = 0;
  if (api.uuid && api.uuid(dev, buf, sizeof buf) == kSuccess) d.uuid = buf;
  if (api.utilization) {
    nvmlUtilization_t u{};
    nvmlReturn_t rc = api.utilization(dev, &u);
    d.utilizationGpu = Num(rc, u.gpu);
    d.utilizationMemory = Num(rc, u.memory);
  }
  if (api.memory) {
    nvmlMemory_t m{};
    nvmlReturn_t rc = api.memory(dev, &m);
    d.memoryTotal = Num(rc, m.total);
    d.memoryUsed = Num(rc, m.used);
    d.memoryFree = Num(rc, m.free);
  }
  // Argument evaluation order is unspecified: call first, then read the out-parameter.
  auto read = [dev](nvmlReturn_t (*fn)(nvmlDevice_t, unsigned int*)) -> double {
    unsigned int v = 0;
    if (!fn) return -1;
    nvmlReturn_t rc = fn(dev, &v);
    return Num(rc, v);
  };
  auto readKind = [dev](nvmlReturn_t (*fn)(nvmlDevice_t, int, unsigned int*), int kind) -> double {
    unsigned int v = 0;
    if (!fn) return -1;
    nvmlReturn_t rc = fn(dev, kind, &v);
    return Num(rc, v);
  };
  d.temperatureC = readKind(api.temperature, kTemperatureGpu);
  d.powerMilliwatts = read(api.power);
  d.powerLimitMilliwatts = read(api.powerLimit);
  d.clockGraphicsMHz = readKind(api.clock, kClockGraphics);
  d.clockSmMHz = readKind(api.clock, kClockSm);
  d.clockMemoryMHz = readKind(api.clock, kClockMem);
  d.clockVideoMHz = readKind(api.clock, kClockVideo);
  // The process list can grow between the size query and the read: retry a few times.
  if (api.processes)
    ReadProcesses<nvmlProcessInfo_t>(api.processes, dev, &d);
  else if (api.processesV1)
    ReadProcesses<nvmlProcessInfo_v1_t>(api.processesV1, dev, &d);
}

Sample Collect(const std::string& lib) {
  Sample s;
  try {
    std::lock_guard<std::mutex> lock(g_mutex);
    Api* api = Open(lib, s);
    if (!api) return s;
    char ver[96] = {0};
    if (api->driverVersion && api->driverVersion(ver, sizeof ver) == kSuccess) s.driverVersion = ver;
    unsigned int count = 0;
    nvmlReturn_t rc = api->count(&count);
    if (rc != kSuccess) {
      s.reason = "nvmlDeviceGetCount_v2 failed: " + ErrorText(*api, rc);
      return s;
    }
    s.available = true;
    for (unsigned int i = 0; i < count && i < 64; i++) {
      nvmlDevice_t dev = nullptr;
      if (api->byIndex(i, &dev) != kSuccess) continue;
      Device d;
      ReadDevice(*api, i, dev, d);
      s.devices.push_back(std::move(d));
    }
  } catch (const std::exception& e) {
    s.available = false;
    s.reason = std::string("NVML sample failed: ") + e.what();
    s.devices.clear();
  }
  return s;
}

Napi::Value OrNull(Napi::Env env, double v) { return v < 0 ? env.Null() : Napi::Number::New(env, v); }

Napi::Object ToJs(Napi::Env env, const Sample& s) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("available", s.available);
  o.Set("library", s.library.empty() ? env.Null() : Napi::String::New(env, s.library));
  o.Set("reason", s.reason);
  o.Set("driverVersion", s.driverVersion.empty() ? env.Null() : Napi::String::New(env, s.driverVersion));
  Napi::Array devs = Napi::Array::New(env, s.devices.size());
  for (size_t i = 0; i < s.devices.size(); i++) {
    const Device& d = s.devices[i];
    Napi::Object x = Napi::Object::New(env);
    x.Set("index", d.index);
    x.Set("name", d.name);
    x.Set("uuid", d.uuid);
    x.Set("utilizationGpu", OrNull(env, d.utilizationGpu));
    x.Set("utilizationMemory", OrNull(env, d.utilizationMemory));
    x.Set("memoryTotal", OrNull(env, d.memoryTotal));
    x.Set("memoryUsed", OrNull(env, d.memoryUsed));
    x.Set("memoryFree", OrNull(env, d.memoryFree));
    x.Set("temperatureC", OrNull(env, d.temperatureC));
    x.Set("powerMilliwatts", OrNull(env, d.powerMilliwatts));
    x.Set("powerLimitMilliwatts", OrNull(env, d.powerLimitMilliwatts));
    x.Set("clockGraphicsMHz", OrNull(env, d.clockGraphicsMHz));
    x.Set("clockSmMHz", OrNull(env, d.clockSmMHz));
    x.Set("clockMemoryMHz", OrNull(env, d.clockMemoryMHz));
    x.Set("clockVideoMHz", OrNull(env, d.clockVideoMHz));
    if (d.processesSupported) {
      Napi::Array ps = Napi::Array::New(env, d.processes.size());
      for (size_t j = 0; j < d.processes.size(); j++) {
        Napi::Object p = Napi::Object::New(env);
        p.Set("pid", d.processes[j].pid);
        p.Set("usedMemoryBytes", OrNull(env, d.processes[j].usedMemoryBytes));
        ps.Set(static_cast<uint32_t>(j), p);
      }
      x.Set("processes", ps);
    } else {
      x.Set("processes", env.Null());
    }
    devs.Set(static_cast<uint32_t>(i), x);
  }
  o.Set("devices", devs);
  return o;
}

// nvmlSample(library?: string): Promise<NvmlSampleRaw>
Napi::Value NvmlSample(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string lib = info.Length() > 0 && info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
  // Shared by this call and the thread's callback: freed by whichever drops it last, also when
  // the environment goes away before the sample is delivered.
  auto deferred = std::make_shared<Napi::Promise::Deferred>(Napi::Promise::Deferred::New(env));
  Napi::Promise promise = deferred->Promise();
  Napi::ThreadSafeFunction tsfn =
      Napi::ThreadSafeFunction::New(env, Napi::Function::New(env, [](const Napi::CallbackInfo&) {}), "smoothtask-nvml", 0, 1);
  try {
    std::thread([tsfn, lib, deferred]() mutable {
      // nothing may escape a thread function (std::terminate)
      std::shared_ptr<Sample> result;
      std::string failure;
      try {
        result = std::make_shared<Sample>(Collect(lib));
      } catch (const std::exception& e) {
        failure = e.what();
      } catch (...) {
        failure = "unknown error";
      }
      tsfn.BlockingCall([deferred, result, failure](Napi::Env env, Napi::Function) {
        try {
          if (result) {
            deferred->Resolve(ToJs(env, *result));
          } else {
            deferred->Reject(Napi::Error::New(env, "NVML sample failed: " + failure).Value());
          }
        } catch (const Napi::Error& e) {
          try {
            deferred->Reject(e.Value());
          } catch (...) {  // environment terminating: no one to tell
          }
        } catch (const std::exception& e) {
          try {
            deferred->Reject(Napi::Error::New(env, std::string("NVML sample failed: ") + e.what()).Value());
          } catch (...) {
          }
        }
      });
      tsfn.Release();
    }).detach();
  } catch (const std::exception& e) {
    tsfn.Release();
    deferred->Reject(Napi::Error::New(env, std::string("cannot start the NVML thread: ") + e.what()).Value());
  }
  return promise;
}

// nvmlShutdown(): releases NVML for every opened library (the libraries stay mapped).
Napi::Value NvmlShutdown(const Napi::CallbackInfo& info) {
  std::lock_guard<std::mutex> lock(g_mutex);
  for (auto& [name, api] : *g_apis) {
    if (api.initialised && api.shutdown) api.shutdown();
    api.initialised = false;
  }
  return info.Env().Undefined();
}

void Init(Napi::Env env, Napi::Object exports) {
  exports.Set("nvmlSample", Napi::Function::New(env, NvmlSample, "nvmlSample"));
  exports.Set("nvmlShutdown", Napi::Function::New(env, NvmlShutdown, "nvmlShutdown"));
}

}  // namespace

SMOOTHTASK_MODULE(nvml, Init);
