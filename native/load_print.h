// libbpf's messages, routed to the load that caused them. libbpf_set_print is global and not
// thread-safe in libbpf 1.1: it is set once, to PrintRoute, and each load thread points a
// thread_local at its own sink for the length of its load (PrintScope). Messages of any other
// thread (a probe, a load of someone else's) are dropped.
#pragma once

#include <bpf/libbpf.h>

#include <cstdarg>
#include <string>

namespace smoothtask::load {

struct PrintSink {
  std::string text;  // everything routed (debug lines too when logLevel > 0)
  std::string warn;  // WARN and INFO lines only: the same whatever the log level (classification)
  bool debug = false;
};

// The function given to libbpf_set_print.
int PrintRoute(enum libbpf_print_level level, const char* fmt, va_list ap);

// Routes this thread's messages to `s` until the scope ends.
class PrintScope {
 public:
  explicit PrintScope(PrintSink* s);
  ~PrintScope();
  PrintScope(const PrintScope&) = delete;
  PrintScope& operator=(const PrintScope&) = delete;
};

}  // namespace smoothtask::load
