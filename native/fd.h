// File descriptors of the data path. Everything the data path keeps (maps, links, ring
// buffers) owns a DUP of the loader's fd, so its lifetime does not depend on the object's.
#pragma once
#include <fcntl.h>
#include <napi.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

namespace smoothtask {

// Returns a CLOEXEC duplicate of fd (>= 3 so it never lands on stdio), or -errno.
inline int DupFdCloexec(int fd) {
  int r = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  return r < 0 ? -errno : r;
}

// Owns one fd; closes it on destruction. Move-only.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  UniqueFd(UniqueFd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  ~UniqueFd() { reset(); }
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }
  explicit operator bool() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

// Registers an fd the data path hands to JS with the current environment, so the env cleanup
// hook closes it if JS never does (worker threads). Returns it as a JS number. (map.cc)
Napi::Value TrackFd(Napi::Env env, int fd);

// The data path's exports live under `exports.dp` so they never collide with the loader's.
inline Napi::Object DpExports(Napi::Env env, Napi::Object exports) {
  if (!exports.Has("dp")) exports.Set("dp", Napi::Object::New(env));
  return exports.Get("dp").As<Napi::Object>();
}

}  // namespace smoothtask
