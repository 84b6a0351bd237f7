//! The steady-state rate of a loader from when its batches arrived.
//!
//! Every worker builds whole batches, so the first `threads` batches start together and
//! finish together: a run that starts its clock after a fixed, small warm-up finds the rest
//! of that first wave already built and counts them in no time (on 16 threads a short run
//! read 1.4x high on 2 cores, and up to 2x on 16). Here the warm-up takes at least the first
//! wave, the measurement spans at least two more, and the rate is the least-squares slope of
//! clips delivered against arrival time, which is exact for batches that keep arriving in
//! waves as well as one by one.

/// Batches a measurement must skip before its clock starts: the user's warm-up, and at least
/// the first wave (one batch per worker).
pub fn warmup_batches(asked: usize, threads: usize) -> usize {
    asked.max(threads)
}

/// Batches a measurement must span: the user's count rounded up to whole waves (one batch
/// per worker), and at least two waves: batches that keep arriving together then count
/// whole, whatever their phase.
pub fn measured_batches(asked: usize, threads: usize) -> usize {
    let threads = threads.max(1);
    asked.max(2 * threads).div_ceil(threads) * threads
}

/// Clips per second from `(seconds since the clock started, clips delivered so far)` at each
/// batch's arrival, after the warm-up: the slope of the least-squares line through them.
/// `None` with fewer than two distinct arrival times.
pub fn slope_rate(arrivals: &[(f64, f64)]) -> Option<f64> {
    let n = arrivals.len() as f64;
    if arrivals.len() < 2 {
        return None;
    }
    let (mt, mc) = arrivals
        .iter()
        .fold((0.0, 0.0), |(t, c), &(ti, ci)| (t + ti / n, c + ci / n));
    let (mut cov, mut var) = (0.0, 0.0);
    for &(t, c) in arrivals {
        cov += (t - mt) * (c - mc);
        var += (t - mt) * (t - mt);
    }
    (var > 0.0).then(|| cov / var)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Arrival times of `total` batches of `clips` clips from `threads` workers that each
    /// take `period` seconds a batch and start together (so they finish in waves), seen by a
    /// consumer that takes them as soon as they are built.
    fn waves(threads: usize, period: f64, total: usize) -> Vec<f64> {
        (0..total).map(|i| (i / threads + 1) as f64 * period).collect()
    }

    /// The rate from batch `warmup` on, as `gdt bench load` measured it before: the clock
    /// starts when the warm-up's last batch is taken, and the measured batches are divided
    /// by the time to the last one.
    fn old_rate(arrivals: &[f64], clips: f64, warmup: usize, measured: usize) -> f64 {
        let start = arrivals[warmup - 1];
        measured as f64 * clips / (arrivals[warmup + measured - 1] - start)
    }

    fn new_rate(arrivals: &[f64], clips: f64, threads: usize, asked: usize) -> f64 {
        let warmup = warmup_batches(5, threads);
        let measured = measured_batches(asked, threads);
        let start = arrivals[warmup - 1];
        let points: Vec<(f64, f64)> = arrivals[warmup..warmup + measured]
            .iter()
            .enumerate()
            .map(|(i, &t)| (t - start, (i + 1) as f64 * clips))
            .collect();
        slope_rate(&points).unwrap()
    }

    #[test]
    fn a_wave_of_prebuilt_batches_does_not_inflate_the_rate() {
        // 16 workers, 1 s per batch each: 16 batches/s, 512 clips/s in steady state.
        let (threads, clips) = (16, 32.0);
        let arrivals = waves(threads, 1.0, 400);
        let truth = threads as f64 * clips;
        // The old method: 5 warm-up batches, 24 measured, counts 11 prebuilt batches in no
        // time: 24 batches in 1 s.
        let old_short = old_rate(&arrivals, clips, 5, 24);
        assert!(old_short > 1.4 * truth, "{old_short} vs {truth}");
        // The new one gives the steady rate for a short run and a long one alike.
        for asked in [24, 40, 41, 300] {
            let rate = new_rate(&arrivals, clips, threads, asked);
            assert!(
                (rate / truth - 1.0).abs() < 0.1,
                "{asked} batches: {rate} vs {truth}"
            );
        }
    }

    #[test]
    fn batches_one_by_one_give_their_rate_exactly() {
        let arrivals: Vec<(f64, f64)> = (1..=50).map(|i| (i as f64 * 0.02, i as f64 * 8.0)).collect();
        assert!((slope_rate(&arrivals).unwrap() - 400.0).abs() < 1e-9);
        assert_eq!(slope_rate(&arrivals[..1]), None);
        assert_eq!(slope_rate(&[(1.0, 8.0), (1.0, 16.0)]), None);
    }

    #[test]
    fn warm_up_and_span_cover_the_waves() {
        assert_eq!(warmup_batches(5, 16), 16);
        assert_eq!(warmup_batches(5, 2), 5);
        assert_eq!(measured_batches(24, 16), 32);
        assert_eq!(measured_batches(40, 16), 48);
        assert_eq!(measured_batches(40, 2), 40);
        assert_eq!(measured_batches(41, 2), 42);
        assert_eq!(measured_batches(1, 1), 2);
    }
}
