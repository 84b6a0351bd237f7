// What every C entry point of gdt's C++ (dist/c10d.cpp, device/ffi.cpp) shares: C++
// exceptions never cross into Rust; they become a message in the caller's buffer.
#pragma once

#include <cstring>
#include <exception>

namespace gdt {

inline void report(char* err, size_t len, const char* what) {
  if (err != nullptr && len > 0) {
    std::strncpy(err, what, len - 1);
    err[len - 1] = '\0';
  }
}

// Runs `f`; 0 when it returned, -1 (with the exception's message in `err`) when it threw.
template <typename F>
int guarded(char* err, size_t len, F f) {
  try {
    f();
    return 0;
  } catch (const std::exception& e) {
    report(err, len, e.what());
  } catch (...) {
    report(err, len, "unknown C++ exception");
  }
  return -1;
}

}  // namespace gdt
