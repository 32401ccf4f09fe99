//! Training configs and `--set` overrides from arbitrary text: the input's first line holds
//! `section.key=value` overrides separated by tabs, the rest is the config's JSON.
#![no_main]

use cmedl_trainer::TrainConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (first, json) = text.split_once('\n').unwrap_or((text, ""));
    let overrides: Vec<String> = first
        .split('\t')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    // Overrides on the defaults, as `cmedl train --set` without a config file.
    if let Ok(config) = TrainConfig::default().with_overrides(&overrides) {
        accepted_configs_round_trip(&config);
    }
    // A config file, then the overrides on top of it.
    if let Ok(config) = TrainConfig::from_json(json, "fuzz.json") {
        accepted_configs_round_trip(&config);
        if let Ok(config) = config.with_overrides(&overrides) {
            accepted_configs_round_trip(&config);
        }
    }
});

/// A config that validates is written and read back unchanged, and still validates.
fn accepted_configs_round_trip(config: &TrainConfig) {
    if config.validate().is_err() {
        return;
    }
    let text = serde_json::to_string(config).expect("a valid config serialises");
    let back = TrainConfig::from_json(&text, "round trip").expect("its own JSON parses");
    assert_eq!(
        serde_json::to_value(&back).unwrap(),
        serde_json::to_value(config).unwrap()
    );
    back.validate().expect("the round trip still validates");
}
