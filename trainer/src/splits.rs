//! The split policy: which records pretraining reads and which evaluation holds out. One
//! rule for both, so that pretraining never sees the records evaluation tests on.
//!
//! Evaluation holds out the records of the `test`, `val` and `validation` splits (or, in a
//! dataset without splits, every fourth record); pretraining reads, unless `data.splits`
//! says otherwise, every split that evaluation does not hold out.

use gdt_formats::dataset::{Dataset, RecordInfo};

use crate::error::TrainError;

/// Whether evaluation holds out the records of this split (and pretraining, by default,
/// leaves them out).
pub fn is_held_out(split: &str) -> bool {
    matches!(split, "test" | "val" | "validation")
}

/// The splits pretraining reads when `data.splits` is unset: every split of the dataset that
/// evaluation does not hold out, or none (every record) when the dataset has no splits.
pub fn pretraining_splits(ds: &Dataset) -> Result<Vec<String>, TrainError> {
    let index = ds.index();
    if let Some(u) = index.unreadable().first() {
        return Err(TrainError::UnreadableSplit {
            error: u.error.clone(),
        });
    }
    let names = index.split_names();
    let train: Vec<String> = names
        .iter()
        .filter(|s| !is_held_out(s))
        .map(|s| s.to_string())
        .collect();
    if train.is_empty() && !names.is_empty() {
        return Err(TrainError::AllSplitsHeldOut {
            dataset: ds.dir.clone(),
            splits: names.into_iter().collect::<Vec<_>>().join(", "),
        });
    }
    Ok(train)
}

/// Evaluation's train and test records (positions in `records`): the held-out splits are
/// the test records; in a dataset without splits, every fourth record is.
pub fn evaluation_partition(records: &[RecordInfo]) -> (Vec<usize>, Vec<usize>) {
    let has_split = records.iter().any(|r| r.split.is_some());
    let is_test = |i: usize| match &records[i].split {
        Some(s) => is_held_out(s),
        None => !has_split && i % 4 == 3,
    };
    (0..records.len()).partition(|&i| !is_test(i))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(split: Option<&str>) -> RecordInfo {
        RecordInfo {
            frames: 30,
            label: None,
            split: split.map(str::to_string),
        }
    }

    #[test]
    fn held_out_splits_are_the_test_records_and_every_fourth_without_splits() {
        let with = [Some("train"), Some("test"), Some("val"), Some("train"), None].map(record);
        assert_eq!(evaluation_partition(&with), (vec![0, 3, 4], vec![1, 2]));
        let without = [None; 8].map(record);
        assert_eq!(
            evaluation_partition(&without),
            (vec![0, 1, 2, 4, 5, 6], vec![3, 7])
        );
        assert!(is_held_out("validation") && !is_held_out("train"));
    }
}
