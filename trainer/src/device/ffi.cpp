// What gdt needs of libtorch that tch 0.24 does not bind: streams and events (to copy the next
// batch to the GPU while the current step runs), page-locked host memory (so that copy needs
// no staging), and autocast through its current API (tch's calls the deprecated
// `at::autocast::is_enabled`/`set_enabled`, which print warnings on every CUDA run).
//
// Everything goes through c10's device-generic API (c10::Stream, c10::Event, the device guard
// registry), so this file needs only libtorch's headers: CUDA's implementation is registered
// at run time by libtorch_cuda. Every function catches C++ exceptions and returns them as text.

#include "../guarded.h"

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <c10/core/Event.h>
#include <c10/core/Stream.h>
#include <c10/core/StreamGuard.h>
#include <c10/core/impl/VirtualGuardImpl.h>

using gdt::guarded;

namespace {

c10::Device device_of(int type, int index) {
  return c10::Device(static_cast<c10::DeviceType>(type), static_cast<c10::DeviceIndex>(index));
}

}  // namespace

extern "C" {

// Autocast on `device_type` to `dtype` (a c10::ScalarType code) from here on; returns
// whether it was on before (for gdt_autocast_exit), or -1 with the reason in `err`.
int gdt_autocast_enter(int device_type, int dtype, char* err, size_t len) {
  int previous = -1;
  guarded(err, len, [&] {
    auto type = static_cast<c10::DeviceType>(device_type);
    previous = at::autocast::is_autocast_enabled(type) ? 1 : 0;
    at::autocast::set_autocast_enabled(type, true);
    at::autocast::set_autocast_dtype(type, static_cast<at::ScalarType>(dtype));
    at::autocast::increment_nesting();
  });
  return previous;
}

// Leaves the autocast region gdt_autocast_enter opened (`previous`: what it returned).
int gdt_autocast_exit(int device_type, int previous, char* err, size_t len) {
  return guarded(err, len, [&] {
    if (at::autocast::decrement_nesting() == 0) {
      at::autocast::clear_cache();
    }
    at::autocast::set_autocast_enabled(static_cast<c10::DeviceType>(device_type), previous != 0);
  });
}

// The dtype autocast on `device_type` casts to, as a c10::ScalarType code.
int gdt_autocast_dtype(int device_type) {
  return static_cast<int>(at::autocast::get_autocast_dtype(static_cast<c10::DeviceType>(device_type)));
}

// `bytes` of page-locked host memory, as a uint8 tensor (torch's caching host allocator:
// freeing returns it to torch's cache). Null with the reason when there is no accelerator.
at::Tensor* gdt_pinned_empty(long long bytes, char* err, size_t len) {
  at::Tensor* out = nullptr;
  guarded(err, len, [&] {
    auto t = at::empty({bytes}, at::TensorOptions().dtype(at::kByte).pinned_memory(true));
    out = new at::Tensor(std::move(t));
  });
  return out;
}

// A stream of the device's pool (its own queue of work, beside the default stream).
void* gdt_stream_from_pool(int device_type, int device_index, char* err, size_t len) {
  c10::Stream* out = nullptr;
  guarded(err, len, [&] {
    auto device = device_of(device_type, device_index);
    c10::impl::VirtualGuardImpl impl(device.type());
    out = new c10::Stream(impl.getStreamFromGlobalPool(device, /*isHighPriority=*/false));
  });
  return out;
}

// The device's current stream: where libtorch launches the step's kernels.
void* gdt_stream_current(int device_type, int device_index, char* err, size_t len) {
  c10::Stream* out = nullptr;
  guarded(err, len, [&] {
    auto device = device_of(device_type, device_index);
    c10::impl::VirtualGuardImpl impl(device.type());
    out = new c10::Stream(impl.getStream(device));
  });
  return out;
}

void gdt_stream_free(void* stream) { delete static_cast<c10::Stream*>(stream); }

// `src` (page-locked host memory) copied to the stream's device on that stream, without
// waiting: the copy is ordered after what the stream already holds, and the new tensor's
// memory belongs to that stream in the caching allocator.
at::Tensor* gdt_copy_on_stream(void* stream, at::Tensor* src, char* err, size_t len) {
  at::Tensor* out = nullptr;
  guarded(err, len, [&] {
    auto* s = static_cast<c10::Stream*>(stream);
    c10::StreamGuard guard(*s);
    out = new at::Tensor(src->to(s->device(), /*non_blocking=*/true));
  });
  return out;
}

// Tells the caching allocator that `t` is used on `stream` too, so its memory is not handed
// out again before the work queued there is done.
int gdt_record_stream(at::Tensor* t, void* stream, char* err, size_t len) {
  return guarded(err, len, [&] { t->record_stream(*static_cast<c10::Stream*>(stream)); });
}

void* gdt_event_new(int device_type, char* err, size_t len) {
  c10::Event* out = nullptr;
  guarded(err, len, [&] { out = new c10::Event(static_cast<c10::DeviceType>(device_type)); });
  return out;
}

// Marks the point `stream` has reached.
int gdt_event_record(void* event, void* stream, char* err, size_t len) {
  return guarded(err, len, [&] {
    static_cast<c10::Event*>(event)->record(*static_cast<c10::Stream*>(stream));
  });
}

// Makes `stream` wait (on the device, not the host) until the event's point is reached.
int gdt_event_block(void* event, void* stream, char* err, size_t len) {
  return guarded(err, len, [&] {
    static_cast<c10::Event*>(event)->block(*static_cast<c10::Stream*>(stream));
  });
}

// 1 when the event's point has been reached, 0 when not yet, -1 on error.
int gdt_event_query(void* event, char* err, size_t len) {
  int done = -1;
  guarded(err, len, [&] { done = static_cast<c10::Event*>(event)->query() ? 1 : 0; });
  return done;
}

// Blocks the host until the event's point is reached.
int gdt_event_synchronize(void* event, char* err, size_t len) {
  return guarded(err, len, [&] { static_cast<c10::Event*>(event)->synchronize(); });
}

void gdt_event_free(void* event) { delete static_cast<c10::Event*>(event); }

}  // extern "C"
