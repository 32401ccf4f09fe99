//! The C interface of `shim.cpp`. Every call returns 0 or, on a C++ exception (caught in the
//! shim), 1 with the message in `cmedl_dist_last_error`.
#![allow(unsafe_code)]

use std::ffi::{c_char, c_int, c_void, CStr, CString};

use tch::Tensor;

extern "C" {
    fn cmedl_dist_last_error() -> *const c_char;
    fn cmedl_dist_init_gloo(
        master_addr: *const c_char,
        master_port: u16,
        rank: c_int,
        world: c_int,
        is_server: c_int,
        timeout_ms: i64,
        out: *mut *mut c_void,
    ) -> c_int;
    fn cmedl_dist_has_nccl() -> c_int;
    fn cmedl_dist_init_nccl(
        master_addr: *const c_char,
        master_port: u16,
        rank: c_int,
        world: c_int,
        is_server: c_int,
        timeout_ms: i64,
        device: c_int,
        out: *mut *mut c_void,
    ) -> c_int;
    fn cmedl_dist_free(group: *mut c_void);
    fn cmedl_dist_allreduce_sum(group: *mut c_void, tensors: *const *mut c_void, n: usize)
        -> c_int;
    fn cmedl_dist_broadcast(
        group: *mut c_void,
        tensors: *const *mut c_void,
        n: usize,
        root: c_int,
    ) -> c_int;
    fn cmedl_dist_barrier(group: *mut c_void) -> c_int;
    fn cmedl_autocast_enter(
        device: c_int,
        dtype: c_int,
        prev_enabled: *mut c_int,
        prev_dtype: *mut c_int,
    ) -> c_int;
    fn cmedl_autocast_exit(device: c_int, prev_enabled: c_int, prev_dtype: c_int) -> c_int;
}

/// The message of the last failed call on this thread.
fn last_error() -> String {
    // SAFETY: the shim returns a pointer to its thread-local string, valid until the next call
    // on this thread; it is copied at once.
    unsafe { CStr::from_ptr(cmedl_dist_last_error()) }
        .to_string_lossy()
        .into_owned()
}

fn check(code: c_int) -> Result<(), String> {
    if code == 0 {
        Ok(())
    } else {
        Err(last_error())
    }
}

/// An owned Gloo process group of the shim.
pub(crate) struct RawGroup(*mut c_void);

// SAFETY: the C++ group is used from one thread at a time (`&mut`-free calls are serialised by
// the owner), and c10d process groups may be used from any thread.
unsafe impl Send for RawGroup {}
unsafe impl Sync for RawGroup {}

impl RawGroup {
    /// Meets the other processes at `addr:port` and builds the group: Gloo, or NCCL on CUDA
    /// device `nccl_device`.
    pub(crate) fn new(
        addr: &str,
        port: u16,
        rank: usize,
        world: usize,
        is_server: bool,
        timeout_ms: i64,
        nccl_device: Option<usize>,
    ) -> Result<Self, String> {
        let addr = CString::new(addr).map_err(|_| "MASTER_ADDR holds a NUL byte".to_owned())?;
        let rank = c_int::try_from(rank).map_err(|_| "rank too large".to_owned())?;
        let world = c_int::try_from(world).map_err(|_| "world size too large".to_owned())?;
        let mut out = std::ptr::null_mut();
        let server = c_int::from(is_server);
        // SAFETY: `addr` outlives the call; `out` receives a heap pointer owned by RawGroup.
        check(unsafe {
            match nccl_device {
                None => cmedl_dist_init_gloo(
                    addr.as_ptr(),
                    port,
                    rank,
                    world,
                    server,
                    timeout_ms,
                    &mut out,
                ),
                Some(device) => cmedl_dist_init_nccl(
                    addr.as_ptr(),
                    port,
                    rank,
                    world,
                    server,
                    timeout_ms,
                    c_int::try_from(device).unwrap_or(c_int::MAX),
                    &mut out,
                ),
            }
        })?;
        Ok(Self(out))
    }

    fn handles(tensors: &[&Tensor]) -> Vec<*mut c_void> {
        tensors.iter().map(|t| t.as_ptr() as *mut c_void).collect()
    }

    /// In-place sum over all processes.
    pub(crate) fn allreduce_sum(&self, tensors: &[&Tensor]) -> Result<(), String> {
        let h = Self::handles(tensors);
        // SAFETY: the handles are live at::Tensor pointers borrowed for the call.
        check(unsafe { cmedl_dist_allreduce_sum(self.0, h.as_ptr(), h.len()) })
    }

    /// In-place copy of `root`'s tensors to every process.
    pub(crate) fn broadcast(&self, tensors: &[&Tensor], root: usize) -> Result<(), String> {
        let h = Self::handles(tensors);
        let root = c_int::try_from(root).map_err(|_| "root rank too large".to_owned())?;
        // SAFETY: as for allreduce_sum.
        check(unsafe { cmedl_dist_broadcast(self.0, h.as_ptr(), h.len(), root) })
    }

    /// Waits for every process.
    pub(crate) fn barrier(&self) -> Result<(), String> {
        // SAFETY: the group pointer is live until drop.
        check(unsafe { cmedl_dist_barrier(self.0) })
    }
}

impl Drop for RawGroup {
    fn drop(&mut self) {
        // SAFETY: the pointer came from cmedl_dist_init_gloo and is freed once.
        unsafe { cmedl_dist_free(self.0) }
    }
}

/// Whether the shim was built with NCCL.
pub(crate) fn has_nccl() -> bool {
    // SAFETY: no arguments, a constant answer.
    unsafe { cmedl_dist_has_nccl() != 0 }
}

/// Enters an autocast region on `device` (0 CPU, 1 CUDA) with `dtype` (0 bf16, 1 fp16);
/// returns the (enabled, dtype) it replaced.
pub(crate) fn autocast_enter(device: i32, dtype: i32) -> Result<(bool, i32), String> {
    let (mut prev_enabled, mut prev_dtype) = (0, 0);
    // SAFETY: plain integers in and out.
    check(unsafe { cmedl_autocast_enter(device, dtype, &mut prev_enabled, &mut prev_dtype) })?;
    Ok((prev_enabled != 0, prev_dtype))
}

/// Leaves the region entered last, restoring what it replaced.
pub(crate) fn autocast_exit(device: i32, enabled: bool, dtype: i32) -> Result<(), String> {
    // SAFETY: plain integers in.
    check(unsafe { cmedl_autocast_exit(device, c_int::from(enabled), dtype) })
}
