// smoothtask-precheck: the loader's ELF pre-check, in a small long-lived process of its own.
//
// libbpf 1.1 crashes while opening some malformed ELF files. The addon (native/load_precheck.cc)
// sends the bytes of every object it has not seen before to this process, which opens them
// with the same libbpf and answers; a crash here costs this process, not the Node process, and
// the addon starts another one for the next object. Spawned by the addon (posix_spawn, not a
// fork of Node), kept between objects, one per concurrent pre-check.
//
// Protocol on fd 0, a stream socket to the addon:
//   request  u64 length (native byte order), u32 test hook (0 none, 1 stall, 2 spin, 3 crash),
//            then the bytes
//   reply    one byte: 0 libbpf opened the bytes, 1 libbpf refused them
// The process ends when the addon's end of the socket closes (a second thread watches for it,
// so a process stuck in libbpf, or held by the stall hook, still goes with its parent).
#include <bpf/libbpf.h>
#include <dirent.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <thread>
#include <vector>

namespace {

bool ReadAll(int fd, void* to, size_t n) {
  auto* p = static_cast<uint8_t*>(to);
  while (n > 0) {
    ssize_t r = read(fd, p, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

bool WriteAll(int fd, const void* from, size_t n) {
  const auto* p = static_cast<const uint8_t*>(from);
  while (n > 0) {
    ssize_t r = write(fd, p, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

// Nothing of the parent's but the socket and stdio stays open here.
void CloseInherited() {
  if (syscall(SYS_close_range, 3U, ~0U, 0U) == 0) return;
  DIR* d = opendir("/proc/self/fd");
  if (!d) return;
  std::vector<int> fds;
  while (dirent* e = readdir(d)) {
    int fd = atoi(e->d_name);
    if (fd > 2 && fd != dirfd(d)) fds.push_back(fd);
  }
  closedir(d);
  for (int fd : fds) close(fd);
}

}  // namespace

int main() {
  CloseInherited();
  libbpf_set_print(nullptr);
  // The addon's end closing (its process ended) ends this one, whatever the main thread does.
  std::thread([] {
    pollfd p{0, POLLRDHUP, 0};
    for (;;) {
      int r = poll(&p, 1, -1);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0 || (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL))) _exit(0);
    }
  }).detach();
  std::vector<uint8_t> elf;
  for (;;) {
    uint64_t size = 0;
    uint32_t hook = 0;
    if (!ReadAll(0, &size, sizeof(size)) || !ReadAll(0, &hook, sizeof(hook))) _exit(0);
    if (size > (uint64_t{1} << 32)) _exit(3);  // the addon never sends this much
    elf.resize(size);
    if (!ReadAll(0, elf.data(), size)) _exit(0);
    if (hook == 1)  // test hook (test/ebpf/precheck.test.ts): stuck without using CPU
      for (;;) pause();
    if (hook == 2)  // test hook: spinning, as on a lock that is never released
      for (;;) syscall(SYS_sched_yield);
    if (hook == 3) raise(SIGSEGV);  // test hook: as libbpf does on some malformed ELF
    LIBBPF_OPTS(bpf_object_open_opts, opts);
    opts.object_name = "precheck";
    bpf_object* obj = bpf_object__open_mem(elf.data(), elf.size(), &opts);
    uint8_t verdict = obj && !libbpf_get_error(obj) ? 0 : 1;
    if (verdict == 0) bpf_object__close(obj);
    if (!WriteAll(0, &verdict, 1)) _exit(0);
  }
}
