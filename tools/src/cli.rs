//! The command line as data: what a user can type, with its defaults and help text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use gdt_formats::params::{FrameCodec, PackParams};
use gdt_pipeline::load::settings::LoaderSettings;
use gdt_pipeline::synth::Container;

#[derive(Debug, Parser)]
#[command(
    name = "gdt",
    version,
    about = "Pack audio-visual video datasets once, load GDT views at memory speed, train on GPU.",
    long_about = None
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate the synthetic audio-visual corpus (bouncing objects with impact sounds).
    Synth(SynthArgs),
    /// Decode videos once into sharded, checksummed, memory-mapped records.
    Pack(PackArgs),
    /// Join the parts of a pack made on many machines (`gdt pack --part i/N`) into one
    /// dataset, hard-linking their shards (no copy; in an object store, naming them).
    Merge(MergeArgs),
    /// Copy a packed dataset into an object store (s3://...) or from one onto a local disk.
    Copy(CopyArgs),
    /// Show a packed dataset's parameters, sizes, label histogram and skipped inputs.
    Inspect(InspectArgs),
    /// Check every checksum and bound of a packed dataset; exit 1 on any damage (2 when an
    /// object store failed before the end).
    Verify(VerifyArgs),
    /// Draw a record's frames above its spectrogram, on one time axis, as a PNG.
    Preview(PreviewArgs),
    /// Benchmarks: `gdt bench load DATASET` measures loader throughput against on-the-fly
    /// decoding and a decompress-and-copy floor.
    Bench(BenchArgs),
    /// Train GDT encoders on a packed dataset (CUDA when present): checkpoints, a JSONL log
    /// and a plot go to the run directory.
    Train(TrainArgs),
    /// Evaluate a checkpoint's frozen features: retrieval, kNN and linear probes (full and
    /// few-shot), audio probes, synchrony and direction.
    Eval(EvalArgs),
    /// Show what this build can do: FFmpeg, libtorch, CUDA and cuDNN.
    Info(InfoArgs),
}

#[derive(Debug, Args)]
#[command(after_help = train_help())]
pub struct TrainArgs {
    /// Packed dataset (overrides `dataset` in the config).
    pub dataset: Option<PathBuf>,
    /// Run directory: config.toml, log.jsonl, checkpoints/, plot.png.
    #[arg(long, short, required_unless_present = "list_presets")]
    pub run_dir: Option<PathBuf>,
    /// TOML config file.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// A named GDT experiment (see --list-presets); overrides the config's `loss.preset`.
    #[arg(long)]
    pub preset: Option<String>,
    /// Total optimizer steps (with --resume: train up to this many).
    #[arg(long)]
    pub steps: Option<u64>,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long)]
    pub device: Option<String>,
    /// Any config key: `--set optim.lr=0.05 --set loss.factors.flip=distinct`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Continue the run directory's latest checkpoint with its saved config (plus --steps,
    /// --device and --set).
    #[arg(long)]
    pub resume: bool,
    /// Print the presets and exit.
    #[arg(long)]
    pub list_presets: bool,
    /// No progress bar (one line per checkpoint instead).
    #[arg(long, short)]
    pub quiet: bool,
    /// Data-parallel runs: how long a rank waits for the others (rendezvous, collectives)
    /// before it gives up with the reason, seconds.
    #[arg(long, default_value_t = 300)]
    pub dist_timeout: u64,
    /// Data-parallel runs on CUDA: NCCL (one GPU per rank; `make gpu-build` has it) or Gloo
    /// on CUDA tensors (slower; any build). CPU tensors always use Gloo.
    #[arg(long, value_enum, default_value_t = DistBackend::Nccl)]
    pub dist_backend: DistBackend,
    #[command(flatten)]
    pub cache: CacheArgs,
}

/// The local cache of a dataset in an object store (`data.cache_dir`, `data.cache_gib`).
#[derive(Debug, Args, Default)]
pub struct CacheArgs {
    /// For a dataset in an object store (s3://...): keep its shards in this local directory
    /// as they are read, so later runs read them from disk. Default: no cache, ranged reads.
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// The cache's bound, GiB (least recently read shards go first). Default: half of the
    /// free space of its file system.
    #[arg(long, value_name = "GIB", requires = "cache_dir")]
    pub cache_gib: Option<f64>,
}

/// `gdt train --help`'s epilogue: every config key (from the config type itself) and how
/// data-parallel runs start.
fn train_help() -> String {
    format!(
        "{} Pretraining reads the dataset's non-test splits (data.splits; [] for every record). \
         Data-parallel (Gloo on CPU, NCCL on GPUs with `make gpu-build`): launch with torchrun --no-python, srun, \
         or RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT set; data.batch_size is per rank, each rank \
         uses cuda:LOCAL_RANK. The run directory keeps the resolved config as config.toml.",
        gdt_trainer::config::keys_help()
    )
}

/// The collective backend for CUDA tensors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DistBackend {
    Nccl,
    Gloo,
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// A run directory (its newest checkpoint) or a checkpoint directory.
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Packed dataset with train/test splits (records without one: every fourth is test).
    #[arg(long)]
    pub data: PathBuf,
    /// A second model side by side: another run or checkpoint, or `random` for the same
    /// architecture at random initialisation.
    #[arg(long)]
    pub compare: Option<String>,
    /// Uniformly spaced clips per record, features averaged.
    #[arg(long, default_value_t = 10)]
    pub clips: usize,
    /// Draws averaged per few-shot setting.
    #[arg(long, default_value_t = 5)]
    pub few_shot_draws: usize,
    /// auto, cpu, cuda or cuda:N (default: the run's).
    #[arg(long)]
    pub device: Option<String>,
    /// Print JSON instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Also write the JSON here.
    #[arg(long, short)]
    pub out: Option<PathBuf>,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct SynthArgs {
    /// Directory to write the videos, `manifest.csv` and `synth.json` into.
    #[arg(short, long)]
    pub out: PathBuf,
    /// Number of videos.
    #[arg(long, default_value_t = 24)]
    pub count: usize,
    /// Seed: the same seed and flags give byte-identical files.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Number of object classes (labels), at most 8.
    #[arg(long, default_value_t = 4)]
    pub classes: usize,
    /// Shortest video, seconds.
    #[arg(long, default_value_t = 2.0)]
    pub min_seconds: f64,
    /// Longest video, seconds.
    #[arg(long, default_value_t = 12.0)]
    pub max_seconds: f64,
    /// Frame sizes to draw from, WIDTHxHEIGHT, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = ["320x240".to_string(), "480x270".to_string(), "480x360".to_string(), "640x360".to_string()])]
    pub resolutions: Vec<String>,
    /// Frame rates to draw from.
    #[arg(long, value_delimiter = ',', default_values_t = [24u32, 25, 30])]
    pub fps: Vec<u32>,
    /// Audio sample rates to draw from.
    #[arg(long, value_delimiter = ',', default_values_t = [44_100u32, 48_000])]
    pub sample_rates: Vec<u32>,
    /// Containers used in turn: mp4 (H.264+AAC), mkv (H.264+AAC), avi (MPEG-4+PCM),
    /// mov (H.264+PCM), webm (VP9+Vorbis).
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Container::Mp4])]
    pub containers: Vec<Container>,
    /// Fraction of videos with a variable frame rate (mp4 and mkv only).
    #[arg(long, default_value_t = 0.0)]
    pub vfr: f64,
    /// Object size relative to the default (radius 5-8% of the frame height), 0.25 to 4.
    /// Larger objects stay visible in the small frames a CPU-sized model trains on.
    #[arg(long, default_value_t = 1.0)]
    pub object_scale: f32,
    /// Videos encoded at once. Default: all cores.
    #[arg(short = 'j', long)]
    pub jobs: Option<usize>,
    /// Replace the synthetic files of an earlier run in OUT.
    #[arg(long)]
    pub force: bool,
    /// Write a packed dataset into OUT directly (rendered at 30 fps, stored size, 24 kHz;
    /// no video files, no FFmpeg needed). Frame rates, sample rates and containers are
    /// then ignored.
    #[arg(long)]
    pub packed: bool,
    /// With --packed: mel filters (257 or 40).
    #[arg(long, default_value_t = PackParams::default().mels)]
    pub mels: u32,
}

#[derive(Debug, Args)]
pub struct PackArgs {
    /// A folder of videos (searched recursively) or a CSV manifest `path[,label[,split]]`.
    pub input: PathBuf,
    /// Dataset directory to write (with --part: the folder its `part-i` directory goes in),
    /// or an object-store prefix: s3://bucket/k400 (credentials, region and endpoint from
    /// the AWS_* variables), gs://..., az://...
    #[arg(short, long)]
    pub out: PathBuf,
    /// With an object-store -o: where shards are written before each is uploaded and
    /// deleted (about three at a time), in a folder of the pack's own (`gdt-pack-<hash of
    /// the URL>`) that is removed when the pack completes. Default: the system's temporary
    /// directory.
    #[arg(long, value_name = "DIR")]
    pub staging: Option<PathBuf>,
    /// Pack part i of N (0-based) of the input list into OUT/part-i: a contiguous range,
    /// computed by every task alone (Slurm array jobs, indexed jobs, a loop over hosts).
    /// Join the parts with `gdt merge OUT/part-* -o DATASET`.
    #[arg(long, value_name = "i/N", value_parser = gdt_pipeline::pack::Part::parse)]
    pub part: Option<gdt_pipeline::pack::Part>,
    /// Videos decoded at once. Default: all cores.
    #[arg(short = 'j', long)]
    pub jobs: Option<usize>,
    /// Frames per second after resampling by timestamp.
    #[arg(long, default_value_t = PackParams::default().fps)]
    pub fps: u32,
    /// Stored short side, pixels (aspect ratio kept).
    #[arg(long, default_value_t = PackParams::default().short_side)]
    pub short_side: u32,
    /// Longest stored long side, pixels (centre crop beyond it).
    #[arg(long, default_value_t = PackParams::default().max_long_side)]
    pub max_long_side: u32,
    /// Longest window per record, seconds.
    #[arg(long, default_value_t = PackParams::default().max_seconds)]
    pub max_seconds: f64,
    /// Windows of --max-seconds per video: long videos give up to this many records.
    #[arg(long, default_value_t = 1)]
    pub windows: u32,
    /// Audio samples as the filterbank sees them: int16 (rounded as FFmpeg's s16 output the
    /// reference reads: its exact spectrogram) or float (unrounded, as gdt did before).
    #[arg(long, value_enum, default_value_t = PcmArg::Int16)]
    pub pcm: PcmArg,
    /// Mel filters: 257 (the paper's) or 40 (the reference's Kinetics default).
    #[arg(long, default_value_t = PackParams::default().mels)]
    pub mels: u32,
    /// Frames per independently compressed chunk.
    #[arg(long, default_value_t = PackParams::default().chunk_frames)]
    pub chunk_frames: u32,
    /// zstd level for frame chunks, -7..=22. Negative levels store literals uncompressed:
    /// larger shards that decompress faster, for loaders short of CPU (see docs/LOADER.md).
    #[arg(long, default_value_t = FrameCodec::DEFAULT_ZSTD_LEVEL, allow_negative_numbers = true)]
    pub zstd_level: i32,
    /// Compress chunks that the level's match search barely shrinks (noisy frames: sensor
    /// noise, grain) with a search this much faster, literals still entropy-coded; 0: the
    /// level's own search everywhere. Default: 1024 with the delta filter at the default
    /// level 1, else 0. About 2.5x less compression time on noisy footage for ~3% more disk; static
    /// footage keeps the level's bytes (docs/PACKING.md).
    #[arg(long, value_name = "N")]
    pub zstd_accel: Option<u32>,
    /// Store frames as they are, without the delta-to-previous-frame filter.
    #[arg(long)]
    pub no_delta: bool,
    /// Pack for the fastest loading: 4-frame chunks at zstd level -1. About 1.5x the disk
    /// of the defaults and ~1.5x the loader's clips/s on the synthetic corpus (docs/LOADER.md).
    #[arg(long, conflicts_with_all = ["chunk_frames", "zstd_level", "zstd_accel", "codec"])]
    pub fast_load: bool,
    /// Frame codec: raw (planar RGB + zstd, exact) or jpeg (lossy, smaller).
    #[arg(long, value_enum, default_value_t = Codec::Raw)]
    pub codec: Codec,
    /// JPEG quality, with --codec jpeg.
    #[arg(long, default_value_t = FrameCodec::DEFAULT_JPEG_QUALITY)]
    pub quality: u8,
    /// Target shard size, e.g. 1GiB, 512MiB, 200MB.
    #[arg(long, default_value = "1GiB")]
    pub shard_size: String,
    /// Videos without audio: skip them, or pack them with silence.
    #[arg(long, value_enum, default_value_t = NoAudio::Skip)]
    pub no_audio: NoAudio,
    /// Give up on one file after this many seconds.
    #[arg(long, default_value_t = 120.0)]
    pub time_limit: f64,
    /// Exit with status 1 if any input was skipped.
    #[arg(long)]
    pub strict: bool,
    /// Start over: delete an earlier pack (complete or not) in the output directory.
    #[arg(long)]
    pub force: bool,
}

/// `gdt pack --codec`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Codec {
    /// Planar RGB + zstd, exact.
    Raw,
    /// Baseline JPEG per frame, lossy and smaller.
    Jpeg,
}

/// `gdt pack --pcm`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PcmArg {
    /// Rounded to 16-bit integers, as the reference.
    Int16,
    /// Unrounded floats.
    Float,
}

impl From<PcmArg> for gdt_formats::params::Pcm {
    fn from(p: PcmArg) -> Self {
        match p {
            PcmArg::Int16 => gdt_formats::params::Pcm::Int16,
            PcmArg::Float => gdt_formats::params::Pcm::Float,
        }
    }
}

/// `gdt pack --no-audio`: what to do with videos that have no audio stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum NoAudio {
    /// Leave them out (listed in pack-report.jsonl).
    Skip,
    /// Pack them with silence.
    Silence,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub what: BenchWhat,
}

#[derive(Debug, Subcommand)]
pub enum BenchWhat {
    /// Loader throughput: clips/s by thread count, stage split, vs baseline and floor.
    Load(BenchLoadArgs),
}

#[derive(Debug, Args)]
pub struct BenchLoadArgs {
    pub dataset: PathBuf,
    /// Batches measured per run, after the warm-up (rounded up to whole waves of one batch
    /// per worker thread, at least two, so the rate is the steady state's).
    #[arg(long, default_value_t = 40)]
    pub batches: usize,
    /// Measure each run for this many seconds instead of --batches.
    #[arg(long)]
    pub seconds: Option<f64>,
    /// Batches taken before the clock starts (at least one per worker thread: the first
    /// wave of batches finishes together).
    #[arg(long, default_value_t = 5)]
    pub warmup: usize,
    /// Rounds of (loader, floor) per thread count; the report gives the median, minimum and
    /// maximum.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Records per batch.
    #[arg(long, default_value_t = LoaderSettings::default().batch_size)]
    pub batch_size: usize,
    /// Frames per clip.
    #[arg(long, default_value_t = LoaderSettings::default().clip)]
    pub clip: usize,
    /// Output crop side, pixels (the scale jitter follows it: short side 128..160 at 112).
    #[arg(long, default_value_t = LoaderSettings::default().crop)]
    pub crop: u32,
    /// Thread counts: one number N measures 1, 2, 4, ... up to N (and N); a list
    /// (`1,8,32`) measures exactly those. Default: up to all cores.
    #[arg(long, value_delimiter = ',')]
    pub threads: Vec<usize>,
    /// Drop the dataset's pages from the page cache before each run (no root needed), as
    /// for a dataset larger than memory; reports the storage bytes and read rate a clip needs.
    /// (A dataset in an object store is always read cold: each run opens it anew.)
    #[arg(long)]
    pub cold: bool,
    /// Do not read ahead in loader order (madvise WILLNEED of the batches a window ahead).
    #[arg(long)]
    pub no_readahead: bool,
    /// Clips per second one GPU consumes (an H200 trains the default model at about 270-400):
    /// the report says how many GPUs each thread count feeds and the cores each GPU needs.
    #[arg(long, value_name = "X")]
    pub gpu_clips_per_s: Option<f64>,
    /// Records decoded on the fly for the baseline.
    #[arg(long, default_value_t = 8)]
    pub baseline_records: usize,
    /// Where the source videos are (records name them relative to the CSV manifest's folder,
    /// or the folder packed). Default: that folder, as `gdt pack` recorded it.
    #[arg(long)]
    pub sources: Option<PathBuf>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Also print an xxh3-64 digest of batches warmup..warmup+batches (video and audio
    /// bytes), per thread count, from an unmeasured pass (equal for every count;
    /// `gdt.Digest` computes the same in Python).
    #[arg(long)]
    pub digest: bool,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub cache: CacheArgs,
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The parts' directories (`gdt pack --part i/N` outputs), in any order; in an object
    /// store, their URLs or a pattern such as 's3://bucket/k400/part-*'.
    #[arg(required = true)]
    pub parts: Vec<PathBuf>,
    /// The dataset to create (must not exist, or be empty; same file system as the parts; in
    /// an object store, the prefix the parts are below).
    #[arg(short, long)]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct CopyArgs {
    /// The dataset: a directory or an object-store URL.
    pub from: PathBuf,
    /// Where the copy goes: an object-store URL or a directory (empty or new).
    pub to: PathBuf,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    pub dataset: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    pub dataset: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PreviewArgs {
    pub dataset: PathBuf,
    /// Record number, counting across shards from 0.
    #[arg(long, default_value_t = 0)]
    pub record: usize,
    /// PNG file to write.
    #[arg(short, long)]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct InfoArgs {
    /// Also run a small conv3d forward/backward on every device and compare with the CPU.
    #[arg(long)]
    pub smoke: bool,
    /// Exit with status 1 unless CUDA is available (for scripts on GPU nodes).
    #[arg(long)]
    pub require_cuda: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}
