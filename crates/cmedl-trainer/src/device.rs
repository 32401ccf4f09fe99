//! `--device auto|cpu|cuda|cuda:N`: the device option shared by every command that computes.

use std::fmt;
use std::str::FromStr;

use tch::{Cuda, Device};

/// A device as the user names it, resolved against the machine with [`DeviceSpec::resolve`];
/// in configs it is the same text (`"cuda:1"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum DeviceSpec {
    /// The first CUDA device when one is usable, else the CPU.
    #[default]
    Auto,
    /// The CPU.
    Cpu,
    /// CUDA device `N` (`cuda` alone means `cuda:0`).
    Cuda(usize),
}

/// Why a device name cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DeviceError {
    /// The text is not `auto`, `cpu`, `cuda` or `cuda:N`.
    #[error("unknown device '{0}': expected auto, cpu, cuda or cuda:N")]
    Unknown(String),
    /// CUDA was asked for but this libtorch sees no CUDA device.
    #[error("device {0} was requested but CUDA is not available (no GPU, no driver, or a CPU-only libtorch); use --device cpu or auto")]
    NoCuda(DeviceSpec),
    /// The CUDA index is past the last device.
    #[error("device {spec} was requested but only {count} CUDA device(s) exist (cuda:0..cuda:{last})", last = count.saturating_sub(1))]
    NoSuchGpu {
        /// The device asked for.
        spec: DeviceSpec,
        /// How many CUDA devices exist.
        count: usize,
    },
}

impl FromStr for DeviceSpec {
    type Err = DeviceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "cpu" => Ok(Self::Cpu),
            "cuda" | "gpu" => Ok(Self::Cuda(0)),
            other => other
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(Self::Cuda)
                .ok_or_else(|| DeviceError::Unknown(s.to_owned())),
        }
    }
}

impl TryFrom<String> for DeviceSpec {
    type Error = DeviceError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<DeviceSpec> for String {
    fn from(d: DeviceSpec) -> Self {
        d.to_string()
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Auto => f.write_str("auto"),
            Self::Cpu => f.write_str("cpu"),
            Self::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl DeviceSpec {
    /// The tch device this names on this machine.
    pub fn resolve(self) -> Result<Device, DeviceError> {
        self.resolve_with(Cuda::device_count().max(0) as usize)
    }

    /// The tch device this names on a machine with `cuda_count` CUDA devices.
    pub fn resolve_with(self, cuda_count: usize) -> Result<Device, DeviceError> {
        match self {
            Self::Cpu => Ok(Device::Cpu),
            Self::Auto if cuda_count > 0 => Ok(Device::Cuda(0)),
            Self::Auto => Ok(Device::Cpu),
            Self::Cuda(_) if cuda_count == 0 => Err(DeviceError::NoCuda(self)),
            Self::Cuda(n) if n >= cuda_count => Err(DeviceError::NoSuchGpu {
                spec: self,
                count: cuda_count,
            }),
            Self::Cuda(n) => Ok(Device::Cuda(n)),
        }
    }
}

impl schemars::JsonSchema for DeviceSpec {
    fn schema_name() -> String {
        "DeviceSpec".to_owned()
    }

    fn json_schema(generator: &mut schemars::gen::SchemaGenerator) -> schemars::schema::Schema {
        let mut schema = String::json_schema(generator).into_object();
        schema.metadata().description =
            Some("auto (the first usable GPU, else the CPU), cpu, cuda or cuda:N".to_owned());
        schema.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        assert_eq!("auto".parse(), Ok(DeviceSpec::Auto));
        assert_eq!("CPU".parse(), Ok(DeviceSpec::Cpu));
        assert_eq!("cuda".parse(), Ok(DeviceSpec::Cuda(0)));
        assert_eq!("cuda:3".parse(), Ok(DeviceSpec::Cuda(3)));
        assert_eq!(
            "cuda:x".parse::<DeviceSpec>(),
            Err(DeviceError::Unknown("cuda:x".into()))
        );
        assert_eq!(
            "tpu".parse::<DeviceSpec>(),
            Err(DeviceError::Unknown("tpu".into()))
        );
    }

    #[test]
    fn display_round_trips() {
        for spec in [DeviceSpec::Auto, DeviceSpec::Cpu, DeviceSpec::Cuda(2)] {
            assert_eq!(spec.to_string().parse(), Ok(spec));
        }
    }

    #[test]
    fn resolves_against_the_machine() {
        assert_eq!(DeviceSpec::Auto.resolve_with(0), Ok(Device::Cpu));
        assert_eq!(DeviceSpec::Auto.resolve_with(2), Ok(Device::Cuda(0)));
        assert_eq!(DeviceSpec::Cpu.resolve_with(2), Ok(Device::Cpu));
        assert_eq!(DeviceSpec::Cuda(1).resolve_with(2), Ok(Device::Cuda(1)));
        assert_eq!(
            DeviceSpec::Cuda(0).resolve_with(0),
            Err(DeviceError::NoCuda(DeviceSpec::Cuda(0)))
        );
        let err = DeviceSpec::Cuda(2).resolve_with(2).unwrap_err();
        assert_eq!(
            err.to_string(),
            "device cuda:2 was requested but only 2 CUDA device(s) exist (cuda:0..cuda:1)"
        );
    }
}
