// Typed errors from native code. JS converts them with lib/ebpf/errors.ts fromNative():
// every error is a plain Error whose `code` is one of the stable ERR_BPF_* strings.
#pragma once
#include <napi.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace smoothtask {

inline constexpr const char* kErrVerifier = "ERR_BPF_VERIFIER";
inline constexpr const char* kErrPermission = "ERR_BPF_PERMISSION";
inline constexpr const char* kErrUnsupported = "ERR_BPF_UNSUPPORTED";
inline constexpr const char* kErrTimeout = "ERR_BPF_LOAD_TIMEOUT";
inline constexpr const char* kErrInvalid = "ERR_BPF_INVALID_OBJECT";
inline constexpr const char* kErrClosed = "ERR_BPF_CLOSED";
inline constexpr const char* kErrSystem = "ERR_BPF_SYSTEM";
// An argument from JS that native code refuses before any system call (wrong buffer size,
// wrong type): a caller's bug, never undefined behaviour.
inline constexpr const char* kErrArgument = "ERR_BPF_INVALID_ARGUMENT";

// A native failure as plain data, so worker threads can build it without touching N-API.
struct NativeError {
  std::string code = kErrSystem;
  std::string message;
  int err = 0;              // positive errno, 0 if none
  std::string program;      // verifier errors
  std::string log;          // verifier log
  bool truncated = false;   // verifier log cut
  std::string capability;   // permission errors
  std::string feature;      // unsupported errors
  double timeoutMs = 0;     // timeouts
  double elapsedMs = 0;

  bool ok() const { return message.empty(); }

  Napi::Error ToJs(Napi::Env env) const {
    Napi::Error e = Napi::Error::New(env, message);
    Napi::Object o = e.Value();
    o.Set("code", code);
    if (err) o.Set("errno", err);
    if (!program.empty()) o.Set("program", program);
    if (!log.empty() || code == kErrVerifier) o.Set("log", log);
    if (truncated) o.Set("truncated", true);
    if (!capability.empty()) o.Set("capability", capability);
    if (!feature.empty()) o.Set("feature", feature);
    if (timeoutMs > 0) o.Set("timeoutMs", timeoutMs);
    if (elapsedMs > 0) o.Set("elapsedMs", elapsedMs);
    return e;
  }
};

// Classifies an errno from a bpf() call: EPERM/EACCES -> permission (capability named),
// EOPNOTSUPP/ENOTSUPP(524)/ENOSYS -> unsupported, else system. `what` prefixes the message.
inline NativeError ErrnoError(int err, const std::string& what, const std::string& capability = "CAP_BPF",
                              const std::string& feature = "") {
  if (err < 0) err = -err;
  NativeError e;
  e.err = err;
  e.message = what + ": " + std::strerror(err) + " (errno " + std::to_string(err) + ")";
  if (err == EPERM || err == EACCES) {
    e.code = kErrPermission;
    e.capability = capability;
  } else if (err == EOPNOTSUPP || err == 524 /* ENOTSUPP */ || err == ENOSYS ||
             (!feature.empty() && err == ENOENT)) {
    e.code = kErrUnsupported;
    e.feature = feature.empty() ? what : feature;
  }
  return e;
}

[[noreturn]] inline void Throw(Napi::Env env, const NativeError& e) { throw e.ToJs(env); }

// An invalid argument from JS (code ERR_BPF_INVALID_ARGUMENT, errno EINVAL).
inline NativeError ArgumentError(const std::string& message) {
  NativeError e;
  e.code = kErrArgument;
  e.err = EINVAL;
  e.message = message;
  return e;
}

}  // namespace smoothtask
