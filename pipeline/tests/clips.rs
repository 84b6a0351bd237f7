//! `ClipReader`: clips at chosen positions for evaluation, read through the loader's code.

mod common;

use gdt_pipeline::load::clips::ClipReader;

fn dataset(dir: &std::path::Path) {
    common::small_dataset(dir, 5, 2);
}

#[test]
fn uniform_clips_span_the_record_and_reversal_flips_both_modalities() {
    let dir = tempfile::tempdir().unwrap();
    dataset(dir.path());
    let mut r = ClipReader::open(dir.path(), 16, 32).unwrap();
    let s = r.shape();
    assert_eq!((s.clip, s.crop, s.mels, s.audio_frames), (16, 32, 40, 53));
    assert_eq!(r.records().len(), 5);
    assert!(r.records().iter().all(|x| x.label.is_some() && x.split.is_some()));
    let frames = r.records()[0].frames;
    let starts = r.uniform_starts(0, 4);
    assert_eq!((starts[0], starts[3]), (0, frames - 16));
    assert!(starts.windows(2).all(|w| w[0] < w[1]));

    let (vl, al) = (s.video_per_view(), s.audio_per_view());
    let (mut v, mut a, mut rv, mut ra) = (vec![0u8; vl], vec![0f32; al], vec![0u8; vl], vec![0f32; al]);
    r.read(0, 10, 10, false, &mut v, &mut a).unwrap();
    r.read(0, 10, 10, true, &mut rv, &mut ra).unwrap();
    let plane = 32 * 32;
    for c in 0..3 {
        for t in 0..16 {
            let f = &v[(c * 16 + t) * plane..][..plane];
            let b = &rv[(c * 16 + 15 - t) * plane..][..plane];
            assert_eq!(f, b, "channel {c} frame {t}");
        }
    }
    for m in 0..40 {
        let row: Vec<f32> = a[m * 53..][..53].to_vec();
        let mut back: Vec<f32> = ra[m * 53..][..53].to_vec();
        back.reverse();
        assert_eq!(row, back, "mel {m}");
    }
    // Reading is deterministic, and audio can be taken from elsewhere in the record.
    let (mut v2, mut a2) = (vec![0u8; vl], vec![0f32; al]);
    r.read(0, 10, 10, false, &mut v2, &mut a2).unwrap();
    assert!(v == v2 && a == a2);
    r.read(0, 10, 30, false, &mut v2, &mut a2).unwrap();
    assert!(v == v2 && a != a2);
}

#[test]
fn out_of_range_clips_are_errors_naming_the_record() {
    let dir = tempfile::tempdir().unwrap();
    dataset(dir.path());
    let mut r = ClipReader::open(dir.path(), 16, 32).unwrap();
    let s = r.shape();
    let frames = r.records()[1].frames;
    let (mut v, mut a) = (vec![0u8; s.video_per_view()], vec![0f32; s.audio_per_view()]);
    let e = r
        .read(1, frames - 15, 0, false, &mut v, &mut a)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("shard-00000") && e.contains("record 1") && e.contains("does not fit"),
        "{e}"
    );
    assert!(r
        .read(99, 0, 0, false, &mut v, &mut a)
        .unwrap_err()
        .to_string()
        .contains("no record 99"));
    assert!(
        ClipReader::open(dir.path(), 16, 64).is_err(),
        "crop above the stored short side"
    );
}

/// Reading clips of different records in turn gives each record's own audio (the reader keeps
/// one record's decoded spectrogram and must switch when the record changes).
#[test]
fn interleaved_records_keep_their_own_audio() {
    let dir = tempfile::tempdir().unwrap();
    dataset(dir.path());
    let fresh = |record: usize| {
        let mut r = ClipReader::open(dir.path(), 16, 32).unwrap();
        let s = r.shape();
        let (mut v, mut a) = (vec![0u8; s.video_per_view()], vec![0f32; s.audio_per_view()]);
        r.read(record, 0, 0, false, &mut v, &mut a).unwrap();
        a
    };
    let (want0, want1) = (fresh(0), fresh(1));
    assert_ne!(want0, want1);
    let mut r = ClipReader::open(dir.path(), 16, 32).unwrap();
    let s = r.shape();
    let (mut v, mut a) = (vec![0u8; s.video_per_view()], vec![0f32; s.audio_per_view()]);
    for record in [0, 1, 1, 0, 1] {
        r.read(record, 0, 0, false, &mut v, &mut a).unwrap();
        assert_eq!(
            a,
            if record == 0 { want0.clone() } else { want1.clone() },
            "record {record}"
        );
    }
}
