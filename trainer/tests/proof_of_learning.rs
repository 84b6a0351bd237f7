//! Proof of learning: GDT training on the CPU makes features clearly better than the same
//! architecture at random initialisation, on a synthetic corpus whose seed no setting was
//! chosen on. The protocol and its settings are `gdt_trainer::proof`; the figures
//! below were measured with `cargo run --release -p gdt-trainer --example proof_of_learning`
//! on the 2-core development machine.
//!
//! The settings: preset `cross-modal` (invariant to everything but the sample) over two time
//! shifts per record, 4 records x 2 views per step, 2000 steps of a quarter-width model on
//! 8x32x32 clips (about 5 minutes). Invariance across shifts is what makes it learn the
//! classes: a clip's positives include its video's audio from another moment, which shares
//! the objects' sounds but not the impact times, so the video encoder cannot match it by
//! timing alone. With one shift (the preset's own layout, 8 records per step) cross-modal
//! retrieval improves more (R@1 25-28% vs 3%), but whether the classes are learnt within the
//! budget depends on the corpus (video kNN 97% on seed 11, 22% on seed 29, random 59%); the
//! default GDT preset learns synchrony (86% vs 50%) and retrieval (R@1 34% vs 3%) but not the
//! classes (kNN 62% vs 59%) at this budget.

use gdt_trainer::proof::{self, ProofSettings};

#[test]
fn gdt_training_beats_random_init_on_cross_modal_retrieval_and_knn() {
    let dir = tempfile::tempdir().unwrap();
    let settings = ProofSettings::default();
    let r = proof::run(&settings, dir.path()).unwrap();
    println!(
        "{}, {} steps, corpus seed {}: {:.0} s ({:.0} s training), final loss {:.3}",
        settings.preset, settings.steps, settings.corpus_seed, r.total_seconds, r.train_seconds, r.final_loss
    );
    println!("{}", proof::summary_line("trained", &r.trained));
    println!("{}", proof::summary_line("random", &r.random));
    let (t, z) = (&r.trained, &r.random);
    // Every figure is on the 32 test records, which pretraining never read: it trained on
    // the train split only, as its resolved config records.
    assert_eq!(t.test_records, 32);
    let run = gdt_trainer::train::run_config(&dir.path().join("run")).unwrap();
    assert_eq!(run.data.splits, Some(vec!["train".to_string()]));

    // Measured with these settings (deterministic on one machine: the same seed gives the
    // same loss to the last digit), trained vs random init, 32 held-out test records,
    // pretraining on the 128 train records with the head's dropout at 0.3:
    //   corpus seed 47 (this test): a->v R@1 12% vs 3%, R@5 56% vs 12%, video kNN 56% vs
    //     44%, linear 75% vs 53%, synchrony 63% vs 55%, direction 64% vs 46%.
    // Before pretraining left the test split out (and without dropout), on the same seeds
    // (the test records were then also training records, so these measured fit in part):
    //   corpus seed 47: a->v R@1 22% vs 3%, R@5 81% vs 12%, video kNN 62% vs 44%, linear
    //     81% vs 53%, synchrony 71% vs 55%; 274 s of training.
    //   corpus seed 29: a->v R@1 16% vs 3%, R@5 50% vs 12%, video kNN 72% vs 59%,
    //     video linear 88% vs 53%, synchrony 73% vs 49%; 277 s of training.
    //   corpus seed 11: a->v R@1 9% vs 3%, R@5 62% vs 19%, video kNN 78% vs 59%, linear 84%
    //     vs 50%; with 10 eval clips instead of 4: R@1 9% vs 3%, kNN 81% vs 62%.
    // The smallest margins seen: R@1 +6 points (2 of 32 records), kNN +12, R@5 +38. The
    // thresholds sit below those; a model that learnt nothing is within a record or two of
    // random on each.
    const A2V_MARGIN: f64 = 0.05;
    const A2V_R5_MARGIN: f64 = 0.25;
    const KNN_MARGIN: f64 = 0.08;
    let (a2v, a2v_random) = (t.audio_to_video["R@1"], z.audio_to_video["R@1"]);
    assert!(
        a2v >= a2v_random + A2V_MARGIN,
        "audio->video R@1: trained {a2v:.3} vs random {a2v_random:.3}"
    );
    let (r5, r5_random) = (t.audio_to_video["R@5"], z.audio_to_video["R@5"]);
    assert!(
        r5 >= r5_random + A2V_R5_MARGIN,
        "audio->video R@5: trained {r5:.3} vs random {r5_random:.3}"
    );
    assert!(
        t.video_knn_top1 >= z.video_knn_top1 + KNN_MARGIN,
        "video kNN top-1: trained {:.3} vs random {:.3}",
        t.video_knn_top1,
        z.video_knn_top1
    );
}
