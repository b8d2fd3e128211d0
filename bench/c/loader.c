// Baseline of bench/load-c.ts: a plain C libbpf loader. For each object given as
// `<path>[:prog,prog...]` (the programs to load; the others get autoload off, as a user of a
// third-party object on this host does), reads the file, opens it from memory, loads it and
// closes it, one object after the other. Prints one line per round: "<objects> <elapsed ns>".
#include <bpf/libbpf.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static long long now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int silent(enum libbpf_print_level level, const char *fmt, va_list ap) {
  (void)level;
  (void)fmt;
  (void)ap;
  return 0;
}

static int keep(const char *list, const char *name) {
  if (!list || !*list) return 1;
  size_t n = strlen(name);
  for (const char *p = list; p && *p;) {
    const char *end = strchr(p, ',');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    if (len == n && strncmp(p, name, n) == 0) return 1;
    p = end ? end + 1 : NULL;
  }
  return 0;
}

static int load_one(const char *spec) {
  char path[4096];
  snprintf(path, sizeof(path), "%s", spec);
  char *progs = strchr(path, ':');
  if (progs) *progs++ = 0;
  FILE *f = fopen(path, "rb");
  if (!f) return -errno;
  fseek(f, 0, SEEK_END);
  long size = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *buf = malloc(size);
  if (fread(buf, 1, size, f) != (size_t)size) {
    fclose(f);
    free(buf);
    return -EIO;
  }
  fclose(f);
  struct bpf_object *obj = bpf_object__open_mem(buf, size, NULL);
  long err = libbpf_get_error(obj);
  if (err) {
    free(buf);
    return (int)err;
  }
  struct bpf_program *p;
  bpf_object__for_each_program(p, obj) bpf_program__set_autoload(p, keep(progs, bpf_program__name(p)));
  int rc = bpf_object__load(obj);
  bpf_object__close(obj);
  free(buf);
  return rc;
}

int main(int argc, char **argv) {
  if (argc < 3) return 2;
  int rounds = atoi(argv[1]);
  libbpf_set_strict_mode(LIBBPF_STRICT_ALL);
  libbpf_set_print(silent);
  for (int r = 0; r < rounds; r++) {
    long long t0 = now_ns();
    for (int i = 2; i < argc; i++) {
      int rc = load_one(argv[i]);
      if (rc) {
        fprintf(stderr, "%s: %d\n", argv[i], rc);
        return 1;
      }
    }
    printf("%d %lld\n", argc - 2, now_ns() - t0);
    fflush(stdout);
  }
  return 0;
}
