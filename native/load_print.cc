#include "load_print.h"

#include <cstdio>

namespace smoothtask::load {
namespace {
thread_local PrintSink* t_sink = nullptr;
}  // namespace

int PrintRoute(enum libbpf_print_level level, const char* fmt, va_list ap) {
  PrintSink* sink = t_sink;
  if (!sink) return 0;  // not a load of ours (or a probe): drop
  if (level == LIBBPF_DEBUG && !sink->debug) return 0;
  va_list cp;
  va_copy(cp, ap);
  char small[512];
  int n = std::vsnprintf(small, sizeof(small), fmt, cp);
  va_end(cp);
  if (n < 0) return 0;
  if (static_cast<size_t>(n) < sizeof(small)) {
    sink->text.append(small, n);
    if (level != LIBBPF_DEBUG) sink->warn.append(small, n);
  } else {
    std::string big(static_cast<size_t>(n) + 1, '\0');
    std::vsnprintf(&big[0], big.size(), fmt, ap);
    big.resize(n);
    sink->text += big;
    if (level != LIBBPF_DEBUG) sink->warn += big;
  }
  return n;
}

PrintScope::PrintScope(PrintSink* s) { t_sink = s; }
PrintScope::~PrintScope() { t_sink = nullptr; }

}  // namespace smoothtask::load
