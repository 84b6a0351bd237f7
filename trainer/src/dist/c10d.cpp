// The only C++ in gdt: a C interface over libtorch's own c10d (TCPStore, ProcessGroup with
// its Gloo and NCCL backends, DDP's Reducer) and one autograd function, so that Rust runs
// torch.distributed's collectives without Python. Every function catches C++ exceptions and
// reports them as text; nothing throws across the boundary. Tensors arrive as tch's
// `at::Tensor*` (what torch-sys's C_tensor is); a tensor handed back is a new `at::Tensor*`
// that tch owns and frees.

#include <torch/csrc/autograd/custom_function.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/reducer.hpp>

#ifdef GDT_NCCL
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include "../guarded.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

namespace {

using Backend = c10d::ProcessGroup::BackendType;

struct Group {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroup> pg;
  std::chrono::milliseconds timeout;
};

using gdt::guarded;

// A CPU (Gloo) collective is waited for on the host, up to the group's timeout. A CUDA one is
// only ordered before what the current stream does next: NCCL's wait with a timeout blocks the
// host until the collective is done (ProcessGroupNCCL::WorkNCCL::wait), which would serialise
// every step behind its collectives and starve the copy of the next batch; the NCCL watchdog
// enforces the group's timeout instead (options->timeout).
void wait(Group* g, const c10::intrusive_ptr<c10d::Work>& work, const at::Tensor& t) {
  if (t.is_cuda()) {
    work->wait();
  } else {
    work->wait(g->timeout);
  }
}

void all_reduce_sum(Group* g, at::Tensor& t) {
  std::vector<at::Tensor> v{t};
  wait(g, g->pg->allreduce(v), t);
}

// `in` from every rank, stacked in rank order: [world, ...in's shape].
at::Tensor all_gather(Group* g, const at::Tensor& in) {
  auto world = g->pg->getSize();
  auto input = in.contiguous();
  std::vector<int64_t> shape{world};
  for (auto s : input.sizes()) shape.push_back(s);
  auto out = at::empty(shape, input.options());
  std::vector<std::vector<at::Tensor>> outputs(1);
  for (int r = 0; r < world; ++r) outputs[0].push_back(out[r]);
  std::vector<at::Tensor> inputs{input};
  wait(g, g->pg->allgather(outputs, inputs), input);
  return out;
}

// All-gather with gradients: every rank's loss depends on every rank's rows, so the gradient
// of this rank's rows is the sum over ranks of the gradients of their copies (an all-reduce
// in the backward pass), as torch.distributed.nn.all_gather does.
struct GatherWithGrad : public torch::autograd::Function<GatherWithGrad> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& in,
                            int64_t group) {
    ctx->saved_data["group"] = group;
    return all_gather(reinterpret_cast<Group*>(group), in);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto* g = reinterpret_cast<Group*>(ctx->saved_data["group"].toInt());
    auto grad = grads[0].contiguous().clone();
    all_reduce_sum(g, grad);
    return {grad[g->pg->getRank()], at::Tensor()};
  }
};

}  // namespace

extern "C" {

// Rendezvous at addr:port (rank 0 serves the store) and create the group: Gloo for CPU
// tensors, over `iface_host` (an address of this machine the others can reach); for CUDA
// tensors NCCL when `cuda_backend` is 2, Gloo when it is 1, none when 0. `cuda_device` is the
// GPU this process uses (NCCL binds to it).
void* gdt_c10d_new(const char* addr, int port, int rank, int world, const char* iface_host,
                   long long timeout_ms, int cuda_backend, int cuda_device, char* err,
                   size_t len) {
  Group* g = nullptr;
  guarded(err, len, [&] {
    auto timeout = std::chrono::milliseconds(timeout_ms);
#ifndef GDT_NCCL
    if (cuda_backend == 2) {
      throw std::runtime_error(
          "this gdt was built without NCCL (build it with `make gpu-build`, cargo feature "
          "`nccl`), or use the Gloo backend");
    }
#endif
    c10d::TCPStoreOptions opts;
    opts.port = static_cast<std::uint16_t>(port);
    opts.isServer = rank == 0;
    opts.numWorkers = world;
    opts.waitWorkers = true;
    opts.timeout = timeout;
    c10::intrusive_ptr<c10d::Store> store =
        c10::make_intrusive<c10d::TCPStore>(std::string(addr), opts);
    // One key space per backend, as torch.distributed's own groups do.
    auto scoped = [&](const char* device) {
      return c10::make_intrusive<c10d::PrefixStore>(std::string("gdt/") + device + "/", store);
    };
    auto pg = c10::make_intrusive<c10d::ProcessGroup>(store, rank, world);
    auto options = c10d::ProcessGroupGloo::Options::create(timeout);
    options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(iface_host));
    auto gloo = c10::make_intrusive<c10d::ProcessGroupGloo>(scoped("cpu"), rank, world, options);
    pg->setBackend(c10::DeviceType::CPU, Backend::GLOO, gloo);
    pg->setDefaultBackend(Backend::GLOO);
    if (cuda_backend == 1) {
      pg->setBackend(c10::DeviceType::CUDA, Backend::GLOO, gloo);
    }
#ifdef GDT_NCCL
    if (cuda_backend == 2) {
      c10::cuda::set_device(static_cast<c10::DeviceIndex>(cuda_device));
      auto nccl_options = c10d::ProcessGroupNCCL::Options::create();
      nccl_options->timeout = timeout;
      auto nccl = c10::make_intrusive<c10d::ProcessGroupNCCL>(scoped("cuda"), rank, world,
                                                               nccl_options);
      pg->setBackend(c10::DeviceType::CUDA, Backend::NCCL, nccl);
      pg->setDefaultBackend(Backend::NCCL);
    }
#else
    (void)cuda_device;
#endif
    g = new Group{store, pg, timeout};
  });
  return g;
}

// Whether this build can create NCCL groups.
int gdt_c10d_has_nccl() {
#ifdef GDT_NCCL
  return 1;
#else
  return 0;
#endif
}

void gdt_c10d_free(void* group) { delete static_cast<Group*>(group); }

// In place: every rank's tensor becomes the sum over ranks.
int gdt_c10d_all_reduce_sum(void* group, at::Tensor* t, char* err, size_t len) {
  return guarded(err, len, [&] { all_reduce_sum(static_cast<Group*>(group), *t); });
}

// Every rank's `in` in rank order, as a new tensor in `*out`; with `grad`, differentiable
// (see GatherWithGrad), otherwise outside autograd.
int gdt_c10d_all_gather(void* group, at::Tensor* in, int grad, at::Tensor** out, char* err,
                        size_t len) {
  return guarded(err, len, [&] {
    auto* g = static_cast<Group*>(group);
    at::Tensor result = grad ? GatherWithGrad::apply(*in, reinterpret_cast<int64_t>(g))
                             : all_gather(g, in->detach());
    *out = new at::Tensor(std::move(result));
  });
}

int gdt_c10d_barrier(void* group, char* err, size_t len) {
  return guarded(err, len, [&] {
    auto* g = static_cast<Group*>(group);
    g->pg->barrier()->wait(g->timeout);
  });
}

// DDP's gradient reducer over `params` (names for its error messages): it hooks every
// parameter's gradient accumulator, and during the backward pass all-reduces (and averages)
// each bucket of about `bucket_bytes` as soon as its gradients are ready, so communication
// overlaps the rest of the backward pass; the engine's final callback waits for the last
// buckets. Gradients are views into the buckets (`gradient_as_bucket_view`), laid out with
// their parameters' strides, so nothing is copied into buckets and back, and channels-last
// weights' gradients match their bucket views (DDP otherwise warns that the strides differ). Buckets follow the
// reverse of `params` at first (gradients arrive from the last layer), then the order the
// first step's gradients arrived in (`gdt_c10d_reducer_rebuild`).
void* gdt_c10d_reducer_new(void* group, at::Tensor** params, const char** names, size_t n,
                           long long bucket_bytes, char* err, size_t len) {
  c10d::Reducer* reducer = nullptr;
  guarded(err, len, [&] {
    auto* g = static_cast<Group*>(group);
    std::vector<at::Tensor> ps;
    std::unordered_map<size_t, std::string> param_names;
    for (size_t i = 0; i < n; ++i) {
      ps.push_back(*params[i]);
      param_names[i] = names[i];
    }
    // DDP's first bucket is small (1 MiB) so the last layers' gradients leave early.
    const size_t first_bucket = 1024 * 1024;
    auto [buckets, limits] = c10d::compute_bucket_assignment_by_size(
        ps, {first_bucket, static_cast<size_t>(bucket_bytes)}, std::vector<bool>(n, false));
    (void)limits;
    std::reverse(buckets.begin(), buckets.end());
    reducer = new c10d::Reducer(ps, buckets, g->pg, std::vector<bool>(n, false), bucket_bytes,
                                /*find_unused_parameters=*/false,
                                /*gradient_as_bucket_view=*/true, param_names,
                                static_cast<int64_t>(first_bucket),
                                /*skip_all_reduce_unused_params=*/false,
                                /*use_python_reducer=*/false, {});
  });
  return reducer;
}

// Before a step's forward pass: after the first step, re-buckets once in the order the
// gradients arrived (rank 0's order, broadcast, so every rank agrees).
int gdt_c10d_reducer_rebuild(void* reducer, char* err, size_t len) {
  return guarded(err, len, [&] { static_cast<c10d::Reducer*>(reducer)->rebuild_buckets(); });
}

// Before a step's backward pass: arms the hooks for it.
int gdt_c10d_reducer_prepare(void* reducer, char* err, size_t len) {
  return guarded(err, len, [&] {
    static_cast<c10d::Reducer*>(reducer)->prepare_for_backward({});
  });
}

void gdt_c10d_reducer_free(void* reducer) {
  try {
    delete static_cast<c10d::Reducer*>(reducer);
  } catch (...) {
    // The reducer's destructor may throw (noexcept(false)); nothing to do at teardown.
  }
}

}  // extern "C"
