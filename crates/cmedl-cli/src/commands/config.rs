//! `cmedl config`: the default training config with each field's documentation, or its JSON
//! Schema.

use clap::ValueEnum;
use cmedl_trainer::TrainConfig;
use serde_json::Value;

use crate::failure::{CmdResult, Failure};
use crate::Global;

/// Options of `cmedl config`.
#[derive(clap::Args)]
pub struct Args {
    /// Print the config of `--preset` with every field's documentation as `//` comments
    /// (JSON with comments: delete the comments to use it as a config file).
    #[arg(long, conflicts_with = "schema", required_unless_present = "schema")]
    defaults: bool,
    /// Print the JSON Schema of training configs (for editors and validators).
    #[arg(long)]
    schema: bool,
    /// Which configuration `--defaults` prints.
    #[arg(long, value_enum, default_value = "default")]
    preset: Preset,
}

/// The configurations `--defaults` prints.
#[derive(Clone, Copy, ValueEnum)]
enum Preset {
    /// The built-in defaults (`TrainConfig::default()`).
    Default,
    /// The paper's setting (configs/paper-256.json).
    Paper,
    /// The small CPU setting (configs/cpu-small.json).
    CpuSmall,
}

/// Runs `cmedl config`.
pub fn run(args: Args, _global: &Global) -> CmdResult {
    let schema = serde_json::to_value(schemars::schema_for!(TrainConfig))
        .map_err(|e| Failure::Internal(e.to_string()))?;
    if args.schema {
        let text =
            serde_json::to_string_pretty(&schema).map_err(|e| Failure::Internal(e.to_string()))?;
        outln!("{text}");
        return Ok(());
    }
    let config = match args.preset {
        Preset::Default => TrainConfig::default(),
        Preset::Paper => TrainConfig::paper(),
        Preset::CpuSmall => TrainConfig::cpu_small(),
    };
    let value = serde_json::to_value(&config).map_err(|e| Failure::Internal(e.to_string()))?;
    let mut lines = Vec::new();
    annotate(&value, Some(&schema), &schema, 0, &mut lines);
    for line in lines {
        outln!("{line}");
    }
    Ok(())
}

/// The schema `schema` stands for: `$ref`s (also inside a one-element `allOf`, which schemars
/// writes for documented references) resolved against the root's definitions.
fn resolve<'a>(schema: &'a Value, root: &'a Value) -> &'a Value {
    let target = schema
        .get("$ref")
        .or_else(|| schema.get("allOf")?.get(0)?.get("$ref"))
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix("#/definitions/"))
        .and_then(|name| root.get("definitions")?.get(name));
    target.unwrap_or(schema)
}

/// The schema of property `key` of `schema`: its own `properties`, else those of its
/// alternatives (tagged enums are `oneOf`s of objects).
fn property<'a>(schema: &'a Value, key: &str, root: &'a Value) -> Option<&'a Value> {
    let schema = resolve(schema, root);
    if let Some(p) = schema.get("properties").and_then(|p| p.get(key)) {
        return Some(p);
    }
    ["oneOf", "anyOf", "allOf"]
        .iter()
        .filter_map(|k| schema.get(*k).and_then(Value::as_array))
        .flatten()
        .find_map(|alternative| property(alternative, key, root))
}

/// The documentation of a tag field (`"kind": "mse"` of a tagged enum): the chosen
/// alternative's description and the tag's possible values.
fn tag_doc(schema: &Value, key: &str, value: &Value, root: &Value) -> Option<String> {
    let schema = resolve(schema, root);
    let alternatives = schema.get("oneOf").and_then(Value::as_array)?;
    let tag_of = |alt: &Value| -> Option<String> {
        let alt = resolve(alt, root);
        let values = alt.get("properties")?.get(key)?.get("enum")?.as_array()?;
        values.first()?.as_str().map(str::to_owned)
    };
    let tags: Vec<String> = alternatives.iter().filter_map(tag_of).collect();
    if tags.is_empty() {
        return None;
    }
    let chosen = alternatives
        .iter()
        .find(|alt| tag_of(alt).as_deref() == value.as_str())
        .and_then(|alt| resolve(alt, root).get("description"))
        .and_then(Value::as_str)
        .unwrap_or("");
    Some(
        format!("{chosen} (one of: {})", tags.join(", "))
            .trim()
            .to_owned(),
    )
}

/// Appends `value` as indented JSON lines, each object field preceded by its documentation.
fn annotate(
    value: &Value,
    schema: Option<&Value>,
    root: &Value,
    indent: usize,
    lines: &mut Vec<String>,
) {
    let pad = "  ".repeat(indent);
    let Value::Object(map) = value else {
        // Leaves are written by their parent.
        return;
    };
    let last = map.len().saturating_sub(1);
    for (n, (key, field)) in map.iter().enumerate() {
        let field_schema = schema.and_then(|s| property(s, key, root));
        let doc = field_schema
            .and_then(|s| s.get("description"))
            .or_else(|| {
                field_schema
                    .map(|s| resolve(s, root))
                    .and_then(|s| s.get("description"))
            })
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| schema.and_then(|s| tag_doc(s, key, field, root)));
        if let Some(doc) = doc {
            for part in doc.lines() {
                lines.push(format!("{pad}  // {part}"));
            }
        }
        let comma = if n == last { "" } else { "," };
        match field {
            Value::Object(inner) if !inner.is_empty() => {
                lines.push(format!("{pad}  {key:?}: {{"));
                annotate(field, field_schema, root, indent + 1, lines);
                lines.push(format!("{pad}  }}{comma}"));
            }
            other => lines.push(format!("{pad}  {key:?}: {other}{comma}")),
        }
    }
    if indent == 0 {
        lines.insert(0, "{".to_owned());
        lines.push("}".to_owned());
    }
}
