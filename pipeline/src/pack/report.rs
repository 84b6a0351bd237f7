//! `pack-report.jsonl`: one line per input, packed or skipped with the reason, in input
//! order; written by a pack and by the merge of a pack's parts.

use std::path::Path;

use gdt_formats::dataset::REPORT_FILE;
use gdt_formats::FileError;

use super::{Outcome, PackError};

/// Writes `pack-report.jsonl` (atomically): one line per input, in input order.
pub(super) fn write_report(out: &Path, outcomes: &[Outcome]) -> Result<(), PackError> {
    let path = out.join(REPORT_FILE);
    gdt_formats::atomic_file::write_atomic(&path, &report(outcomes)).map_err(FileError::at(&path))?;
    Ok(())
}

/// The report's bytes.
pub(super) fn report(outcomes: &[Outcome]) -> Vec<u8> {
    let mut text = String::new();
    for o in outcomes {
        text.push_str(&serde_json::to_string(o).expect("outcome serialises"));
        text.push('\n');
    }
    text.into_bytes()
}
