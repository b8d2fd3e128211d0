// Map operations of the data path: one N-API call per user operation, and whole-map reads
// (BPF_MAP_LOOKUP_BATCH, or next-key iteration where the kernel or map type lacks it) done
// entirely in native code so a 100,000-entry read costs a handful of syscalls, not 100,000
// round trips through N-API.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <mutex>
#include <set>
#include <unordered_map>
#include <string>
#include <vector>

#include "errors.h"
#include "fd.h"
#include "module.h"

namespace smoothtask {

// Fds handed to JS per environment: a worker thread that ends without closing its maps still
// gives their fds back (env cleanup hook), not only the main thread at process exit.
namespace {
std::mutex g_fdsMu;
std::unordered_map<napi_env, std::set<int>> g_fds;

void CloseEnvFds(void* arg) {
  std::set<int> fds;
  {
    std::lock_guard<std::mutex> lk(g_fdsMu);
    auto it = g_fds.find(static_cast<napi_env>(arg));
    if (it == g_fds.end()) return;
    fds.swap(it->second);
    g_fds.erase(it);
  }
  for (int fd : fds) ::close(fd);
}

}  // namespace

Napi::Value TrackFd(Napi::Env env, int fd) {
  std::lock_guard<std::mutex> lk(g_fdsMu);
  auto it = g_fds.find(env);
  if (it == g_fds.end()) {
    it = g_fds.emplace(env, std::set<int>()).first;
    napi_add_env_cleanup_hook(env, CloseEnvFds, env);
  }
  it->second.insert(fd);
  return Napi::Number::New(env, fd);
}

namespace {

[[noreturn]] void ThrowArg(Napi::Env env, const std::string& message) { Throw(env, ArgumentError(message)); }

// An integral JS number in [min, max]; anything else is ERR_BPF_INVALID_ARGUMENT (a NaN fd
// must not become fd 0).
double IntArg(const Napi::CallbackInfo& info, size_t i, const char* what, double min, double max) {
  if (info.Length() <= i || !info[i].IsNumber()) ThrowArg(info.Env(), std::string(what) + " must be a number");
  double v = info[i].As<Napi::Number>().DoubleValue();
  if (!(v >= min && v <= max) || v != static_cast<double>(static_cast<int64_t>(v)))
    ThrowArg(info.Env(), std::string(what) + " must be an integer in [" + std::to_string(static_cast<int64_t>(min)) + ", " +
                             std::to_string(static_cast<int64_t>(max)) + "], got " + info[i].ToString().Utf8Value());
  return v;
}

int FdArg(const Napi::CallbackInfo& info, size_t i) { return static_cast<int>(IntArg(info, i, "fd", -1, INT32_MAX)); }

uint32_t U32Arg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  return static_cast<uint32_t>(IntArg(info, i, what, 0, UINT32_MAX));
}

Napi::Buffer<uint8_t> BufArg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (info.Length() <= i || !info[i].IsBuffer()) ThrowArg(info.Env(), std::string(what) + " must be a Buffer");
  return info[i].As<Napi::Buffer<uint8_t>>();
}

// Flags of a map operation (BPF_ANY, BPF_NOEXIST, BPF_EXIST, BPF_F_LOCK); absent means 0.
uint64_t FlagsArg(const Napi::CallbackInfo& info, size_t i) {
  if (info.Length() <= i || info[i].IsUndefined()) return 0;
  return static_cast<uint64_t>(IntArg(info, i, "flags", 0, 9007199254740991.0));
}

bool PerCpuMapType(uint32_t type) {
  return type == BPF_MAP_TYPE_PERCPU_HASH || type == BPF_MAP_TYPE_PERCPU_ARRAY || type == BPF_MAP_TYPE_LRU_PERCPU_HASH ||
         type == BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE;
}

// What the kernel reads and writes through the buffers of one map operation. Asked of the
// kernel on every call (one bpf_obj_get_info_by_fd): an fd number can be closed and reused
// by another map at any time, so a cached size could be another map's.
struct MapGeometry {
  uint32_t type = 0, keySize = 0, valueSize = 0, maxEntries = 0;
  size_t valueBytes = 0;  // one value as user space sees it; per-CPU: round_up(size, 8) x possible CPUs
};

MapGeometry Geometry(Napi::Env env, int fd) {
  struct bpf_map_info mi;
  std::memset(&mi, 0, sizeof(mi));
  __u32 len = sizeof(mi);
  if (bpf_obj_get_info_by_fd(fd, &mi, &len) < 0) Throw(env, ErrnoError(-errno, "bpf_obj_get_info_by_fd(map)"));
  MapGeometry g;
  g.type = mi.type;
  g.keySize = mi.key_size;
  g.valueSize = mi.value_size;
  g.maxEntries = mi.max_entries;
  g.valueBytes = mi.value_size;
  if (PerCpuMapType(mi.type)) {
    int cpus = libbpf_num_possible_cpus();
    if (cpus < 0) Throw(env, ErrnoError(cpus, "libbpf_num_possible_cpus"));
    g.valueBytes = ((size_t(mi.value_size) + 7) / 8) * 8 * size_t(cpus);
  }
  return g;
}

// Refuses a buffer smaller than what the kernel will read or write through it.
void NeedBytes(Napi::Env env, const char* what, size_t have, size_t need, const MapGeometry& g) {
  if (have >= need) return;
  ThrowArg(env, std::string(what) + " buffer has " + std::to_string(have) + " bytes, the map needs " + std::to_string(need) +
                    " (key size " + std::to_string(g.keySize) + ", value size " + std::to_string(g.valueSize) +
                    (PerCpuMapType(g.type) ? ", per-CPU: " + std::to_string(g.valueBytes) + " bytes per value" : std::string()) + ")");
}

Napi::Value DupFd(const Napi::CallbackInfo& info) {
  int r = DupFdCloexec(FdArg(info, 0));
  if (r < 0) Throw(info.Env(), ErrnoError(r, "dup fd"));
  return TrackFd(info.Env(), r);
}

// Adopts an fd the data path created itself (map create, obj get, attach) into the env's set.
Napi::Value AdoptFd(const Napi::CallbackInfo& info) { return TrackFd(info.Env(), FdArg(info, 0)); }

Napi::Value CloseFd(const Napi::CallbackInfo& info) {
  int fd = FdArg(info, 0);
  if (fd < 0) return info.Env().Undefined();
  {
    std::lock_guard<std::mutex> lk(g_fdsMu);
    auto it = g_fds.find(info.Env());
    if (it != g_fds.end()) it->second.erase(fd);
  }
  ::close(fd);
  return info.Env().Undefined();
}

Napi::Value NumPossibleCpus(const Napi::CallbackInfo& info) {
  int n = libbpf_num_possible_cpus();
  if (n < 0) Throw(info.Env(), ErrnoError(n, "libbpf_num_possible_cpus"));
  return Napi::Number::New(info.Env(), n);
}

// Map type names as libbpf spells them ("hash", "percpu_array", ...), indexed by enum value.
Napi::Value MapTypeNames(const Napi::CallbackInfo& info) {
  Napi::Array out = Napi::Array::New(info.Env());
  for (uint32_t t = 0; t < 64; t++) {
    const char* s = libbpf_bpf_map_type_str(static_cast<enum bpf_map_type>(t));
    if (!s) break;
    out.Set(t, s);
  }
  return out;
}

// (type, name, keySize, valueSize, maxEntries, flags, btfFd?, btfKeyTypeId?, btfValueTypeId?) -> fd
Napi::Value MapCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto type = static_cast<enum bpf_map_type>(U32Arg(info, 0, "map type"));
  std::string name = info.Length() > 1 && info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "";
  uint32_t keySize = U32Arg(info, 2, "key size"), valueSize = U32Arg(info, 3, "value size");
  uint32_t maxEntries = U32Arg(info, 4, "max entries");
  LIBBPF_OPTS(bpf_map_create_opts, opts);
  opts.map_flags = U32Arg(info, 5, "map flags");
  int r = bpf_map_create(type, name.empty() ? nullptr : name.c_str(), keySize, valueSize, maxEntries, &opts);
  if (r < 0) {
    const char* tn = libbpf_bpf_map_type_str(type);
    Throw(env, ErrnoError(r, std::string("bpf_map_create(") + (tn ? tn : "?") + ")", "CAP_BPF",
                          std::string("map type ") + (tn ? tn : "?")));
  }
  return TrackFd(env, r);
}

Napi::Value MapInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  struct bpf_map_info mi;
  std::memset(&mi, 0, sizeof(mi));
  __u32 len = sizeof(mi);
  int r = bpf_obj_get_info_by_fd(FdArg(info, 0), &mi, &len);
  if (r < 0) Throw(env, ErrnoError(-errno, "bpf_obj_get_info_by_fd(map)"));
  Napi::Object o = Napi::Object::New(env);
  const char* tn = libbpf_bpf_map_type_str(static_cast<enum bpf_map_type>(mi.type));
  o.Set("type", tn ? tn : std::to_string(mi.type));
  o.Set("id", mi.id);
  o.Set("name", mi.name);
  o.Set("keySize", mi.key_size);
  o.Set("valueSize", mi.value_size);
  o.Set("maxEntries", mi.max_entries);
  o.Set("flags", mi.map_flags);
  o.Set("btfId", mi.btf_id);
  o.Set("btfKeyTypeId", mi.btf_key_type_id);
  o.Set("btfValueTypeId", mi.btf_value_type_id);
  return o;
}

// (fd, key, valueOut, flags) -> bool (false on ENOENT)
Napi::Value MapLookup(const Napi::CallbackInfo& info) {
  int fd = FdArg(info, 0);
  auto key = BufArg(info, 1, "key");
  auto val = BufArg(info, 2, "value");
  uint64_t flags = FlagsArg(info, 3);
  MapGeometry g = Geometry(info.Env(), fd);
  NeedBytes(info.Env(), "key", key.Length(), g.keySize, g);
  NeedBytes(info.Env(), "value", val.Length(), g.valueBytes, g);
  int r = bpf_map_lookup_elem_flags(fd, key.Data(), val.Data(), flags);
  if (r < 0) {
    if (errno == ENOENT) return Napi::Boolean::New(info.Env(), false);
    Throw(info.Env(), ErrnoError(-errno, "bpf_map_lookup_elem"));
  }
  return Napi::Boolean::New(info.Env(), true);
}

// (fd, key, value, flags)
Napi::Value MapUpdate(const Napi::CallbackInfo& info) {
  int fd = FdArg(info, 0);
  auto key = BufArg(info, 1, "key");
  auto val = BufArg(info, 2, "value");
  uint64_t flags = FlagsArg(info, 3);
  MapGeometry g = Geometry(info.Env(), fd);
  NeedBytes(info.Env(), "key", key.Length(), g.keySize, g);
  NeedBytes(info.Env(), "value", val.Length(), g.valueBytes, g);
  int r = bpf_map_update_elem(fd, key.Data(), val.Data(), flags);
  if (r < 0) {
    int e = errno;
    NativeError err = ErrnoError(e, "bpf_map_update_elem");
    if (e == EEXIST) err.message = "bpf_map_update_elem: key exists (flag 'noexist')";
    if (e == ENOENT) err.message = "bpf_map_update_elem: key does not exist (flag 'exist')";
    if (e == E2BIG) err.message = "bpf_map_update_elem: map is full (max_entries reached)";
    Throw(info.Env(), err);
  }
  return info.Env().Undefined();
}

// (fd, key) -> bool (false on ENOENT)
Napi::Value MapDelete(const Napi::CallbackInfo& info) {
  int fd = FdArg(info, 0);
  auto key = BufArg(info, 1, "key");
  MapGeometry g = Geometry(info.Env(), fd);
  NeedBytes(info.Env(), "key", key.Length(), g.keySize, g);
  int r = bpf_map_delete_elem(fd, key.Data());
  if (r < 0) {
    if (errno == ENOENT) return Napi::Boolean::New(info.Env(), false);
    Throw(info.Env(), ErrnoError(-errno, "bpf_map_delete_elem"));
  }
  return Napi::Boolean::New(info.Env(), true);
}

// (fd, key|null, nextOut) -> bool (false at the end)
Napi::Value MapNextKey(const Napi::CallbackInfo& info) {
  int fd = FdArg(info, 0);
  auto out = BufArg(info, 2, "next key");
  MapGeometry g = Geometry(info.Env(), fd);
  NeedBytes(info.Env(), "next key", out.Length(), g.keySize, g);
  const void* key = nullptr;
  if (info[1].IsBuffer()) {
    auto k = info[1].As<Napi::Buffer<uint8_t>>();
    NeedBytes(info.Env(), "key", k.Length(), g.keySize, g);
    key = k.Data();
  } else if (!info[1].IsNull() && !info[1].IsUndefined()) {
    ThrowArg(info.Env(), "key must be a Buffer or null");
  }
  int r = bpf_map_get_next_key(fd, key, out.Data());
  if (r < 0) {
    if (errno == ENOENT) return Napi::Boolean::New(info.Env(), false);
    Throw(info.Env(), ErrnoError(-errno, "bpf_map_get_next_key"));
  }
  return Napi::Boolean::New(info.Env(), true);
}

// Next-key iteration of keys (and values when valueStride > 0). Entries deleted while we walk
// restart the walk from the first key (what the kernel does for a vanished key), so `seen`
// bounds the loop at maxEntries to stay finite under churn.
int IterateAll(int fd, uint32_t keySize, uint32_t valueStride, uint32_t maxEntries, std::vector<uint8_t>& keys,
               std::vector<uint8_t>& values, uint32_t& count) {
  std::vector<uint8_t> cur(keySize), next(keySize), val(std::max<uint32_t>(valueStride, 1));
  bool first = true;
  count = 0;
  while (count < maxEntries) {
    int r = bpf_map_get_next_key(fd, first ? nullptr : cur.data(), next.data());
    if (r < 0) {
      if (errno == ENOENT) break;
      return -errno;
    }
    first = false;
    cur.swap(next);
    if (valueStride) {
      r = bpf_map_lookup_elem(fd, cur.data(), val.data());
      if (r < 0) {
        if (errno == ENOENT) continue;  // deleted between next_key and lookup
        return -errno;
      }
      values.insert(values.end(), val.begin(), val.begin() + valueStride);
    }
    keys.insert(keys.end(), cur.begin(), cur.end());
    count++;
  }
  return 0;
}

// Grow-only scratch memory for whole-map reads, not zeroed. A readAll used to allocate (and,
// above malloc's mmap threshold, map and fault in) max_entries x value bytes, zero them, and
// unmap them again on every call; a monitor reads a dozen such maps every second. At most
// kKeep bytes stay allocated per thread between calls.
class Scratch {
 public:
  uint8_t* Get(size_t n) {
    if (n > cap_) {
      buf_.reset(new uint8_t[n]);
      cap_ = n;
    }
    return buf_.get();
  }
  void Trim() {
    if (cap_ > kKeep) {
      buf_.reset();
      cap_ = 0;
    }
  }

 private:
  static constexpr size_t kKeep = size_t(4) << 20;
  std::unique_ptr<uint8_t[]> buf_;
  size_t cap_ = 0;
};
thread_local Scratch scratchKeys, scratchValues;

// Batch lookup of the whole map into keys/values (room for maxEntries each). Returns 0, or
// -errno (-EINVAL/-ENOTSUPP: caller falls back).
int BatchAll(int fd, uint32_t keySize, uint32_t valueStride, uint32_t maxEntries, uint8_t* keys, uint8_t* values,
             uint32_t& count) {
  // Hash maps use a u32 bucket cursor, arrays a key-sized one: size the token for both.
  std::vector<uint8_t> inBatch(std::max<uint32_t>(keySize, 8)), outBatch(std::max<uint32_t>(keySize, 8));
  uint32_t chunk = std::max<uint32_t>(std::min<uint32_t>(maxEntries, 1u << 16), 64);
  count = 0;
  bool first = true;
  LIBBPF_OPTS(bpf_map_batch_opts, opts);
  for (;;) {
    uint32_t room = maxEntries - count;
    if (room == 0) break;
    uint32_t n = std::min(chunk, room);
    int r = bpf_map_lookup_batch(fd, first ? nullptr : inBatch.data(), outBatch.data(), keys + size_t(count) * keySize,
                                 values + size_t(count) * valueStride, &n, &opts);
    int e = r < 0 ? errno : 0;
    if (r < 0 && e != ENOENT) {
      // ENOSPC: the next hash bucket does not fit in n entries (the kernel hands out whole
      // buckets). Room left under the caller's limit: stop there, at most maxEntries read.
      if (e == ENOSPC && n < chunk) break;
      if (e == ENOSPC && chunk < maxEntries) {  // a bucket bigger than the chunk: retry larger
        chunk = std::min<uint32_t>(chunk * 2, maxEntries);
        continue;
      }
      return -e;
    }
    count += n;
    if (e == ENOENT) break;  // done; n holds the last partial batch
    first = false;
    inBatch.swap(outBatch);
  }
  return 0;
}

// (fd, keySize, valueStride, maxEntries, mode: 'auto'|'batch'|'iterate')
//   -> { keys: Buffer, values: Buffer, count, batch: bool }
Napi::Value MapReadAll(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdArg(info, 0);
  uint32_t keySize = U32Arg(info, 1, "key size");
  uint32_t valueStride = U32Arg(info, 2, "value stride");
  uint32_t maxEntries = U32Arg(info, 3, "max entries");
  std::string mode = info.Length() > 4 && info[4].IsString() ? info[4].As<Napi::String>().Utf8Value() : "auto";
  if (mode != "auto" && mode != "batch" && mode != "iterate") ThrowArg(env, "mode must be 'auto', 'batch' or 'iterate'");
  // The kernel writes key_size and value bytes per entry: the layout JS decodes must be the
  // map's, and the buffers are sized for at most the map's max_entries.
  MapGeometry g = Geometry(env, fd);
  if (keySize != g.keySize || valueStride != g.valueBytes)
    ThrowArg(env, "readAll layout (key size " + std::to_string(keySize) + ", value stride " + std::to_string(valueStride) +
                      ") does not match the map (key size " + std::to_string(g.keySize) + ", value stride " +
                      std::to_string(g.valueBytes) + ")");
  if (maxEntries > g.maxEntries)
    ThrowArg(env, "max entries " + std::to_string(maxEntries) + " exceeds the map's " + std::to_string(g.maxEntries));
  uint32_t count = 0;
  bool batch = false;
  int r = -EINVAL;
  Napi::Object o = Napi::Object::New(env);
  if (mode != "iterate") {
    uint8_t* k = scratchKeys.Get(std::max<size_t>(size_t(maxEntries) * keySize, 1));
    uint8_t* v = scratchValues.Get(std::max<size_t>(size_t(maxEntries) * valueStride, 1));
    r = BatchAll(fd, keySize, valueStride, maxEntries, k, v, count);
    batch = r == 0;
    if (batch) {
      o.Set("keys", Napi::Buffer<uint8_t>::Copy(env, k, size_t(count) * keySize));
      o.Set("values", Napi::Buffer<uint8_t>::Copy(env, v, size_t(count) * valueStride));
    }
    scratchKeys.Trim();
    scratchValues.Trim();
    if (r < 0 && mode == "batch") Throw(env, ErrnoError(r, "bpf_map_lookup_batch", "CAP_BPF", "map batch lookup"));
  }
  if (r < 0) {
    if (r != -EINVAL && r != -ENOTSUP && r != -524 && r != -ENOSYS && r != -EOPNOTSUPP && mode == "auto" && r != -EFAULT)
      Throw(env, ErrnoError(r, "bpf_map_lookup_batch"));
    std::vector<uint8_t> keys, values;
    r = IterateAll(fd, keySize, valueStride, maxEntries, keys, values, count);
    if (r < 0) Throw(env, ErrnoError(r, "map iteration"));
    o.Set("keys", Napi::Buffer<uint8_t>::Copy(env, keys.data(), keys.size()));
    o.Set("values", Napi::Buffer<uint8_t>::Copy(env, values.data(), values.size()));
  }
  o.Set("count", count);
  o.Set("batch", batch);
  return o;
}

// (fd, keySize, maxEntries) -> Buffer of every key (next-key iteration in one call)
Napi::Value MapKeys(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdArg(info, 0);
  uint32_t keySize = U32Arg(info, 1, "key size");
  uint32_t maxEntries = U32Arg(info, 2, "max entries");
  MapGeometry g = Geometry(env, fd);
  if (keySize != g.keySize)
    ThrowArg(env, "key size " + std::to_string(keySize) + " does not match the map's " + std::to_string(g.keySize));
  if (maxEntries > g.maxEntries)
    ThrowArg(env, "max entries " + std::to_string(maxEntries) + " exceeds the map's " + std::to_string(g.maxEntries));
  std::vector<uint8_t> keys, values;
  uint32_t count = 0;
  int r = IterateAll(fd, keySize, 0, maxEntries, keys, values, count);
  if (r < 0) Throw(env, ErrnoError(r, "map iteration"));
  return Napi::Buffer<uint8_t>::Copy(env, keys.data(), keys.size());
}

// (fd, keys: Buffer, values: Buffer, count, flags): bulk update (batch op, per-key fallback)
Napi::Value MapUpdateMany(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdArg(info, 0);
  auto keys = BufArg(info, 1, "keys");
  auto values = BufArg(info, 2, "values");
  uint32_t count = U32Arg(info, 3, "count");
  uint64_t flags = FlagsArg(info, 4);
  if (count == 0) return env.Undefined();
  // Entries are laid out with the map's own sizes; the buffers must hold `count` of them.
  MapGeometry g = Geometry(env, fd);
  size_t keySize = g.keySize, valueStride = g.valueBytes;
  NeedBytes(env, "keys", keys.Length(), size_t(count) * keySize, g);
  NeedBytes(env, "values", values.Length(), size_t(count) * valueStride, g);
  LIBBPF_OPTS(bpf_map_batch_opts, opts, .elem_flags = flags);
  uint32_t n = count;
  int r = bpf_map_update_batch(fd, keys.Data(), values.Data(), &n, &opts);
  if (r == 0) return env.Undefined();
  int e = errno;
  if (e != EINVAL && e != ENOTSUP && e != 524 && e != EOPNOTSUPP) Throw(env, ErrnoError(e, "bpf_map_update_batch"));
  for (uint32_t i = 0; i < count; i++) {
    if (bpf_map_update_elem(fd, keys.Data() + i * keySize, values.Data() + i * valueStride, flags) < 0)
      Throw(env, ErrnoError(errno, "bpf_map_update_elem"));
  }
  return env.Undefined();
}

Napi::Value ObjGet(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsString()) ThrowArg(info.Env(), "path must be a string");
  std::string path = info[0].As<Napi::String>().Utf8Value();
  int r = bpf_obj_get(path.c_str());
  if (r < 0) Throw(info.Env(), ErrnoError(-errno, "bpf_obj_get(" + path + ")"));
  // bpf_obj_get already returns a CLOEXEC fd (libbpf uses O_CLOEXEC for every fd it makes).
  return TrackFd(info.Env(), r);
}

Napi::Value ObjPin(const Napi::CallbackInfo& info) {
  int fd = FdArg(info, 0);
  if (info.Length() < 2 || !info[1].IsString()) ThrowArg(info.Env(), "path must be a string");
  std::string path = info[1].As<Napi::String>().Utf8Value();
  if (bpf_obj_pin(fd, path.c_str()) < 0) Throw(info.Env(), ErrnoError(-errno, "bpf_obj_pin(" + path + ")"));
  return info.Env().Undefined();
}

void Init(Napi::Env env, Napi::Object exports) {
  Napi::Object dp = DpExports(env, exports);
  dp.Set("dupFd", Napi::Function::New(env, DupFd));
  dp.Set("adoptFd", Napi::Function::New(env, AdoptFd));
  dp.Set("closeFd", Napi::Function::New(env, CloseFd));
  dp.Set("numPossibleCpus", Napi::Function::New(env, NumPossibleCpus));
  dp.Set("mapTypeNames", Napi::Function::New(env, MapTypeNames));
  dp.Set("mapCreate", Napi::Function::New(env, MapCreate));
  dp.Set("mapInfo", Napi::Function::New(env, MapInfo));
  dp.Set("mapLookup", Napi::Function::New(env, MapLookup));
  dp.Set("mapUpdate", Napi::Function::New(env, MapUpdate));
  dp.Set("mapDelete", Napi::Function::New(env, MapDelete));
  dp.Set("mapNextKey", Napi::Function::New(env, MapNextKey));
  dp.Set("mapReadAll", Napi::Function::New(env, MapReadAll));
  dp.Set("mapKeys", Napi::Function::New(env, MapKeys));
  dp.Set("mapUpdateMany", Napi::Function::New(env, MapUpdateMany));
  dp.Set("objGet", Napi::Function::New(env, ObjGet));
  dp.Set("objPin", Napi::Function::New(env, ObjPin));
}

}  // namespace
}  // namespace smoothtask

SMOOTHTASK_MODULE(map, smoothtask::Init);
