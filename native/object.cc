// NativeObject: the JS handle of a loaded object. Thin: it reports what the loader gathered
// and frees the kernel resources on close() or, as a safety net, when garbage collected.
#include "object.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <unordered_map>

#include "errors.h"
#include "module.h"

namespace smoothtask {

uint64_t FdMemlock(int fd) {
  if (fd < 0) return 0;
  std::ifstream f("/proc/self/fdinfo/" + std::to_string(fd));
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("memlock:", 0) == 0) return std::strtoull(line.c_str() + 8, nullptr, 10);
  }
  return 0;
}

void ProgIdTag(int fd, uint32_t* id, std::string* tag) {
  bpf_prog_info pi;
  std::memset(&pi, 0, sizeof(pi));
  uint32_t len = sizeof(pi);
  if (bpf_obj_get_info_by_fd(fd, &pi, &len) != 0) return;
  *id = pi.id;
  char hex[2 * BPF_TAG_SIZE + 1];
  for (int i = 0; i < BPF_TAG_SIZE; i++) std::snprintf(hex + 2 * i, 3, "%02x", pi.tag[i]);
  *tag = hex;
}

std::string MapRealName(const bpf_object* obj, const bpf_map* map) {
  std::string name = bpf_map__name(map);
  if (!bpf_map__is_internal(map)) return name;
  if (const struct btf* b = bpf_object__btf(obj)) {
    uint32_t vid = bpf_map__btf_value_type_id(map);
    const btf_type* t = vid ? btf__type_by_id(b, vid) : nullptr;
    if (t && btf_is_datasec(t)) {
      const char* n = btf__name_by_offset(b, t->name_off);
      if (n && *n) return n;
    }
  }
  size_t dot = name.find('.');
  return dot == std::string::npos ? name : name.substr(dot);
}

void BpfObjectCloser::operator()(bpf_object* obj) const noexcept { bpf_object__close(obj); }

void ObjectState::Close() noexcept {
  obj.reset();
  ownedFds.clear();
  for (auto& p : progs) p.fd = -1;
  for (auto& m : maps) m.fd = -1;
}

void ObjectState::Describe() {
  bpf_object* obj = this->obj.get();
  progs.clear();
  maps.clear();
  memlockBytes = 0;
  bpf_program* prog;
  bpf_object__for_each_program(prog, obj) {
    ProgInfoN p;
    p.name = bpf_program__name(prog);
    p.section = bpf_program__section_name(prog);
    const char* t = libbpf_bpf_prog_type_str(bpf_program__type(prog));
    p.type = t ? t : "unknown";
    const char* a = libbpf_bpf_attach_type_str(bpf_program__expected_attach_type(prog));
    // attach type 0 is BPF_CGROUP_INET_INGRESS; only meaningful for program types that use it
    p.attachType = a && bpf_program__expected_attach_type(prog) != 0 ? a : "";
    p.fd = bpf_program__fd(prog);
    if (p.fd < 0) p.fd = -1;  // libbpf returns -errno for programs not loaded
    p.loaded = p.fd >= 0;
    if (p.loaded) {
      ProgIdTag(p.fd, &p.id, &p.tag);
      memlockBytes += FdMemlock(p.fd);
    }
    progs.push_back(std::move(p));
  }
  bpf_map* map;
  bpf_object__for_each_map(map, obj) {
    MapInfoN m;
    m.name = MapRealName(obj, map);
    const char* t = libbpf_bpf_map_type_str(bpf_map__type(map));
    m.type = t ? t : "unknown";
    m.fd = bpf_map__fd(map);
    if (m.fd < 0) m.fd = -1;
    m.keySize = bpf_map__key_size(map);
    m.valueSize = bpf_map__value_size(map);
    m.maxEntries = bpf_map__max_entries(map);
    m.flags = bpf_map__map_flags(map);
    m.btfKeyTypeId = bpf_map__btf_key_type_id(map);
    m.btfValueTypeId = bpf_map__btf_value_type_id(map);
    if (m.fd >= 0) {
      bpf_map_info mi;
      std::memset(&mi, 0, sizeof(mi));
      uint32_t len = sizeof(mi);
      if (bpf_obj_get_info_by_fd(m.fd, &mi, &len) == 0) m.id = mi.id;
      memlockBytes += FdMemlock(m.fd);
    }
    maps.push_back(std::move(m));
    memlockKnown = true;
  }
  btf.clear();
  if (const struct btf* b = bpf_object__btf(obj)) {
    uint32_t size = 0;
    const void* raw = btf__raw_data(b, &size);
    if (raw && size) btf.assign(static_cast<const uint8_t*>(raw), static_cast<const uint8_t*>(raw) + size);
  }
}

namespace {
std::mutex g_ctorMu;
std::unordered_map<napi_env, Napi::FunctionReference*> g_ctors;

Napi::Object ProgToJs(Napi::Env env, const ProgInfoN& p) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("name", p.name);
  o.Set("section", p.section);
  o.Set("type", p.type);
  o.Set("attachType", p.attachType);
  o.Set("loaded", p.loaded);
  o.Set("fd", p.fd);
  o.Set("id", p.id);
  o.Set("tag", p.tag);
  return o;
}

Napi::Object MapToJs(Napi::Env env, const MapInfoN& m) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("name", m.name);
  o.Set("type", m.type);
  o.Set("fd", m.fd);
  o.Set("id", m.id);
  o.Set("keySize", m.keySize);
  o.Set("valueSize", m.valueSize);
  o.Set("maxEntries", m.maxEntries);
  o.Set("flags", m.flags);
  o.Set("btfKeyTypeId", m.btfKeyTypeId);
  o.Set("btfValueTypeId", m.btfValueTypeId);
  return o;
}
}  // namespace

void NativeObject::Init(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = DefineClass(env, "NativeObject",
                                    {
                                        InstanceMethod("programs", &NativeObject::Programs),
                                        InstanceMethod("maps", &NativeObject::Maps),
                                        InstanceMethod("btf", &NativeObject::Btf),
                                        InstanceMethod("close", &NativeObject::Close),
                                        InstanceMethod("meta", &NativeObject::Meta),
                                        InstanceMethod("pin", &NativeObject::Pin),
                                        InstanceAccessor("closed", &NativeObject::Closed, nullptr),
                                    });
  auto* ref = new Napi::FunctionReference(Napi::Persistent(ctor));
  {
    std::lock_guard<std::mutex> lock(g_ctorMu);
    g_ctors[env] = ref;
  }
  napi_env raw = env;
  env.AddCleanupHook([raw, ref]() {
    std::lock_guard<std::mutex> lock(g_ctorMu);
    g_ctors.erase(raw);
    delete ref;
  });
}

// The constructor receives the address of the caller's unique_ptr and moves the state out of
// it: whoever holds the pointer when something throws frees it, exactly once.
NativeObject::NativeObject(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeObject>(info) {
  if (info.Length() < 1 || !info[0].IsExternal()) throw Napi::TypeError::New(info.Env(), "NativeObject is created by loadObject()");
  auto* handoff = info[0].As<Napi::External<std::unique_ptr<ObjectState>>>().Data();
  if (!handoff || !*handoff) throw Napi::TypeError::New(info.Env(), "NativeObject is created by loadObject()");
  state_ = std::move(*handoff);
}

Napi::Object NewNativeObject(Napi::Env env, std::unique_ptr<ObjectState> state) {
  Napi::FunctionReference* ref = nullptr;
  {
    std::lock_guard<std::mutex> lock(g_ctorMu);
    auto it = g_ctors.find(env);
    if (it != g_ctors.end()) ref = it->second;
  }
  if (!ref) throw Napi::Error::New(env, "NativeObject class not initialised in this environment");
  return ref->New({Napi::External<std::unique_ptr<ObjectState>>::New(env, &state)});
}

Napi::Value NativeObject::Programs(const Napi::CallbackInfo& info) {
  Napi::Array a = Napi::Array::New(info.Env(), state_->progs.size());
  for (uint32_t i = 0; i < state_->progs.size(); i++) a.Set(i, ProgToJs(info.Env(), state_->progs[i]));
  return a;
}

Napi::Value NativeObject::Maps(const Napi::CallbackInfo& info) {
  Napi::Array a = Napi::Array::New(info.Env(), state_->maps.size());
  for (uint32_t i = 0; i < state_->maps.size(); i++) a.Set(i, MapToJs(info.Env(), state_->maps[i]));
  return a;
}

Napi::Value NativeObject::Btf(const Napi::CallbackInfo& info) {
  if (state_->btf.empty()) return info.Env().Undefined();
  return Napi::Buffer<uint8_t>::Copy(info.Env(), state_->btf.data(), state_->btf.size());
}

Napi::Value NativeObject::Close(const Napi::CallbackInfo& info) {
  state_->Close();
  state_->progs.clear();
  state_->maps.clear();
  return info.Env().Undefined();
}

Napi::Value NativeObject::Closed(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), !state_->obj && state_->ownedFds.empty());
}

Napi::Value NativeObject::Meta(const Napi::CallbackInfo& info) {
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("name", state_->name);
  o.Set("openMs", state_->openMs);
  o.Set("loadMs", state_->loadMs);
  if (!state_->memlockKnown) {
    state_->memlockBytes = 0;
    for (auto& p : state_->progs) state_->memlockBytes += FdMemlock(p.fd);
    for (auto& m : state_->maps) state_->memlockBytes += FdMemlock(m.fd);
    state_->memlockKnown = true;
  }
  o.Set("memlockBytes", static_cast<double>(state_->memlockBytes));
  o.Set("log", state_->log);
  return o;
}

// bpffs refuses names with a '.', which internal maps (.rodata, .bss) have.
std::string PinName(const std::string& name) {
  std::string s = name;
  for (char& c : s)
    if (c == '.') c = '-';
  return s;
}

// The pins one pin() call made; removed again unless the whole call succeeds, so a failure
// (or an exception) half way leaves no partial set of pins behind.
class PinSet {
 public:
  explicit PinSet(size_t n) { paths_.reserve(n); }  // Add() then cannot throw after a pin exists
  PinSet(const PinSet&) = delete;
  PinSet& operator=(const PinSet&) = delete;
  ~PinSet() {
    for (const std::string& p : paths_) ::unlink(p.c_str());
  }
  void Add(std::string path) noexcept { paths_.push_back(std::move(path)); }
  void Commit() noexcept { paths_.clear(); }

 private:
  std::vector<std::string> paths_;
};

// pin(dir): pins every loaded program as <dir>/prog_<name> and every map as <dir>/map_<name>
// ('.' becomes '-'). The directory must exist on a bpffs mount. Returns what was pinned;
// all or nothing.
Napi::Value NativeObject::Pin(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "pin(dir: string)");
  std::string dir = info[0].As<Napi::String>();
  Napi::Object out = Napi::Object::New(env);
  Napi::Array progs = Napi::Array::New(env);
  Napi::Array maps = Napi::Array::New(env);
  PinSet pinned(state_->progs.size() + state_->maps.size());
  uint32_t np = 0, nm = 0;
  for (auto& p : state_->progs) {
    if (!p.loaded || p.fd < 0) continue;
    std::string path = dir + "/prog_" + PinName(p.name);
    if (bpf_obj_pin(p.fd, path.c_str()) != 0) Throw(env, ErrnoError(errno, "pin program '" + p.name + "' at " + path));
    pinned.Add(path);
    Napi::Object e = Napi::Object::New(env);
    e.Set("name", p.name);
    e.Set("path", path);
    progs.Set(np++, e);
  }
  for (auto& m : state_->maps) {
    if (m.fd < 0) continue;
    std::string path = dir + "/map_" + PinName(m.name);
    if (bpf_obj_pin(m.fd, path.c_str()) != 0) Throw(env, ErrnoError(errno, "pin map '" + m.name + "' at " + path));
    pinned.Add(path);
    Napi::Object e = Napi::Object::New(env);
    e.Set("name", m.name);
    e.Set("path", path);
    maps.Set(nm++, e);
  }
  out.Set("programs", progs);
  out.Set("maps", maps);
  pinned.Commit();
  return out;
}

namespace {
void Init(Napi::Env env, Napi::Object exports) { NativeObject::Init(env, exports); }
}  // namespace

}  // namespace smoothtask

SMOOTHTASK_MODULE(object, smoothtask::Init);
