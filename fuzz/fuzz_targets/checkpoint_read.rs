//! Checkpoint reading (safetensors container, JSON record, stored config) on arbitrary bytes.
#![no_main]

use cmedl_trainer::checkpoint::{self, CHECKPOINT_FORMAT};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The reader takes a path, as every command does: one file per process.
    let path = std::env::temp_dir().join(format!("cmedl-fuzz-{}.ckpt", std::process::id()));
    std::fs::write(&path, data).expect("the temporary file can be written");
    if let Ok((tensors, meta)) = checkpoint::read(&path) {
        // What is accepted is a cmedl record with a config that passes validation.
        assert_eq!(meta.format, CHECKPOINT_FORMAT);
        meta.config.validate().expect("read() validates the stored config");
        assert!(tensors.contains_key("__meta_json__"));
    }
});
