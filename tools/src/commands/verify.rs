//! `gdt verify`: the full integrity pass over a packed dataset.

use anyhow::Result;
use gdt_formats::dataset::DatasetManifest;
use gdt_formats::shard::Shard;

use crate::cli::VerifyArgs;

pub fn run(args: VerifyArgs) -> Result<i32> {
    // (shard file or "dataset.json", record if known, what failed)
    let mut damage: Vec<(String, Option<usize>, String)> = Vec::new();
    let (mut shards, mut records) = (0usize, 0usize);
    match DatasetManifest::load(&args.dataset) {
        Err(e) => damage.push(("dataset.json".into(), None, e.to_string())),
        Ok(m) => {
            for info in &m.shards {
                shards += 1;
                let path = match m.shard_path(&args.dataset, &info.file) {
                    Ok(p) => p,
                    Err(what) => {
                        damage.push((info.file.clone(), None, what));
                        continue;
                    }
                };
                match Shard::open(&path) {
                    Err(e) => damage.push((info.file.clone(), None, e.to_string())),
                    Ok(shard) => {
                        records += shard.len();
                        if shard.len() != info.records || shard.file_len() != info.bytes {
                            damage.push((
                                info.file.clone(),
                                None,
                                format!(
                                    "holds {} records in {} bytes; dataset.json says {} in {}",
                                    shard.len(),
                                    shard.file_len(),
                                    info.records,
                                    info.bytes
                                ),
                            ));
                        }
                        if shard.params() != &m.params {
                            damage.push((
                                info.file.clone(),
                                None,
                                "packed with other parameters than dataset.json names".into(),
                            ));
                        }
                        for d in shard.verify() {
                            damage.push((info.file.clone(), Some(d.record), d.what));
                        }
                    }
                }
            }
        }
    }
    if args.json {
        let v = serde_json::json!({
            "ok": damage.is_empty(),
            "shards": shards,
            "records": records,
            "damage": damage.iter().map(|(s, r, w)| serde_json::json!({"shard": s, "record": r, "what": w})).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else if damage.is_empty() {
        println!("OK: {shards} shards, {records} records, every checksum and bound verified");
    } else {
        println!("DAMAGED: {} problems in {}", damage.len(), args.dataset.display());
        for (s, r, w) in &damage {
            match r {
                Some(r) => println!("  {s} record {r}: {w}"),
                None => println!("  {s}: {w}"),
            }
        }
    }
    Ok(if damage.is_empty() { 0 } else { 1 })
}
