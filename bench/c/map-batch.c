// Baseline of bench/maps.ts: reads a whole hash map (by map id) with BPF_MAP_LOOKUP_BATCH, as
// a plain C reader would. Prints "<entries> <best elapsed ns over runs>".
#include <bpf/bpf.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static long long now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv) {
  if (argc < 3) return 2;
  int fd = bpf_map_get_fd_by_id(atoi(argv[1]));
  int runs = atoi(argv[2]);
  if (fd < 0) { perror("bpf_map_get_fd_by_id"); return 1; }
  struct bpf_map_info info = {};
  __u32 len = sizeof(info);
  if (bpf_obj_get_info_by_fd(fd, &info, &len)) { perror("info"); return 1; }
  __u32 max = info.max_entries, chunk = max < 65536 ? max : 65536;
  char *keys = malloc((size_t)max * info.key_size), *vals = malloc((size_t)max * info.value_size);
  long long best = -1, total = 0;
  for (int r = 0; r < runs; r++) {
    long long t0 = now_ns();
    __u64 in = 0, out = 0;
    int first = 1;
    total = 0;
    for (;;) {
      __u32 n = chunk;
      if (max - total < n) n = max - total;
      if (n == 0) break;
      int err = bpf_map_lookup_batch(fd, first ? NULL : &in, &out, keys + total * info.key_size, vals + total * info.value_size, &n, NULL);
      total += n;
      if (err && errno == ENOENT) break;
      if (err) { perror("bpf_map_lookup_batch"); return 1; }
      first = 0;
      in = out;
    }
    long long dt = now_ns() - t0;
    if (best < 0 || dt < best) best = dt;
  }
  printf("%lld %lld\n", total, best);
  return 0;
}
