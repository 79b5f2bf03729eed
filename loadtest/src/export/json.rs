//! `summary.json`: the summary as pretty JSON, the file other tools read back.

use anyhow::Result;

use super::Exporter;
use crate::report::Summary;

pub struct JsonExporter;

impl Exporter for JsonExporter {
    fn file_name(&self) -> &str {
        "summary.json"
    }

    fn render(&self, summary: &Summary) -> Result<String> {
        let mut text = serde_json::to_string_pretty(summary)?;
        text.push('\n');
        Ok(text)
    }
}
