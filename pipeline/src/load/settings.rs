//! What a loader serves, as one serde type whose `Default` is the reference setup (batch 8,
//! two 30-frame time shifts each with its reversed view, 112-pixel crops of frames scaled to
//! a short side of U(128, 160), every core). `gdt train`'s `[data]` section is this type,
//! `gdt bench load`'s flags default to it and `gdt.Loader`'s keyword arguments read it from
//! the native module, so a default changed here changes it everywhere.

use std::path::PathBuf;

use gdt_formats::dataset::OpenOptions;
use serde::{Deserialize, Serialize};

use super::augment::VideoAugment;
use crate::spec::{TransformSpec, DEFAULT_PRESET};

/// What a loader serves and how hard it works.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoaderSettings {
    /// Records per batch (each gives `shifts x (1 + reversal)` views).
    pub batch_size: usize,
    /// Time shifts per record; unset: what the loss spec's preset needs (the default
    /// preset's: 2).
    pub shifts: Option<usize>,
    /// Reversed views; unset: what the preset needs (the default preset's: yes).
    pub reversal: Option<bool>,
    /// Frames per clip (30: one second).
    pub clip: usize,
    /// Output crop side, pixels.
    pub crop: u32,
    /// Smallest short side the scale jitter draws before the crop; unset: 128/112 of the crop.
    pub scale_min: Option<f32>,
    /// Largest short side the scale jitter draws; unset: 160/112 of the crop.
    pub scale_max: Option<f32>,
    /// Colour jitter strength (brightness, contrast, saturation; 0.4 in the reference), or none.
    pub color_jitter: Option<f32>,
    /// Worker threads; unset: every core.
    pub threads: Option<usize>,
    /// Batches in flight at most (built or being built, not yet taken).
    pub prefetch: usize,
    /// Minimum distance between a record's time shifts, frames.
    pub min_gap: usize,
    /// Fail on a damaged record instead of skipping it.
    pub strict: bool,
    /// The splits served (the manifest's split column). Unset or empty: every record
    /// (`gdt train` resolves unset to every split evaluation does not hold out).
    pub splits: Option<Vec<String>>,
    /// For a dataset in an object store: a local directory that keeps its shards, so later
    /// runs read them from disk (see `gdt_formats::storage::cache`). Unset: ranged reads only.
    pub cache_dir: Option<PathBuf>,
    /// The cache's bound, GiB; unset: half of the free space of its file system.
    pub cache_gib: Option<f64>,
}

impl Default for LoaderSettings {
    fn default() -> Self {
        LoaderSettings {
            batch_size: 8,
            shifts: None,
            reversal: None,
            clip: 30,
            crop: 112,
            scale_min: None,
            scale_max: None,
            color_jitter: None,
            threads: None,
            prefetch: 4,
            min_gap: 0,
            strict: false,
            splits: None,
            cache_dir: None,
            cache_gib: None,
        }
    }
}

impl LoaderSettings {
    /// Time shifts per record and whether each has a reversed view: the settings', else
    /// the default preset's.
    pub fn layout(&self) -> (usize, bool) {
        let preset = TransformSpec::preset(DEFAULT_PRESET).expect("the default preset exists");
        (
            self.shifts.unwrap_or(preset.shifts),
            self.reversal.unwrap_or(preset.reversal),
        )
    }

    /// The video augmentation: the reference's at this crop (its scale jitter scaled with
    /// the crop), with the scale range and colour jitter given here.
    pub fn video_augment(&self) -> VideoAugment {
        let at_crop = VideoAugment::at_crop(self.crop);
        VideoAugment {
            scale_min: self.scale_min.unwrap_or(at_crop.scale_min),
            scale_max: self.scale_max.unwrap_or(at_crop.scale_max),
            color_jitter: self.color_jitter,
            ..at_crop
        }
    }

    /// Worker threads: the settings', else every core.
    pub fn thread_count(&self) -> usize {
        self.threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    /// How the dataset is opened: its local cache, if it is remote.
    pub fn open_options(&self) -> OpenOptions {
        OpenOptions {
            cache_dir: self.cache_dir.clone(),
            cache_bytes: self.cache_gib.map(|g| (g.max(0.0) * (1u64 << 30) as f64) as u64),
        }
    }

    /// The splits served; empty: every record.
    pub fn served_splits(&self) -> &[String] {
        self.splits.as_deref().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_the_reference_setup() {
        let s = LoaderSettings::default();
        assert_eq!(s.layout(), (2, true));
        assert_eq!((s.batch_size, s.clip, s.crop), (8, 30, 112));
        let v = s.video_augment();
        assert_eq!((v.crop, v.scale_min, v.scale_max), (112, 128.0, 160.0));
        assert_eq!(v, VideoAugment::default());
    }

    #[test]
    fn the_scale_jitter_follows_the_crop_unless_given() {
        let s = LoaderSettings {
            crop: 56,
            ..LoaderSettings::default()
        };
        assert_eq!(s.video_augment(), VideoAugment::at_crop(56));
        let s = LoaderSettings {
            crop: 32,
            scale_min: Some(36.0),
            scale_max: Some(44.0),
            color_jitter: Some(0.4),
            ..LoaderSettings::default()
        };
        let v = s.video_augment();
        assert_eq!(
            (v.scale_min, v.scale_max, v.color_jitter),
            (36.0, 44.0, Some(0.4))
        );
    }

    #[test]
    fn unknown_keys_are_refused_by_name() {
        let e = serde_json::from_str::<LoaderSettings>(r#"{"batchsize": 3}"#).unwrap_err();
        assert!(e.to_string().contains("batchsize"), "{e}");
    }
}
