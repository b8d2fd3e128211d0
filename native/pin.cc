// bpffs pins: reopening a pinned object's programs and maps without the verifier
// (libbpf 1.1 will not adopt a pinned program, so this goes through bpf_obj_get), and the
// metadata record kept beside the pins. bpffs holds no regular files, so the metadata JSON
// lives in a one-entry array map pinned as <dir>/meta.
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <vector>

#include "errors.h"
#include "fd.h"
#include "module.h"
#include "object.h"

namespace smoothtask {
namespace {

std::string Str(Napi::Object o, const char* k) {
  Napi::Value v = o.Get(k);
  return v.IsString() ? v.As<Napi::String>().Utf8Value() : "";
}

// openPinned({ name, programs: [{name, path?, section, type, attachType}], maps: [{name, path}] })
Napi::Value OpenPinned(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(env, "openPinned(spec)");
  Napi::Object spec = info[0].As<Napi::Object>();
  auto state = std::make_unique<ObjectState>();  // frees every fd opened so far if anything throws
  state->name = Str(spec, "name");
  {
    Napi::Array progs = spec.Get("programs").As<Napi::Array>();
    for (uint32_t i = 0; i < progs.Length(); i++) {
      Napi::Object p = progs.Get(i).As<Napi::Object>();
      ProgInfoN pi;
      pi.name = Str(p, "name");
      pi.section = Str(p, "section");
      pi.type = Str(p, "type");
      pi.attachType = Str(p, "attachType");
      std::string path = Str(p, "path");
      if (!path.empty()) {
        int fd = bpf_obj_get(path.c_str());
        if (fd < 0) Throw(env, ErrnoError(errno, "open pinned program " + path));
        state->ownedFds.emplace_back(fd);
        bpf_prog_info bi;
        std::memset(&bi, 0, sizeof(bi));
        uint32_t len = sizeof(bi);
        if (bpf_obj_get_info_by_fd(fd, &bi, &len) != 0) Throw(env, ErrnoError(errno, "bpf_obj_get_info_by_fd " + path));
        const char* t = libbpf_bpf_prog_type_str(static_cast<bpf_prog_type>(bi.type));
        std::string type = t ? t : "unknown";
        if (type != pi.type) {
          NativeError e;
          e.code = kErrInvalid;
          e.message = "pinned program " + path + " is a " + type + " program, expected " + pi.type;
          Throw(env, e);
        }
        pi.fd = fd;
        pi.loaded = true;
        ProgIdTag(fd, &pi.id, &pi.tag);
      }
      state->progs.push_back(std::move(pi));
    }
    Napi::Array maps = spec.Get("maps").As<Napi::Array>();
    for (uint32_t i = 0; i < maps.Length(); i++) {
      Napi::Object m = maps.Get(i).As<Napi::Object>();
      MapInfoN mi;
      mi.name = Str(m, "name");
      std::string path = Str(m, "path");
      int fd = bpf_obj_get(path.c_str());
      if (fd < 0) Throw(env, ErrnoError(errno, "open pinned map " + path));
      state->ownedFds.emplace_back(fd);
      bpf_map_info bi;
      std::memset(&bi, 0, sizeof(bi));
      uint32_t len = sizeof(bi);
      if (bpf_obj_get_info_by_fd(fd, &bi, &len) != 0) Throw(env, ErrnoError(errno, "bpf_obj_get_info_by_fd " + path));
      const char* t = libbpf_bpf_map_type_str(static_cast<bpf_map_type>(bi.type));
      mi.type = t ? t : "unknown";
      mi.fd = fd;
      mi.id = bi.id;
      mi.keySize = bi.key_size;
      mi.valueSize = bi.value_size;
      mi.maxEntries = bi.max_entries;
      mi.flags = bi.map_flags;
      mi.btfKeyTypeId = bi.btf_key_type_id;
      mi.btfValueTypeId = bi.btf_value_type_id;
      state->maps.push_back(std::move(mi));
    }
    if (spec.Has("btf") && spec.Get("btf").IsTypedArray()) {
      Napi::Uint8Array b = spec.Get("btf").As<Napi::Uint8Array>();
      state->btf.assign(b.Data(), b.Data() + b.ByteLength());
    }
  }
  return NewNativeObject(env, std::move(state));
}

// inspect(elf, name): programs, maps and BTF of an ELF without loading it.
Napi::Value Inspect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsTypedArray()) throw Napi::TypeError::New(env, "inspect(elf, name)");
  Napi::Uint8Array elf = info[0].As<Napi::Uint8Array>();
  std::string name = info[1].ToString().Utf8Value();
  std::vector<uint8_t> copy(elf.Data(), elf.Data() + elf.ByteLength());
  LIBBPF_OPTS(bpf_object_open_opts, opts);
  opts.object_name = name.c_str();
  bpf_object* obj = bpf_object__open_mem(copy.data(), copy.size(), &opts);
  long err = libbpf_get_error(obj);
  if (!obj || err) {
    NativeError e;
    e.code = kErrInvalid;
    e.err = err ? static_cast<int>(-err) : EINVAL;
    e.message = "'" + name + "' is not a usable BPF object: " + std::strerror(e.err);
    Throw(env, e);
  }
  ObjectState st;
  st.obj.reset(obj);
  st.Describe();  // nothing loaded: fds are -1
  Napi::Object out = Napi::Object::New(env);
  Napi::Array progs = Napi::Array::New(env, st.progs.size());
  for (uint32_t i = 0; i < st.progs.size(); i++) {
    const auto& p = st.progs[i];
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", p.name);
    o.Set("section", p.section);
    o.Set("type", p.type);
    o.Set("attachType", p.attachType);
    o.Set("loaded", false);
    o.Set("fd", -1);
    o.Set("id", 0);
    o.Set("tag", "");
    progs.Set(i, o);
  }
  Napi::Array maps = Napi::Array::New(env, st.maps.size());
  for (uint32_t i = 0; i < st.maps.size(); i++) {
    const auto& m = st.maps[i];
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", m.name);
    o.Set("type", m.type);
    o.Set("fd", -1);
    o.Set("id", 0);
    o.Set("keySize", m.keySize);
    o.Set("valueSize", m.valueSize);
    o.Set("maxEntries", m.maxEntries);
    o.Set("flags", m.flags);
    o.Set("btfKeyTypeId", m.btfKeyTypeId);
    o.Set("btfValueTypeId", m.btfValueTypeId);
    maps.Set(i, o);
  }
  out.Set("programs", progs);
  out.Set("maps", maps);
  if (!st.btf.empty()) out.Set("btf", Napi::Buffer<uint8_t>::Copy(env, st.btf.data(), st.btf.size()));
  return out;
}

// writeMeta(path, bytes): pins a one-entry array map holding `bytes` at `path`.
Napi::Value WriteMeta(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = info[0].ToString().Utf8Value();
  Napi::Uint8Array data = info[1].As<Napi::Uint8Array>();
  uint32_t size = static_cast<uint32_t>(data.ByteLength()) + 4;  // 4-byte length prefix
  std::vector<uint8_t> value(size, 0);
  uint32_t n = static_cast<uint32_t>(data.ByteLength());
  std::memcpy(value.data(), &n, 4);
  std::memcpy(value.data() + 4, data.Data(), n);
  UniqueFd fd(bpf_map_create(BPF_MAP_TYPE_ARRAY, "st_pin_meta", 4, size, 1, nullptr));
  if (!fd) Throw(env, ErrnoError(errno, "create metadata map"));
  uint32_t key = 0;
  if (bpf_map_update_elem(fd.get(), &key, value.data(), BPF_ANY) != 0) Throw(env, ErrnoError(errno, "write metadata"));
  if (bpf_obj_pin(fd.get(), path.c_str()) != 0) Throw(env, ErrnoError(errno, "pin metadata at " + path));
  return env.Undefined();
}

// readMeta(path): the bytes written by writeMeta, or undefined when there is no pin.
Napi::Value ReadMeta(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = info[0].ToString().Utf8Value();
  UniqueFd fd(bpf_obj_get(path.c_str()));
  if (!fd) {
    if (errno == ENOENT) return env.Undefined();
    Throw(env, ErrnoError(errno, "open metadata " + path));
  }
  bpf_map_info mi;
  std::memset(&mi, 0, sizeof(mi));
  uint32_t len = sizeof(mi);
  if (bpf_obj_get_info_by_fd(fd.get(), &mi, &len) != 0 || mi.type != BPF_MAP_TYPE_ARRAY || mi.key_size != 4 || mi.value_size < 4)
    return env.Undefined();  // not ours: treated as stale
  std::vector<uint8_t> value(mi.value_size);
  uint32_t key = 0;
  if (bpf_map_lookup_elem(fd.get(), &key, value.data()) != 0) return env.Undefined();
  uint32_t n;
  std::memcpy(&n, value.data(), 4);
  if (n > mi.value_size - 4) return env.Undefined();
  return Napi::Buffer<uint8_t>::Copy(env, value.data() + 4, n);
}

void Init(Napi::Env env, Napi::Object exports) {
  Napi::Object l = exports.Has("loader") ? exports.Get("loader").As<Napi::Object>() : Napi::Object::New(env);
  l.Set("openPinned", Napi::Function::New(env, OpenPinned, "openPinned"));
  l.Set("inspect", Napi::Function::New(env, Inspect, "inspect"));
  l.Set("writeMeta", Napi::Function::New(env, WriteMeta, "writeMeta"));
  l.Set("readMeta", Napi::Function::New(env, ReadMeta, "readMeta"));
  exports.Set("loader", l);
}

}  // namespace
}  // namespace smoothtask

SMOOTHTASK_MODULE(pin, smoothtask::Init);
