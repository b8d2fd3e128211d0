// The clock of the loader's deadlines and timings.
#pragma once

#include <chrono>

namespace smoothtask::load {

using Clock = std::chrono::steady_clock;

inline double MsSince(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

}  // namespace smoothtask::load
