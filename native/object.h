// A loaded BPF object as plain data plus the resources it owns (a libbpf bpf_object, or the
// fds of programs and maps reopened from bpffs pins). Built on loader threads without N-API,
// handed to JS as a NativeObject (object.cc).
#pragma once
#include <napi.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "fd.h"

struct bpf_object;
struct bpf_map;

namespace smoothtask {

struct ProgInfoN {
  std::string name, section, type, attachType, tag;
  bool loaded = false;
  int fd = -1;
  uint32_t id = 0;
};

struct MapInfoN {
  std::string name, type;
  int fd = -1;
  uint32_t id = 0, keySize = 0, valueSize = 0, maxEntries = 0, flags = 0, btfKeyTypeId = 0, btfValueTypeId = 0;
};

// Closes a libbpf object (and with it every fd libbpf opened for its programs and maps).
struct BpfObjectCloser {
  void operator()(bpf_object* obj) const noexcept;
};
using BpfObjectPtr = std::unique_ptr<bpf_object, BpfObjectCloser>;

// Every kernel resource is held by an owner (BpfObjectPtr, UniqueFd): no path, error or
// exception, has to release anything by hand.
struct ObjectState {
  BpfObjectPtr obj;                // owns every prog/map fd when set
  std::vector<UniqueFd> ownedFds;  // fds owned directly (objects reopened from pins)
  std::string name;
  std::vector<ProgInfoN> progs;
  std::vector<MapInfoN> maps;
  std::vector<uint8_t> btf;    // raw BTF of the object ('' if none)
  std::string log;             // libbpf messages of the load (debug level when logLevel > 0)
  double openMs = 0, loadMs = 0;
  uint64_t memlockBytes = 0;   // kernel memory of programs + maps (fdinfo memlock)
  bool memlockKnown = false;   // computed lazily for objects reopened from pins

  ObjectState() = default;
  ObjectState(const ObjectState&) = delete;
  ObjectState& operator=(const ObjectState&) = delete;
  // Frees every kernel resource; idempotent.
  void Close() noexcept;
  // Fills progs/maps/btf/memlock from `obj` (after a successful load).
  void Describe();
};

// A map's name as in the ELF: internal maps (.rodata, .data, .bss, .rodata.str1.1, ...) by
// their section (libbpf 1.1 names them "<obj>.rodata"), others as bpf_map__name.
std::string MapRealName(const bpf_object* obj, const bpf_map* map);

// Reads `memlock:` from /proc/self/fdinfo/<fd>; 0 when unknown.
uint64_t FdMemlock(int fd);
// Program id and tag (hex) from the kernel.
void ProgIdTag(int fd, uint32_t* id, std::string* tag);

// JS wrapper around an ObjectState. Created only from C++ (NewNativeObject).
class NativeObject : public Napi::ObjectWrap<NativeObject> {
 public:
  static void Init(Napi::Env env, Napi::Object exports);
  explicit NativeObject(const Napi::CallbackInfo& info);
  ObjectState* state() { return state_.get(); }

 private:
  Napi::Value Programs(const Napi::CallbackInfo& info);
  Napi::Value Maps(const Napi::CallbackInfo& info);
  Napi::Value Btf(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value Closed(const Napi::CallbackInfo& info);
  Napi::Value Meta(const Napi::CallbackInfo& info);
  Napi::Value Pin(const Napi::CallbackInfo& info);

  std::unique_ptr<ObjectState> state_;
};

// Wraps `state` into a new JS NativeObject. The object takes ownership once it is
// constructed; if that fails (the environment is going away), `state` keeps it and frees it.
Napi::Object NewNativeObject(Napi::Env env, std::unique_ptr<ObjectState> state);

}  // namespace smoothtask
