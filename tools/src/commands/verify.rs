//! `gdt verify`: the full integrity pass over a packed dataset.

use anyhow::Result;
use gdt_formats::dataset::verify;

use crate::cli::VerifyArgs;

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
        println!(
            "DAMAGED: {} problems in {}",
            v.problems.len(),
            args.dataset.display()
        );
        for p in &v.problems {
            match p.record {
                Some(r) => println!("  {} record {r}: {}", p.shard, p.what),
                None => println!("  {}: {}", p.shard, p.what),
            }
        }
    }
    Ok(if v.ok() { 0 } else { 1 })
}
