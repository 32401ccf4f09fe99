//! Parameter counts and output shapes, for `cmedl train --dry-run`.

use std::fmt;

use tch::{nn, Device, Kind, Tensor};

use crate::{ModelError, SegNet};

/// Trainable parameters held by a variable store.
pub fn parameter_count(vs: &nn::VarStore) -> i64 {
    vs.trainable_variables()
        .iter()
        .map(Tensor::numel)
        .map(|n| n as i64)
        .sum()
}

/// A network's size and the shapes it produces for one input size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Description {
    /// Network name.
    pub name: String,
    /// Trainable parameters.
    pub parameters: i64,
    /// Input shape used.
    pub input: Vec<i64>,
    /// `(output name, shape)`: logits first, then the features.
    pub outputs: Vec<(String, Vec<i64>)>,
}

impl fmt::Display for Description {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}: {} parameters, input {:?}",
            self.name, self.parameters, self.input
        )?;
        for (name, shape) in &self.outputs {
            writeln!(f, "  {name:<12} {shape:?}")?;
        }
        Ok(())
    }
}

/// Runs `net` (whose variables are in `vs`) once on zeros of `input` shape, without gradients.
pub fn describe(
    name: &str,
    vs: &nn::VarStore,
    net: &dyn SegNet,
    input: [i64; 4],
) -> Result<Description, ModelError> {
    let device: Device = vs.device();
    let out = tch::no_grad(|| net.forward_t(&Tensor::zeros(input, (Kind::Float, device)), false))?;
    let mut outputs = vec![("logits".to_owned(), out.logits.size())];
    outputs.extend(out.features.iter().map(|(k, v)| (k.clone(), v.size())));
    Ok(Description {
        name: name.to_owned(),
        parameters: parameter_count(vs),
        input: input.to_vec(),
        outputs,
    })
}
