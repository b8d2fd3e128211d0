// Baseline of bench/ringbuf.ts: drains a ring buffer (by map id) with libbpf's ring_buffer__poll
// and counts records, as a plain C consumer would. Prints "<records> <elapsed ns> <last ns>",
// the last being CLOCK_MONOTONIC when the last record arrived (the live phase's window ends there).
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static long long count;
static int on_sample(void *ctx, void *data, size_t size) { count++; return 0; }

static long long now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv) {
  if (argc < 3) return 2;
  int fd = bpf_map_get_fd_by_id(atoi(argv[1]));
  long long want = atoll(argv[2]);
  if (fd < 0) { perror("bpf_map_get_fd_by_id"); return 1; }
  long long t0 = now_ns();
  struct ring_buffer *rb = ring_buffer__new(fd, on_sample, NULL, NULL);
  if (!rb) { perror("ring_buffer__new"); return 1; }
  // Ends at `want` records, or 300 ms after the last record (live producer with drops).
  long long last = t0;
  while (count < want && now_ns() - t0 < 20000000000LL) {
    long long before = count;
    ring_buffer__poll(rb, 100);
    if (count != before) last = now_ns();
    else if (count > 0 && now_ns() - last > 300000000LL) break;
  }
  long long t1 = count >= want ? now_ns() : last;
  printf("%lld %lld %lld\n", count, t1 - t0, last);
  ring_buffer__free(rb);
  return 0;
}
