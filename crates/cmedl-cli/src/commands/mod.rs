//! One module per sub-command, each with its `Args` and `run(args, &Global)`.

pub mod bench;
pub mod completions;
pub mod config;
pub mod convert;
pub mod dataset;
pub mod doctor;
pub mod evaluate;
pub mod experiment;
pub mod export;
pub mod info;
pub mod phantom;
pub mod predict;
pub mod report;
pub mod study;
pub mod train;
pub mod translate;
