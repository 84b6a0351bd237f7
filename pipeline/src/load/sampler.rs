//! Which records, which time shifts: GDT's hierarchical batch, reproducibly.
//!
//! Every random draw comes from a stream keyed by `(seed, epoch, record, view)` (see
//! [`draw_stream`]), never from a shared generator, so a batch is the same whatever thread
//! builds it and in whatever order workers finish.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use xxhash_rust::xxh3::xxh3_64;

/// Every stream key the loader draws from, in one place. A record's views use their view
/// number (0, 1, ...) in the last slot; the keys below sit far above any view number.
///
/// The stream that shuffles an epoch (in the record slot: no record has this number).
const ORDER_KEY: u64 = u64::MAX;
/// The stream a record's time shifts are drawn from (in the view slot).
const SHIFTS_KEY: u64 = u64::MAX - 1;

/// The stream that orders epoch `epoch`.
pub fn order_stream(seed: u64, epoch: u64) -> ChaCha8Rng {
    draw_stream(seed, epoch, ORDER_KEY, 0)
}

/// The stream a record's time shifts in `epoch` are drawn from.
pub fn shifts_stream(seed: u64, epoch: u64, record: u64) -> ChaCha8Rng {
    draw_stream(seed, epoch, record, SHIFTS_KEY)
}

/// The stream view `view` of a record in `epoch` draws its augmentation from.
pub fn view_stream(seed: u64, epoch: u64, record: u64, view: u64) -> ChaCha8Rng {
    draw_stream(seed, epoch, record, view)
}

/// The random stream for one key. Counter-based in effect: the key is hashed into the seed
/// of an independent ChaCha8 stream, so any draw can be reproduced from its key alone.
pub fn draw_stream(seed: u64, epoch: u64, record: u64, view: u64) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    for (i, v) in [seed, epoch, record, view].iter().enumerate() {
        key[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
    }
    ChaCha8Rng::seed_from_u64(xxh3_64(&key))
}

/// How every epoch is cut into batches for one rank: the loader's plan, given the epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Epochs {
    /// Records served (the dataset's, or those of the chosen splits); plans hold positions
    /// among them.
    pub records: usize,
    /// The loader's seed.
    pub seed: u64,
    /// This process's rank.
    pub rank: usize,
    /// Ranks in all.
    pub world: usize,
    /// Records per batch.
    pub batch_size: usize,
    /// Leave out a last, short batch.
    pub drop_last: bool,
}

impl Epochs {
    /// Shuffles the records for `epoch` and gives this rank its share of every global batch.
    ///
    /// Elastic: the shuffled order is cut into global batches of `batch_size * world`
    /// records, and rank r takes the r-th `batch_size` of each. So global batch k holds the
    /// same records (and, since every draw is keyed by record, the same views) for any world
    /// size with the same global batch: 1 rank x 8 and 2 ranks x 4 see the same data at
    /// every step, and a run resumes at another world size where it stopped. Every rank gets
    /// the same number of batches (the `records % world` left over are left out of the epoch;
    /// without `drop_last`, a last short global batch is shared equally), so no rank waits
    /// for another at the end of an epoch.
    pub fn plan(&self, epoch: u64) -> EpochPlan {
        let Epochs {
            records: n,
            seed,
            rank,
            world,
            batch_size,
            drop_last,
        } = *self;
        assert!(world >= 1 && rank < world && batch_size >= 1);
        let mut order: Vec<u32> = (0..n as u32).collect();
        order.shuffle(&mut order_stream(seed, epoch));
        let usable = n / world * world;
        let global = batch_size * world;
        let (full, rest) = (usable / global, usable % global);
        let mut records = Vec::with_capacity(n / world);
        for k in 0..full {
            let start = k * global + rank * batch_size;
            records.extend_from_slice(&order[start..start + batch_size]);
        }
        let batches = if drop_last || rest == 0 {
            full
        } else {
            // `rest` is a multiple of `world`: each rank takes an equal share of it.
            let share = rest / world;
            let start = full * global + rank * share;
            records.extend_from_slice(&order[start..start + share]);
            full + 1
        };
        EpochPlan {
            records,
            batch_size,
            batches,
        }
    }
}

/// One epoch as one rank sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EpochPlan {
    /// This rank's records, in the order they are batched.
    pub records: Vec<u32>,
    /// Records per batch.
    pub batch_size: usize,
    /// Batches in the epoch.
    pub batches: usize,
}

impl EpochPlan {
    /// The records of batch `b` (the last may be short unless `drop_last`).
    pub fn batch(&self, b: usize) -> &[u32] {
        let start = b * self.batch_size;
        &self.records[start..(start + self.batch_size).min(self.records.len())]
    }
}

/// Start frames of a record's `k` time shifts, uniform over the frames where a whole clip
/// fits. With `min_gap`, shifts are redrawn (a bounded number of times) until they are at
/// least that many frames apart; a record too short for the gap keeps its last draw.
pub fn time_shifts(
    rng: &mut ChaCha8Rng,
    frames: usize,
    clip: usize,
    k: usize,
    min_gap: usize,
    out: &mut [usize],
) {
    debug_assert!(frames >= clip && out.len() == k);
    let last_start = frames - clip;
    for attempt in 0..32 {
        for s in out.iter_mut() {
            *s = rng.random_range(0..=last_start);
        }
        let spaced = min_gap == 0
            || out
                .iter()
                .enumerate()
                .all(|(i, a)| out[i + 1..].iter().all(|b| a.abs_diff(*b) >= min_gap));
        if spaced || attempt == 31 {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn epochs(records: usize, rank: usize, world: usize, drop_last: bool) -> Epochs {
        Epochs {
            records,
            seed: 7,
            rank,
            world,
            batch_size: 8,
            drop_last,
        }
    }

    #[test]
    fn ranks_get_disjoint_equal_slices_that_cover_the_epoch() {
        let n = 103;
        for world in [1usize, 2, 3, 4] {
            let plans: Vec<EpochPlan> = (0..world)
                .map(|rank| epochs(n, rank, world, false).plan(3))
                .collect();
            let mut all: Vec<u32> = plans.iter().flat_map(|p| p.records.clone()).collect();
            let before = all.len();
            all.sort();
            all.dedup();
            assert_eq!(all.len(), before, "slices overlap for world {world}");
            assert_eq!(before, n / world * world);
            assert!(plans
                .iter()
                .all(|p| p.batches == plans[0].batches && p.records.len() == n / world));
        }
        let a = epochs(n, 0, 1, true).plan(3);
        assert_eq!(a.batches, 12);
        assert_ne!(
            a.records,
            epochs(n, 0, 1, true).plan(4).records,
            "epochs reshuffle"
        );
        assert_eq!(a, epochs(n, 0, 1, true).plan(3), "same key, same order");
    }

    #[test]
    fn global_batches_hold_the_same_records_for_any_world_size() {
        let n = 103;
        let one = Epochs {
            batch_size: 8,
            ..epochs(n, 0, 1, true)
        }
        .plan(2);
        for world in [2usize, 4, 8] {
            let plans: Vec<EpochPlan> = (0..world)
                .map(|rank| {
                    Epochs {
                        batch_size: 8 / world,
                        ..epochs(n, rank, world, true)
                    }
                    .plan(2)
                })
                .collect();
            assert!(plans.iter().all(|p| p.batches == one.batches), "world {world}");
            for k in 0..one.batches {
                let global: Vec<u32> = plans.iter().flat_map(|p| p.batch(k).to_vec()).collect();
                assert_eq!(global, one.batch(k), "global batch {k}, world {world}");
            }
        }
    }

    #[test]
    fn shifts_fit_the_record_and_respect_the_gap() {
        let mut out = [0usize; 2];
        for r in 0..200 {
            time_shifts(&mut draw_stream(1, 0, r, 0), 300, 30, 2, 60, &mut out);
            assert!(out.iter().all(|&s| s <= 270));
            assert!(out[0].abs_diff(out[1]) >= 60);
        }
        // A record of exactly one clip has one possible start.
        time_shifts(&mut draw_stream(1, 0, 0, 0), 30, 30, 2, 0, &mut out);
        assert_eq!(out, [0, 0]);
    }
}

/// The first spectrogram frame of the slice aligned with video frame `start`, given
/// `per_frame` spectrogram frames per video frame; `None` when the record's spectrogram is too
/// short for it.
///
/// The rounded start and the ceil-rounded slice length can reach up to two frames (20 ms)
/// past the last spectrogram frame when the clip ends at the record's end; such a slice ends
/// there instead.
pub fn aligned_audio_start(
    start: usize,
    per_frame: f64,
    mel_frames: usize,
    audio_frames: usize,
) -> Option<usize> {
    let aligned = (start as f64 * per_frame).round() as usize;
    let last_start = mel_frames.checked_sub(audio_frames)?;
    if aligned <= last_start {
        Some(aligned)
    } else if aligned <= last_start + 2 {
        Some(last_start)
    } else {
        None
    }
}

#[cfg(test)]
mod audio_start_tests {
    use super::aligned_audio_start;

    #[test]
    fn the_aligned_slice_ends_at_the_record_end_when_rounding_overshoots() {
        let per = 10.0 / 3.0; // 100 spectrogram frames per second, 30 video frames per second
        assert_eq!(aligned_audio_start(30, per, 400, 99), Some(100));
        // Frame 92 of a 359-frame spectrogram with 53-frame slices: aligned 307 overshoots by 1.
        assert_eq!(aligned_audio_start(92, per, 359, 53), Some(306));
        // Frame 93: aligned 310, four frames past the last start: the record is too short.
        assert_eq!(aligned_audio_start(93, per, 359, 53), None);
        assert_eq!(aligned_audio_start(0, per, 40, 53), None);
    }
}
