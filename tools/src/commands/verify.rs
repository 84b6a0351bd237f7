//! `gdt verify`: the full integrity pass over a packed dataset.

use anyhow::Result;
use gdt_formats::dataset::verify;

use crate::cli::VerifyArgs;

/// Exit 0: intact; 1: damage found; 2: the dataset could not be read to the end (an object
/// store that failed), which says nothing of the data.
pub fn run(args: VerifyArgs) -> Result<i32> {
    let v = verify(&args.dataset);
    if args.json {
        let mut json = serde_json::to_value(&v)?;
        json["ok"] = v.ok().into();
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else if v.ok() {
        println!(
            "OK: {} shards, {} records, every checksum and bound verified",
            v.shards, v.records
        );
    } else {
        if let Some(why) = &v.stopped {
            println!(
                "NOT VERIFIED: stopped after {} shards ({} records): {why}",
                v.shards, v.records
            );
        }
        if !v.problems.is_empty() {
            println!(
                "DAMAGED: {} problems in {}",
                v.problems.len(),
                args.dataset.display()
            );
        }
        for p in &v.problems {
            match p.record {
                Some(r) => println!("  {} record {r}: {}", p.shard, p.what),
                None => println!("  {}: {}", p.shard, p.what),
            }
        }
    }
    Ok(match (v.ok(), &v.stopped) {
        (true, _) => 0,
        (false, None) => 1,
        (false, Some(_)) => 2,
    })
}
