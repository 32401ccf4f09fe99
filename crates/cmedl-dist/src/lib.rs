//! Data-parallel collectives for cmedl over libtorch's own c10d engine: processes started by
//! `torchrun` or Slurm's `srun` meet through a TCPStore and form a Gloo process group
//! (allreduce, broadcast, barrier on CPU tensors), exactly as PyTorch's `init_process_group`
//! does, from Rust. tch does not expose c10d; a small C++ shim compiled against the same
//! libtorch does (see `build.rs`). The same shim sets the autocast dtype, which tch cannot
//! ([`with_autocast`]: bf16 mixed precision).
//!
//! ```no_run
//! use std::time::Duration;
//! use cmedl_dist::{LaunchEnv, ProcessGroup};
//!
//! // `None` when the process was not launched data-parallel (one process, as before).
//! if let Some(env) = LaunchEnv::from_env()? {
//!     let group = ProcessGroup::init(&env, Duration::from_secs(300))?;
//!     let g = tch::Tensor::ones([4], (tch::Kind::Float, tch::Device::Cpu));
//!     group.allreduce_sum(&[&g])?; // every element is now the world size
//! }
//! # Ok::<(), cmedl_dist::DistError>(())
//! ```

pub mod autocast;
mod ffi;

pub use autocast::with_autocast;

use std::time::Duration;

use tch::Tensor;

/// Errors of the launch environment and of collectives.
#[derive(Debug, thiserror::Error)]
pub enum DistError {
    /// The launcher's environment variables are missing or invalid.
    #[error("distributed launch: {0}")]
    Env(String),
    /// Meeting the other processes failed (a rendezvous timeout among others).
    #[error("cannot reach the other processes at {addr}:{port}: {message}")]
    Rendezvous {
        /// MASTER_ADDR.
        addr: String,
        /// MASTER_PORT.
        port: u16,
        /// c10d's message.
        message: String,
    },
    /// A collective failed.
    #[error("{op} failed: {message}")]
    Collective {
        /// The collective.
        op: &'static str,
        /// c10d's message.
        message: String,
    },
}

/// Where this process stands in a data-parallel launch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LaunchEnv {
    /// Global rank.
    pub rank: usize,
    /// Rank on this node (the GPU it should use).
    pub local_rank: usize,
    /// Number of processes.
    pub world_size: usize,
    /// Address of the rendezvous store.
    pub master_addr: String,
    /// Port of the rendezvous store.
    pub master_port: u16,
    /// Whether the launcher hosts the store (torchrun's agent): then no rank serves it.
    pub agent_store: bool,
}

impl LaunchEnv {
    /// The launch described by this process's environment: torchrun's `RANK`, `LOCAL_RANK`,
    /// `WORLD_SIZE`, `MASTER_ADDR`, `MASTER_PORT`, `TORCHELASTIC_USE_AGENT_STORE`, else Slurm's
    /// `SLURM_PROCID`, `SLURM_LOCALID`, `SLURM_NTASKS` inside an `srun` step (with
    /// `MASTER_ADDR`, and `MASTER_PORT` defaulting to 29500). `None` for a single process.
    pub fn from_env() -> Result<Option<Self>, DistError> {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    /// As [`LaunchEnv::from_env`], reading variables through `var`.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, DistError> {
        let number = |key: &str| -> Result<Option<usize>, DistError> {
            var(key)
                .map(|v| {
                    v.trim()
                        .parse::<usize>()
                        .map_err(|_| DistError::Env(format!("{key}={v:?} is not a number")))
                })
                .transpose()
        };
        let (rank, local, world) = match number("WORLD_SIZE")? {
            Some(world) => (
                number("RANK")?.unwrap_or(0),
                number("LOCAL_RANK")?.unwrap_or(0),
                world,
            ),
            // Slurm only inside an `srun` step: a batch script also has SLURM_NTASKS.
            None if var("SLURM_STEP_ID").is_some() => match number("SLURM_NTASKS")? {
                Some(world) => (
                    number("SLURM_PROCID")?.unwrap_or(0),
                    number("SLURM_LOCALID")?.unwrap_or(0),
                    world,
                ),
                None => return Ok(None),
            },
            None => return Ok(None),
        };
        if world <= 1 {
            return Ok(None);
        }
        if rank >= world {
            return Err(DistError::Env(format!(
                "rank {rank} is not below the world size {world}"
            )));
        }
        let master_addr = var("MASTER_ADDR").ok_or_else(|| {
            DistError::Env("MASTER_ADDR is not set (the address of rank 0's host)".into())
        })?;
        let master_port = match var("MASTER_PORT") {
            Some(p) => p
                .trim()
                .parse::<u16>()
                .map_err(|_| DistError::Env(format!("MASTER_PORT={p:?} is not a port")))?,
            None => 29500,
        };
        let agent_store = var("TORCHELASTIC_USE_AGENT_STORE")
            .is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1");
        Ok(Some(Self {
            rank,
            local_rank: local,
            world_size: world,
            master_addr,
            master_port,
            agent_store,
        }))
    }
}

/// The c10d backend of a process group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Gloo: CPU tensors, any machine.
    Gloo,
    /// NCCL: CUDA tensors on the process's `LOCAL_RANK` GPU (builds with the `nccl` feature).
    Nccl,
}

impl Backend {
    /// c10d's name of the backend.
    pub fn name(self) -> &'static str {
        match self {
            Self::Gloo => "gloo",
            Self::Nccl => "nccl",
        }
    }

    /// Whether this build of cmedl has the backend.
    pub fn is_available(self) -> bool {
        match self {
            Self::Gloo => true,
            Self::Nccl => ffi::has_nccl(),
        }
    }
}

/// A process group: every process of the launch, collectives on CPU tensors (Gloo) or on the
/// process's GPU (NCCL).
pub struct ProcessGroup {
    raw: ffi::RawGroup,
    backend: Backend,
    rank: usize,
    local_rank: usize,
    world: usize,
}

impl std::fmt::Debug for ProcessGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessGroup")
            .field("backend", &self.backend())
            .field("rank", &self.rank)
            .field("world", &self.world)
            .finish()
    }
}

impl ProcessGroup {
    /// Meets the other processes (waiting at most `timeout` for them) and forms a Gloo group.
    pub fn init(env: &LaunchEnv, timeout: Duration) -> Result<Self, DistError> {
        Self::init_with(env, Backend::Gloo, timeout)
    }

    /// Meets the other processes and forms a group of `backend` (NCCL: on GPU `LOCAL_RANK`).
    pub fn init_with(
        env: &LaunchEnv,
        backend: Backend,
        timeout: Duration,
    ) -> Result<Self, DistError> {
        let is_server = env.rank == 0 && !env.agent_store;
        let timeout_ms = i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX);
        tracing::debug!(?env, ?backend, "joining the process group");
        let nccl_device = (backend == Backend::Nccl).then_some(env.local_rank);
        let raw = ffi::RawGroup::new(
            &env.master_addr,
            env.master_port,
            env.rank,
            env.world_size,
            is_server,
            timeout_ms,
            nccl_device,
        )
        .map_err(|message| DistError::Rendezvous {
            addr: env.master_addr.clone(),
            port: env.master_port,
            message,
        })?;
        Ok(Self {
            raw,
            backend,
            rank: env.rank,
            local_rank: env.local_rank,
            world: env.world_size,
        })
    }

    /// This process's rank.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// This process's rank on its node (the GPU it should use).
    pub fn local_rank(&self) -> usize {
        self.local_rank
    }

    /// Number of processes.
    pub fn world_size(&self) -> usize {
        self.world
    }

    /// The c10d backend's name.
    pub fn backend(&self) -> &'static str {
        self.backend.name()
    }

    /// The device collectives take their tensors on: the CPU (Gloo) or `cuda:LOCAL_RANK`.
    pub fn device(&self) -> tch::Device {
        match self.backend {
            Backend::Gloo => tch::Device::Cpu,
            Backend::Nccl => tch::Device::Cuda(self.local_rank),
        }
    }

    /// Sums each tensor over all processes, in place (contiguous tensors on [`Self::device`]).
    pub fn allreduce_sum(&self, tensors: &[&Tensor]) -> Result<(), DistError> {
        self.raw
            .allreduce_sum(tensors)
            .map_err(|message| DistError::Collective {
                op: "allreduce",
                message,
            })
    }

    /// Copies each tensor of process `root` into the others', in place.
    pub fn broadcast(&self, tensors: &[&Tensor], root: usize) -> Result<(), DistError> {
        self.raw
            .broadcast(tensors, root)
            .map_err(|message| DistError::Collective {
                op: "broadcast",
                message,
            })
    }

    /// Waits until every process reaches this point.
    pub fn barrier(&self) -> Result<(), DistError> {
        self.raw.barrier().map_err(|message| DistError::Collective {
            op: "barrier",
            message,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use tch::{Device, Kind};

    fn env_of(pairs: &[(&str, &str)]) -> Result<Option<LaunchEnv>, DistError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        LaunchEnv::from_vars(|k| map.get(k).cloned())
    }

    #[test]
    fn launch_environments_of_torchrun_and_slurm() {
        assert_eq!(env_of(&[]).unwrap(), None, "a plain process");
        assert_eq!(env_of(&[("WORLD_SIZE", "1")]).unwrap(), None);
        let torchrun = env_of(&[
            ("RANK", "3"),
            ("LOCAL_RANK", "1"),
            ("WORLD_SIZE", "4"),
            ("MASTER_ADDR", "node0"),
            ("MASTER_PORT", "29400"),
            ("TORCHELASTIC_USE_AGENT_STORE", "True"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(
            torchrun,
            LaunchEnv {
                rank: 3,
                local_rank: 1,
                world_size: 4,
                master_addr: "node0".into(),
                master_port: 29400,
                agent_store: true,
            }
        );
        let slurm = [
            ("SLURM_PROCID", "2"),
            ("SLURM_LOCALID", "0"),
            ("SLURM_NTASKS", "8"),
            ("MASTER_ADDR", "gpu01"),
        ];
        // In a batch script (no srun step) Slurm's variables do not make a launch.
        assert_eq!(env_of(&slurm).unwrap(), None);
        let mut in_step = slurm.to_vec();
        in_step.push(("SLURM_STEP_ID", "0"));
        let s = env_of(&in_step).unwrap().unwrap();
        assert_eq!(
            (s.rank, s.world_size, s.master_port, s.agent_store),
            (2, 8, 29500, false)
        );
        for (bad, needle) in [
            (vec![("WORLD_SIZE", "two")], "not a number"),
            (vec![("WORLD_SIZE", "2"), ("RANK", "2")], "not below"),
            (vec![("WORLD_SIZE", "2")], "MASTER_ADDR"),
            (
                vec![
                    ("WORLD_SIZE", "2"),
                    ("MASTER_ADDR", "a"),
                    ("MASTER_PORT", "99999"),
                ],
                "not a port",
            ),
        ] {
            let err = env_of(&bad).unwrap_err().to_string();
            assert!(err.contains(needle), "{err}");
        }
    }

    /// Runs in a child process (see below): rank and world come from the environment.
    #[test]
    #[ignore = "a worker of two_gloo_processes_sum_broadcast_and_meet"]
    fn gloo_worker() {
        let env = LaunchEnv::from_env()
            .unwrap()
            .expect("launched as a worker");
        let group = ProcessGroup::init(&env, Duration::from_secs(30)).unwrap();
        let r = env.rank as f64;
        let t = Tensor::from_slice(&[r + 1.0, 10.0 * (r + 1.0)]).to_kind(Kind::Float);
        group.allreduce_sum(&[&t]).unwrap();
        assert_eq!(Vec::<f32>::try_from(&t).unwrap(), vec![3.0, 30.0]);
        let b = Tensor::full([3], r, (Kind::Float, Device::Cpu));
        group.broadcast(&[&b], 1).unwrap();
        assert_eq!(Vec::<f32>::try_from(&b).unwrap(), vec![1.0; 3]);
        group.barrier().unwrap();
        // A bad root is an error, not an exception across the boundary.
        let err = group.broadcast(&[&b], 7).unwrap_err().to_string();
        assert!(err.contains("broadcast failed"), "{err}");
    }

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    /// Rank 0 of a two-process launch on this machine whose peer never comes.
    fn first_of_two() -> LaunchEnv {
        LaunchEnv {
            rank: 0,
            local_rank: 0,
            world_size: 2,
            master_addr: "127.0.0.1".into(),
            master_port: free_port(),
            agent_store: false,
        }
    }

    #[test]
    fn two_gloo_processes_sum_broadcast_and_meet() {
        let port = free_port().to_string();
        let exe = std::env::current_exe().unwrap();
        let children: Vec<_> = (0..2)
            .map(|rank| {
                std::process::Command::new(&exe)
                    .args(["--ignored", "--exact", "tests::gloo_worker", "--nocapture"])
                    .env("RANK", rank.to_string())
                    .env("LOCAL_RANK", rank.to_string())
                    .env("WORLD_SIZE", "2")
                    .env("MASTER_ADDR", "127.0.0.1")
                    .env("MASTER_PORT", &port)
                    .env("OMP_NUM_THREADS", "1")
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect::<Vec<_>>();
        let outputs: Vec<_> = children
            .into_iter()
            .map(|c| c.wait_with_output().unwrap())
            .collect();
        for (rank, out) in outputs.iter().enumerate() {
            assert!(
                out.status.success() && String::from_utf8_lossy(&out.stdout).contains("1 passed"),
                "rank {rank}: {}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    #[test]
    fn nccl_without_a_gpu_or_without_the_feature_is_an_error_not_a_crash() {
        let env = first_of_two();
        if tch::Cuda::device_count() > 0 && Backend::Nccl.is_available() {
            return; // a GPU machine: the two-process test covers it
        }
        let err = ProcessGroup::init_with(&env, Backend::Nccl, Duration::from_secs(2))
            .unwrap_err()
            .to_string();
        let expected = if Backend::Nccl.is_available() {
            "GPU" // "... no GPUs found" or a CUDA error naming the device
        } else {
            "without NCCL"
        };
        assert!(
            err.contains(expected) || err.to_lowercase().contains("cuda"),
            "{err}"
        );
    }

    #[test]
    fn a_missing_peer_is_a_timeout_error_not_a_crash() {
        let env = first_of_two();
        let err = ProcessGroup::init(&env, Duration::from_secs(1)).unwrap_err();
        assert!(matches!(err, DistError::Rendezvous { .. }), "{err}");
        assert!(err.to_string().to_lowercase().contains("time"), "{err}");
    }
}
