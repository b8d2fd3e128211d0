// Test hooks of the ring/perf buffer consumers (stage 0: on the old consumers).
#pragma once
#include <atomic>
namespace smoothtask {
inline std::atomic<int> g_consumerFaultThread{0};
inline std::atomic<int> g_consumerFaultPoll{0};
inline std::atomic<int> g_consumerRegistered{0};
}  // namespace smoothtask
