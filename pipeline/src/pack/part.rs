//! Packing on many machines without a coordinator: part `i` of `N` packs a contiguous range
//! of the input list (`gdt pack --part i/N`), every task computing its own range, and
//! [`super::merge`] joins the parts into one dataset.
//!
//! Contiguous ranges, not hashing: the merged dataset must hold its records in the order a
//! one-machine pack of the same inputs would, and shards are never rewritten, so each part
//! must be a run of consecutive inputs whose shards can be renamed into one sequence. Ranges
//! differ in size by at most one input; they balance by count, not by video length, so a
//! list sorted by length gives uneven parts (a folder is sorted by path; a CSV manifest is
//! taken in its order).

use std::ops::Range;

use serde::{Deserialize, Serialize};

/// Part `index` of `count` (0-based).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    /// Which part, from 0.
    pub index: usize,
    /// Parts in all.
    pub count: usize,
}

impl Part {
    /// Parses `i/N` (0-based `i` below `N`).
    pub fn parse(text: &str) -> Result<Part, String> {
        let bad = || format!("--part {text:?}: expected i/N with 0 <= i < N, e.g. 0/8");
        let (i, n) = text.split_once('/').ok_or_else(bad)?;
        let (index, count) = (
            i.trim().parse::<usize>().map_err(|_| bad())?,
            n.trim().parse::<usize>().map_err(|_| bad())?,
        );
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Part { index, count })
    }

    /// The inputs of this part out of `inputs` in all: a pure function of the two numbers.
    pub fn range(&self, inputs: usize) -> Range<usize> {
        let at = |k: usize| k * inputs / self.count;
        at(self.index)..at(self.index + 1)
    }

    /// The directory name of this part inside a pack's output folder.
    pub fn dir_name(&self) -> String {
        format!("part-{}", self.index)
    }
}

impl std::fmt::Display for Part {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_cover_the_list_once_in_order_and_differ_by_at_most_one() {
        for inputs in [0, 1, 5, 7, 100, 241] {
            for count in 1..=9 {
                let ranges: Vec<_> = (0..count)
                    .map(|index| Part { index, count }.range(inputs))
                    .collect();
                assert_eq!(ranges[0].start, 0);
                assert_eq!(ranges[count - 1].end, inputs);
                for w in ranges.windows(2) {
                    assert_eq!(w[0].end, w[1].start);
                }
                let sizes: Vec<usize> = ranges.iter().map(|r| r.len()).collect();
                assert!(
                    sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1,
                    "{sizes:?}"
                );
            }
        }
    }

    #[test]
    fn parses_i_of_n_and_refuses_the_rest() {
        assert_eq!(Part::parse("2/8").unwrap(), Part { index: 2, count: 8 });
        for bad in ["8/8", "1/0", "3", "-1/2", "a/b", ""] {
            assert!(Part::parse(bad).unwrap_err().contains("i/N"), "{bad}");
        }
    }
}
