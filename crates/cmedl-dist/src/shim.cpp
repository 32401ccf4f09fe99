// A small C interface over libtorch's c10d (TCPStore + ProcessGroupGloo) for cmedl-dist.
// Every entry point catches every exception: nothing may unwind into Rust. Errors are kept
// per thread and read with cmedl_dist_last_error().

#include <chrono>
#include <cstdint>
#include <exception>
#include <stdexcept>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef CMEDL_NCCL
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

namespace {

thread_local std::string last_error;

struct Group {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::Backend> backend;
};

// The rendezvous store every backend of cmedl meets in.
c10::intrusive_ptr<c10d::PrefixStore> rendezvous(const char* master_addr, uint16_t master_port,
                                                 int world, int is_server,
                                                 std::chrono::milliseconds timeout,
                                                 c10::intrusive_ptr<c10d::Store>* raw) {
  c10d::TCPStoreOptions options;
  options.port = master_port;
  options.isServer = is_server != 0;
  options.numWorkers = static_cast<size_t>(world);
  options.waitWorkers = false;
  options.multiTenant = true;
  options.timeout = timeout;
  auto store = c10::make_intrusive<c10d::TCPStore>(std::string(master_addr), options);
  *raw = store;
  return c10::make_intrusive<c10d::PrefixStore>("cmedl/0/", store);
}

template <typename F>
int guarded(F&& f) {
  try {
    f();
    return 0;
  } catch (const c10::Error& e) {
    last_error = e.what_without_backtrace();
  } catch (const std::exception& e) {
    last_error = e.what();
  } catch (...) {
    last_error = "unknown C++ exception";
  }
  return 1;
}

std::vector<at::Tensor> tensors_of(void* const* tensors, size_t n) {
  std::vector<at::Tensor> v;
  v.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    // tch's tensor handle is an at::Tensor*: a shallow copy shares its storage, so the
    // collectives below work in place.
    v.push_back(*static_cast<at::Tensor*>(tensors[i]));
  }
  return v;
}

}  // namespace

extern "C" {

const char* cmedl_dist_last_error() { return last_error.c_str(); }

int cmedl_dist_init_gloo(const char* master_addr, uint16_t master_port, int rank, int world,
                         int is_server, int64_t timeout_ms, void** out) {
  return guarded([&] {
    auto timeout = std::chrono::milliseconds(timeout_ms);
    c10::intrusive_ptr<c10d::Store> store;
    auto prefixed = rendezvous(master_addr, master_port, world, is_server, timeout, &store);
    auto gloo_options = c10d::ProcessGroupGloo::Options::create(timeout);
    gloo_options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    auto gloo = c10::make_intrusive<c10d::ProcessGroupGloo>(
        c10::make_intrusive<c10d::PrefixStore>("cpu/", prefixed), rank, world, gloo_options);
    *out = new Group{store, gloo};
  });
}

// 1 when the shim was built with NCCL.
int cmedl_dist_has_nccl() {
#ifdef CMEDL_NCCL
  return 1;
#else
  return 0;
#endif
}

// An NCCL group on CUDA device `device` (set as the current device first).
int cmedl_dist_init_nccl(const char* master_addr, uint16_t master_port, int rank, int world,
                         int is_server, int64_t timeout_ms, int device, void** out) {
  return guarded([&] {
#ifdef CMEDL_NCCL
    auto timeout = std::chrono::milliseconds(timeout_ms);
    c10::cuda::set_device(static_cast<c10::DeviceIndex>(device));
    c10::intrusive_ptr<c10d::Store> store;
    auto prefixed = rendezvous(master_addr, master_port, world, is_server, timeout, &store);
    auto options = c10d::ProcessGroupNCCL::Options::create();
    options->timeout = timeout;
    auto nccl = c10::make_intrusive<c10d::ProcessGroupNCCL>(
        c10::make_intrusive<c10d::PrefixStore>("cuda/", prefixed), rank, world, options);
    *out = new Group{store, nccl};
#else
    (void)master_addr; (void)master_port; (void)rank; (void)world; (void)is_server;
    (void)timeout_ms; (void)device; (void)out;
    throw std::runtime_error(
        "this cmedl was built without NCCL (build cmedl-dist with the `nccl` feature)");
#endif
  });
}

void cmedl_dist_free(void* group) { delete static_cast<Group*>(group); }

int cmedl_dist_allreduce_sum(void* group, void* const* tensors, size_t n) {
  return guarded([&] {
    auto v = tensors_of(tensors, n);
    c10d::AllreduceOptions options;
    options.reduceOp = c10d::ReduceOp::SUM;
    static_cast<Group*>(group)->backend->allreduce(v, options)->wait();
  });
}

int cmedl_dist_broadcast(void* group, void* const* tensors, size_t n, int root) {
  return guarded([&] {
    auto v = tensors_of(tensors, n);
    c10d::BroadcastOptions options;
    options.rootRank = root;
    static_cast<Group*>(group)->backend->broadcast(v, options)->wait();
  });
}

int cmedl_dist_barrier(void* group) {
  return guarded([&] { static_cast<Group*>(group)->backend->barrier()->wait(); });
}

// Enters an autocast region on `device` (0: CPU, 1: CUDA) with `dtype` (0: bfloat16,
// 1: float16); the state it replaces goes to prev_* for cmedl_autocast_exit.
int cmedl_autocast_enter(int device, int dtype, int* prev_enabled, int* prev_dtype) {
  return guarded([&] {
    const auto type = device == 1 ? at::DeviceType::CUDA : at::DeviceType::CPU;
    *prev_enabled = at::autocast::is_autocast_enabled(type) ? 1 : 0;
    *prev_dtype = at::autocast::get_autocast_dtype(type) == at::kHalf ? 1 : 0;
    at::autocast::set_autocast_dtype(type, dtype == 1 ? at::kHalf : at::kBFloat16);
    at::autocast::set_autocast_enabled(type, true);
    at::autocast::increment_nesting();
  });
}

// Leaves the region entered last, restoring the state cmedl_autocast_enter replaced.
int cmedl_autocast_exit(int device, int prev_enabled, int prev_dtype) {
  return guarded([&] {
    const auto type = device == 1 ? at::DeviceType::CUDA : at::DeviceType::CPU;
    at::autocast::set_autocast_dtype(type, prev_dtype == 1 ? at::kHalf : at::kBFloat16);
    at::autocast::set_autocast_enabled(type, prev_enabled != 0);
    if (at::autocast::decrement_nesting() == 0) {
      // Leaving the outermost region: cached low-precision weight copies are stale.
      at::autocast::clear_cache();
    }
  });
}

}  // extern "C"
