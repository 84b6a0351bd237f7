// The only C++ in gdt: a C interface over libtorch's own c10d (TCPStore, ProcessGroupGloo),
// so that Rust can run torch.distributed's collectives without Python. Every function
// catches C++ exceptions and reports them as text; nothing throws across the boundary.
// Tensors arrive as tch's `at::Tensor*` (what torch-sys's C_tensor is).

#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <chrono>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

namespace {

struct Group {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> pg;
  std::chrono::milliseconds timeout;
};

void report(char* err, size_t len, const char* what) {
  if (err != nullptr && len > 0) {
    std::strncpy(err, what, len - 1);
    err[len - 1] = '\0';
  }
}

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

}  // namespace

extern "C" {

// Rendezvous at addr:port (rank 0 serves the store) and create a Gloo group that talks
// over `iface_host` (an address of this machine the others can reach).
void* gdt_c10d_gloo_new(const char* addr, int port, int rank, int world, const char* iface_host,
                        long long timeout_ms, char* err, size_t len) {
  Group* g = nullptr;
  guarded(err, len, [&] {
    auto timeout = std::chrono::milliseconds(timeout_ms);
    c10d::TCPStoreOptions opts;
    opts.port = static_cast<std::uint16_t>(port);
    opts.isServer = rank == 0;
    opts.numWorkers = world;
    opts.waitWorkers = true;
    opts.timeout = timeout;
    auto store = c10::make_intrusive<c10d::TCPStore>(std::string(addr), opts);
    auto options = c10d::ProcessGroupGloo::Options::create(timeout);
    options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(iface_host));
    auto pg = c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, world, options);
    g = new Group{store, pg, timeout};
  });
  return g;
}

void gdt_c10d_free(void* group) { delete static_cast<Group*>(group); }

// In place: every rank's tensor becomes the sum over ranks.
int gdt_c10d_all_reduce_sum(void* group, at::Tensor* t, char* err, size_t len) {
  return guarded(err, len, [&] {
    auto* g = static_cast<Group*>(group);
    std::vector<at::Tensor> v{*t};
    g->pg->allreduce(v)->wait(g->timeout);
  });
}

// `out` (world x the shape of `in`, contiguous) receives every rank's `in`, rank order.
int gdt_c10d_all_gather(void* group, at::Tensor* in, at::Tensor* out, char* err, size_t len) {
  return guarded(err, len, [&] {
    auto* g = static_cast<Group*>(group);
    auto world = g->pg->getSize();
    std::vector<std::vector<at::Tensor>> outputs(1);
    for (int r = 0; r < world; ++r) outputs[0].push_back((*out)[r]);
    std::vector<at::Tensor> inputs{*in};
    g->pg->allgather(outputs, inputs)->wait(g->timeout);
  });
}

int gdt_c10d_barrier(void* group, char* err, size_t len) {
  return guarded(err, len, [&] {
    auto* g = static_cast<Group*>(group);
    g->pg->barrier()->wait(g->timeout);
  });
}

}  // extern "C"
